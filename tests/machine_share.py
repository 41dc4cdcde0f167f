"""Who may use the machine at once when pytest-xdist runs the lab tier in several workers.

An ordinary lab or Vagrant test *shares* the machine: any number of them run at once, one per
worker. A test marked ``whole_machine`` (many boxes at once, faults whose outcome depends on
timing) runs *alone*: it waits until the tests in flight on the other workers end, and the
other workers start nothing new until it is done. Unit tests take no part.

A readers-writer lock over two ``flock`` files in a directory the controller makes per run
(``LOCKDOWN_MACHINE_LOCK_DIR``, inherited by the workers):

- ``room``: shared by every test that shares the machine, exclusive for a whole-machine test;
- ``gate``: a whole-machine test holds it from before it asks for the room until it is done,
  and a sharing test passes through it first, so a waiting whole-machine test is not starved
  by the other workers' tests following each other back to back.

The wait polls with a short sleep (never a blocking ``flock``: the process is gevent-patched
and a blocking call would stop its hub), and has its own deadline.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path

DIR_ENV = "LOCKDOWN_MACHINE_LOCK_DIR"
MARKER = "whole_machine"
POLL_SECONDS = 0.05
WAIT_LIMIT_SECONDS = 3 * 3600  # longer than any test; a wait this long means a lock leaked


class MachineWaitTimeout(RuntimeError):
    pass


def make_lock_dir() -> Path:
    """The controller's: one directory per test run, in the environment the workers inherit."""
    path = Path(tempfile.mkdtemp(prefix="lockdown-machine-"))
    os.environ[DIR_ENV] = str(path)
    return path


def lock_dir() -> Path | None:
    value = os.environ.get(DIR_ENV)
    return Path(value) if value else None


def _acquire(handle, mode: int, what: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise MachineWaitTimeout(f"waited {limit:.0f} s for the machine ({what})") from None
            time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def sharing(directory: Path, limit: float = WAIT_LIMIT_SECONDS):
    """Run beside other sharing tests; wait while a whole-machine test runs or waits."""
    with open(directory / "gate", "a") as gate, open(directory / "room", "a") as room:
        _acquire(gate, fcntl.LOCK_SH, "gate", limit)
        fcntl.flock(gate, fcntl.LOCK_UN)
        _acquire(room, fcntl.LOCK_SH, "shared", limit)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)


@contextlib.contextmanager
def alone(directory: Path, limit: float = WAIT_LIMIT_SECONDS):
    """Run with no other lab or Vagrant test in flight."""
    with open(directory / "gate", "a") as gate, open(directory / "room", "a") as room:
        _acquire(gate, fcntl.LOCK_EX, "gate", limit)
        try:
            _acquire(room, fcntl.LOCK_EX, "alone", limit)
            try:
                yield
            finally:
                fcntl.flock(room, fcntl.LOCK_UN)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)


def holding(item, tier: str):
    """The context a test of ``tier`` runs in: alone, sharing, or nothing (unit tests)."""
    directory = lock_dir()
    if directory is None or tier not in ("lab", "vagrant"):
        return contextlib.nullcontext()
    if item.get_closest_marker(MARKER) is not None:
        return alone(directory)
    return sharing(directory)
