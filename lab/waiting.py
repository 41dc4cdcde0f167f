"""Running and waiting on children with deadlines that hold whether or not gevent patched us.

pyinfra_cli's import runs `gevent.monkey.patch_all()` (pytest imports it through
pyinfra_testing), and from then on `subprocess` is gevent's:
- a read on a child's non-blocking pipe no longer returns "no data yet", it waits for data or
  EOF, so a loop that reads and then checks its deadline never gets back to the check;
- gevent's `subprocess.run(timeout=)` kills the child on timeout and then reads its pipes again
  with no deadline: a grandchild that holds the pipe (vagrant's and pyinfra's children, a
  daemon) keeps it waiting.
So nothing here reads a pipe. A child writes into temp files; the deadline is
`Popen.wait(timeout)` or a loop of `poll()` + `time.sleep` that checks the clock itself (both
cooperative under gevent); output is read from the files afterwards. A child past its deadline
(or interrupted by an exception, e.g. pytest-timeout's) is stopped by its PID: the Popen object
still owns that PID (not yet reaped, so not reusable), and the members of the process group it
leads are stopped by their recorded PID + start time (lab/processes.py), never by name.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from . import processes
from .state import ProcessRecord

STOP_GRACE = 3.0


def run(argv: list[str], *, timeout: float | None, input: str | bytes | None = None,
        capture: bool = True, text: bool = True, env: dict | None = None,
        cwd: str | os.PathLike | None = None, new_session: bool = True) -> subprocess.CompletedProcess:
    """Like subprocess.run(capture_output=capture, timeout=timeout): raises TimeoutExpired in time.

    `new_session` puts the child in its own process group, so a timeout stops its children
    too; pass False for an interactive command that needs the terminal.
    """
    with contextlib.ExitStack() as stack:
        stdin: int | IO = subprocess.DEVNULL
        if input is not None:
            stdin = stack.enter_context(tempfile.TemporaryFile())
            stdin.write(input.encode() if isinstance(input, str) else input)
            stdin.seek(0)
        out = stack.enter_context(tempfile.TemporaryFile()) if capture else None
        err = stack.enter_context(tempfile.TemporaryFile()) if capture else None
        child = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd,
                                 start_new_session=new_session)
        leader = leader_of(child) if new_session else None
        try:
            returncode = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(child, leader)
            raise subprocess.TimeoutExpired(argv, timeout, output=_read(out, text),
                                            stderr=_read(err, text)) from None
        except BaseException:
            stop(child, leader)
            raise
        return subprocess.CompletedProcess(argv, returncode, _read(out, text), _read(err, text))


@dataclass
class Watched:
    output: str
    matched: bool  # `until` saw what it waited for
    returncode: int | None  # None: it was still running when we stopped it
    seconds: float


def watch(argv: list[str], *, seconds: float, until: Callable[[str], bool],
          tick: float = 0.2) -> Watched:
    """Start argv, watch its output (stdout+stderr) until `until(output)` or `seconds` passed.

    The child is stopped either way; returns what it printed and whether it had exited.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        leader = leader_of(child)
        matched, returncode = False, None
        try:
            while True:
                returncode = child.poll()  # before reading: output of an exited child is complete
                output = _read(out, True)
                if until(output):
                    matched = True
                    break
                if returncode is not None or time.monotonic() - started >= seconds:
                    break
                time.sleep(tick)
        finally:
            stop(child, leader)
        return Watched(output, matched, returncode, time.monotonic() - started)


def stop(child: subprocess.Popen, leader: ProcessRecord | None, grace: float = STOP_GRACE) -> None:
    """SIGTERM the child and the rest of the process group it leads; SIGKILL after `grace`."""
    group = [m for m in processes.group_members(leader) if m.pid != child.pid] if leader else []
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    for member in group:
        if processes.is_alive(member):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member.pid, signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    if leader is not None:  # members that appeared meanwhile, or ignore SIGTERM
        processes.stop_all([m for m in processes.group_members(leader) if m.pid != child.pid],
                           timeout=grace)


def leader_of(child: subprocess.Popen) -> ProcessRecord | None:
    # Read /proc without reaping: even if the child already exited, its exit status belongs to
    # Popen, and the group it created may still have members.
    fields = processes._stat_fields(child.pid)
    return ProcessRecord(pid=child.pid, start_time=int(fields[19])) if fields else None


def _read(handle: IO | None, text: bool) -> str | bytes | None:
    if handle is None:
        return None
    handle.flush()
    handle.seek(0)
    data = handle.read()
    return data.decode(errors="replace") if text else data
