"""Where the lab keeps things and how it names them (overridable from the environment)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_STATE_DIR = "/var/lib/lockdown-lab"
DEFAULT_CACHE_DIR = "/var/cache/lockdown-lab"
DEFAULT_NETNS = "ldlab"


@dataclass(frozen=True)
class LabConfig:
    state_dir: Path
    cache_dir: Path
    netns: str  # the lab namespace; box namespaces and cgroups are named "<netns>-..."

    @classmethod
    def from_env(cls, env: dict | None = None) -> "LabConfig":
        env = os.environ if env is None else env
        return cls(
            state_dir=Path(env.get("LOCKDOWN_LAB_DIR", DEFAULT_STATE_DIR)),
            cache_dir=Path(env.get("LOCKDOWN_LAB_CACHE", DEFAULT_CACHE_DIR)),
            netns=env.get("LOCKDOWN_LAB_NETNS", DEFAULT_NETNS),
        )

    def env(self) -> dict[str, str]:
        """Environment that makes child processes (pyinfra + inventories/lab.py) use this lab."""
        return {
            "LOCKDOWN_LAB_DIR": str(self.state_dir),
            "LOCKDOWN_LAB_CACHE": str(self.cache_dir),
            "LOCKDOWN_LAB_NETNS": self.netns,
        }

    # --- files in the state dir -------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "state.lock"

    @property
    def boxes_dir(self) -> Path:
        return self.state_dir / "boxes"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def standin_dir(self) -> Path:
        return self.state_dir / "standin"

    # --- names derived from the lab namespace name --------------------------------------
    def box_netns(self, box: str, serial: int) -> str:
        return f"{self.netns}-{box}-{serial}"

    def cgroup_name(self, owner: str) -> str:
        return f"{self.netns}-{owner}"
