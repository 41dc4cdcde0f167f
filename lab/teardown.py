"""`down`: undo everything the lab created, from its state file plus what exists under the
lab's own names and paths. Works after a crash, after a half-finished `up`, and twice.

Planning is a pure function of a snapshot (testable without root); `execute` does it.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import boxes, cgroups, network, processes
from .config import LabConfig
from .progress import say
from .state import LabState, ProcessRecord, StateStore


@dataclass
class Snapshot:
    state: LabState
    netns: list[str] = field(default_factory=list)  # every name in /run/netns
    mounts: list[str] = field(default_factory=list)  # every mount point of this mount namespace
    cgroup_dirs: list[str] = field(default_factory=list)  # our cgroup dirs that exist
    box_dirs: list[str] = field(default_factory=list)  # directories under the boxes dir


@dataclass(frozen=True)
class Action:
    kind: str  # stop_process | kill_cgroup_members | unmount | remove_cgroup | delete_netns | remove_dir
    target: str
    process: ProcessRecord | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


def plan(config: LabConfig, snapshot: Snapshot) -> list[Action]:
    state = snapshot.state
    actions: list[Action] = []
    # 1. processes we recorded (boxes first: a halting box still sends mail to the stand-in)
    for box in sorted(state.boxes.values(), key=lambda b: b.index):
        if box.process:
            actions.append(Action("stop_process", box.name, box.process))
    if state.standin:
        actions.append(Action("stop_process", "standin", state.standin))
    if state.mirror:
        actions.append(Action("stop_process", "mirror", state.mirror))
    if state.resolver:
        actions.append(Action("stop_process", "resolver", state.resolver))
    # 2. anything still in a cgroup the lab created (e.g. launched but never recorded)
    actions += [Action("kill_cgroup_members", path) for path in snapshot.cgroup_dirs]
    # 3. overlays, deepest first
    boxes_dir = str(config.boxes_dir).rstrip("/") + "/"
    ours = [m for m in snapshot.mounts if m.startswith(boxes_dir)]
    actions += [Action("unmount", m) for m in sorted(set(ours), key=lambda m: (-m.count("/"), m))]
    # 4. cgroups
    actions += [Action("remove_cgroup", path) for path in snapshot.cgroup_dirs]
    # 5. namespaces: recorded box namespaces, any "<lab>-*" leftovers, then the lab itself
    box_netns = {b.netns for b in state.boxes.values() if b.netns in snapshot.netns}
    box_netns |= {n for n in snapshot.netns if n.startswith(config.netns + "-")}
    actions += [Action("delete_netns", name) for name in sorted(box_netns)]
    if config.netns in snapshot.netns:
        actions.append(Action("delete_netns", config.netns))
    # 6. box directories (upper dirs, console logs)
    actions += [Action("remove_dir", d) for d in sorted(snapshot.box_dirs)]
    return actions


def take_snapshot(config: LabConfig, state: LabState) -> Snapshot:
    box_dirs = sorted(str(p) for p in config.boxes_dir.iterdir()) if config.boxes_dir.is_dir() else []
    return Snapshot(
        state=state,
        netns=network.list_netns(),
        mounts=boxes.mount_points(),
        cgroup_dirs=[str(p) for p in cgroups.discover(config.netns)],
        box_dirs=box_dirs,
    )


def execute(actions: list[Action]) -> list[str]:
    """Run every action (continuing past failures); returns what could not be undone."""
    problems = []
    for action in actions:
        try:
            if action.kind == "stop_process":
                processes.stop(action.process)
                if processes.is_alive(action.process):
                    problems.append(f"process {action.process.pid} ({action.target}) survived SIGKILL")
            elif action.kind == "kill_cgroup_members":
                for pid in cgroups.pids_in(Path(action.target)):
                    record = processes.start_time(pid)
                    if record is not None:
                        processes.stop(ProcessRecord(pid, record), timeout=5)
            elif action.kind == "unmount":
                boxes.unmount(Path(action.target))
                if boxes.is_mounted(Path(action.target)):
                    problems.append(f"still mounted: {action.target}")
            elif action.kind == "remove_cgroup":
                if not cgroups.remove(Path(action.target)):
                    problems.append(f"cgroup not removable: {action.target}")
            elif action.kind == "delete_netns":
                network.delete(action.target)
                if network.exists(action.target):
                    problems.append(f"network namespace still there: {action.target}")
            elif action.kind == "remove_dir":
                shutil.rmtree(action.target, ignore_errors=True)
        except Exception as error:  # keep going: the rest must still be cleaned
            problems.append(f"{action}: {error}")
    return problems


def down(config: LabConfig, store: StateStore) -> list[str]:
    with store.update() as state:
        actions = plan(config, take_snapshot(config, state))
        for action in actions:
            say(f"  {action}")
        problems = execute(actions)
        # The next `up` starts a new lab run (names from box1 again); the netns serial keeps
        # growing so no namespace name is ever reused.
        state.boxes.clear()
        state.standin = None
        state.mirror = None
        state.last_box_index = 0
    return problems
