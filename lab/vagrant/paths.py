"""Where the local Vagrant mode keeps things (all under the lab's state dir) and its names."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import REPO_ROOT, LabConfig

MANAGEMENT_NET = "10.77.1"  # .1 = the lab namespace (gateway), DHCP .10-.250


@dataclass(frozen=True)
class VagrantPaths:
    lab: LabConfig

    @property
    def root(self) -> Path:
        return self.lab.state_dir / "vagrant"

    @property
    def vagrant_home(self) -> Path:
        return self.root / "home"

    @property
    def dotfile(self) -> Path:  # vagrant's .vagrant/ dir, kept out of the repo
        return self.root / "dotfile"

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def accel_file(self) -> Path:
        return self.root / "accel.json"

    # libvirt object names: one libvirtd at a time, named after the lab namespace
    @property
    def network_name(self) -> str:
        return f"{self.lab.netns}-vagrant"

    @property
    def bridge_name(self) -> str:
        return f"vbr-{self.lab.netns}"[:15]

    @property
    def pool_name(self) -> str:
        return f"{self.lab.netns}-vagrant"

    @property
    def repo(self) -> Path:
        return REPO_ROOT
