"""The lab's own daemons in the lab namespace (the Mailgun stand-in, the package mirror): each
started in a cgroup of its own, recorded in the state file by PID, stopped by that PID."""
from __future__ import annotations

import subprocess
from pathlib import Path

from . import cgroups, network, processes
from .config import REPO_ROOT, LabConfig
from .state import ProcessRecord, StateStore


def launch(config: LabConfig, owner: str, argv: list[str], log: Path,
           env: dict | None = None) -> ProcessRecord | None:
    """Start ``argv`` detached inside the lab namespace, from the cgroup ``<netns>-<owner>``;
    None when it exited at once (its log says why)."""
    paths = cgroups.create(config.cgroup_name(owner))
    script = cgroups.enter_command(paths) + 'exec "$@"'
    with open(log, "ab") as out:
        child = subprocess.Popen(["/bin/sh", "-c", script, "sh", *network.in_netns(config.netns, argv)],
                                 cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return processes.record(child.pid)
    except ProcessLookupError:
        return None


def stop(config: LabConfig, store: StateStore, owner: str) -> None:
    """Stop the daemon recorded in the state file's field ``owner`` and remove its cgroup."""
    with store.update() as state:
        processes.stop(getattr(state, owner), timeout=5)
        setattr(state, owner, None)
    for path in cgroups.discover(config.netns):
        if path.name == config.cgroup_name(owner):
            cgroups.remove(path)
