"""Processes the lab started, identified by PID plus start time (never by name)."""
from __future__ import annotations

import os
import signal
import time

from .state import ProcessRecord


def start_time(pid: int, reap: bool = True) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if there is no such process.

    A zombie counts as gone; with `reap` it is reaped (pass reap=False for a child a Popen object
    still owns, so its exit status stays with Popen).
    """
    fields = _stat_fields(pid)
    if fields is None:
        return None
    if fields[0] == "Z":  # exited, waiting to be reaped: counts as gone
        if reap:
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
    stop_all([process] if process is not None else [], timeout=timeout)


def stop_all(records: list[ProcessRecord], timeout: float = 10.0) -> None:
    """SIGTERM every recorded process still alive, SIGKILL those left after `timeout`.

    Only /proc reads, os.kill and time.sleep: the deadline holds in a gevent-patched process too.
    """
    alive = [r for r in records if is_alive(r)]
    if not alive:
        return
    for process in alive:
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [r for r in alive if is_alive(r)]
        if not alive:
            return
        time.sleep(0.05)
    for process in alive:
        if is_alive(process):
            _signal(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(is_alive(r) for r in alive) and time.monotonic() < deadline:
        time.sleep(0.05)


def group_members(leader: ProcessRecord) -> list[ProcessRecord]:
    """Live processes in the process group `leader` created (pgid == its PID, started no earlier).

    Linux does not hand out a PID that is still some group's id, so while members exist the
    group id is the one `leader` created; the start-time check guards the leader's own PID.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or fields[0] == "Z":
            continue
        if int(fields[2]) == leader.pid and int(fields[19]) >= leader.start_time:
            found.append(ProcessRecord(pid=int(entry), start_time=int(fields[19])))
    return found


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


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [0] state, [2] pgrp, [19] start time."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


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
