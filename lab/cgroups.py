"""One cgroup per box (and for the stand-in), in both hierarchies of a hybrid setup.

With `--keep-unit` nspawn leaves the container in its caller's cgroup; boxes sharing one
cgroup have their systemds kill each other's units. Each box is therefore launched from
its own cgroup: `/sys/fs/cgroup/{systemd,unified}/<lab>-<box>`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
HIERARCHIES = ("systemd", "unified")


def available_hierarchies(root: Path = CGROUP_ROOT) -> list[Path]:
    return [root / h for h in HIERARCHIES if (root / h / "cgroup.procs").exists()]


def create(name: str, root: Path = CGROUP_ROOT) -> list[Path]:
    paths = []
    for hierarchy in available_hierarchies(root):
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        paths.append(path)
    return paths


def enter_command(paths: list[Path]) -> str:
    """Shell snippet that moves the shell itself into `paths` (used before exec'ing nspawn)."""
    return "".join(f"echo $$ > {p}/cgroup.procs && " for p in paths)


def discover(prefix: str, root: Path = CGROUP_ROOT) -> list[Path]:
    found = []
    for hierarchy in available_hierarchies(root):
        found += sorted(p for p in hierarchy.glob(f"{prefix}-*") if p.is_dir())
    return found


def pids_in(path: Path) -> list[int]:
    """PIDs anywhere in the cgroup tree at `path`."""
    pids = []
    for procs in Path(path).rglob("cgroup.procs"):
        try:
            pids += [int(line) for line in procs.read_text().split()]
        except OSError:
            pass
    return sorted(set(pids))


def remove(path: Path, timeout: float = 5.0) -> bool:
    """rmdir the tree depth first; cgroups of processes that just died may need a moment."""
    path = Path(path)
    deadline = time.monotonic() + timeout
    while path.exists():
        try:
            subdirs = [p for p in path.rglob("*") if p.is_dir()]
            for sub in sorted(subdirs, key=lambda p: -len(p.parts)):
                os.rmdir(sub)
            os.rmdir(path)
        except OSError:
            if time.monotonic() >= deadline:
                return not path.exists()
            time.sleep(0.1)
    return True
