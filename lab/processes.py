"""Processes the lab started, identified by PID plus start time (never by name)."""
from __future__ import annotations

import os
import signal
import time

from .state import ProcessRecord


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if there is no such process."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # exited, waiting to be reaped: counts as gone
        _reap(pid)
        return None
    return int(fields[19])


def record(pid: int) -> ProcessRecord:
    started = start_time(pid)
    if started is None:
        raise ProcessLookupError(pid)
    return ProcessRecord(pid=pid, start_time=started)


def is_alive(process: ProcessRecord | None) -> bool:
    return process is not None and start_time(process.pid) == process.start_time


def stop(process: ProcessRecord | None, timeout: float = 10.0) -> None:
    """SIGTERM the recorded process, SIGKILL it if it is still there after `timeout`."""
    if not is_alive(process):
        return
    assert process is not None
    _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(process):
            return
        time.sleep(0.05)
    if is_alive(process):
        _signal(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_alive(process) and time.monotonic() < deadline:
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
