"""Kernel limits that many booted boxes need on the lab machine (raised, never lowered).

Every box's systemd takes inotify instances of the root user (the boxes share the machine's
user namespace): with the kernel's default of 128 instances per user, the ~40th box of a lab
(fewer when other labs run) fails at boot with "Failed to create control group inotify object:
Too many open files". These are the machine's per-user limits, not a box's or a namespace's.
"""
from __future__ import annotations

from pathlib import Path

from .progress import say

# per box: systemd and its services use ~3 instances; room for several labs of 240 boxes
MINIMUMS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 1048576}


def raise_for_many_boxes(proc_sys: Path = Path("/proc/sys")) -> None:
    for name, minimum in MINIMUMS.items():
        path = proc_sys / name
        try:
            current = int(path.read_text())
        except (OSError, ValueError):
            continue
        if current < minimum:
            path.write_text(f"{minimum}\n")
            say(f"raised {name.replace('/', '.')} from {current} to {minimum} (many boxes need it)")
