"""Who may use the machine at once when pytest-xdist runs the lab tier in several workers.

Three ways to use it, chosen by a test's marker:

- *shared* (no marker): an ordinary lab or Vagrant test; any number of them run at once, one
  per worker;
- *quiet* (``quiet_machine``): a test whose outcome depends on timing but that mostly waits
  (dead-man timers, reboots, link cuts): it runs beside other quiet tests only, never beside an
  ordinary lab or Vagrant test, so the machine's load stays that of a few waiting boxes;
- *alone* (``whole_machine``): many boxes at once or CPU-heavy faults whose outcome depends on
  timing: no other lab or Vagrant test in flight.

Unit tests take no part. The "room" is a small JSON file of the tests inside it (holder ->
mode; a holder's process id lets a crashed worker's entry be dropped), read and changed under
an ``flock`` mutex, in a directory the controller makes per run (``LOCKDOWN_MACHINE_LOCK_DIR``,
inherited by the workers). A test enters when every test inside has its own mode (shared or
quiet) or the room is empty (alone).

A ``gate`` (an ``flock`` file) keeps a waiting quiet or alone test from being starved by the
other workers' shared tests following each other back to back: it holds the gate while it
waits for the room (an alone test until it is done), and a shared test passes through the
gate before it asks for the room.

Every wait polls with a short sleep (never a blocking ``flock``: the process is gevent-patched
and a blocking call would stop its hub), and has its own deadline.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

DIR_ENV = "LOCKDOWN_MACHINE_LOCK_DIR"
MARKER = "whole_machine"
QUIET_MARKER = "quiet_machine"
SHARED, QUIET, ALONE = "shared", "quiet", "alone"
POLL_SECONDS = 0.05
# When the run hands out the alone tests first (xdist workers, see tests/conftest.py), the
# other workers' first tests let the first alone test take the gate: at the start they all
# reach it at once, and a quiet test winning that race ran with the other workers idle. The
# alone test marks its start with this file; the wait for it is bounded (a worker that died
# before it started must not stop the run). It holds for the run's lock directory only: the
# unit tests of this module use their own directories in the same worker.
ALONE_BEGAN_FILE = "alone-began"
HEAD_START_LIMIT_SECONDS = 300.0
_alone_tests_first_in: Path | None = None
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


def alone_tests_first(expected: bool, directory: Path | None = None) -> Path | None:
    """A worker's, after collection: whether this run (its lock ``directory``, by default the
    one in the environment) hands out alone tests before the rest. Returns what held before."""
    global _alone_tests_first_in
    before = _alone_tests_first_in
    _alone_tests_first_in = (directory or lock_dir()) if expected else None
    return before


def _give_the_alone_tests_their_head_start(directory: Path) -> None:
    if _alone_tests_first_in is None or directory != _alone_tests_first_in:
        return
    deadline = time.monotonic() + HEAD_START_LIMIT_SECONDS
    while not (directory / ALONE_BEGAN_FILE).exists() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


def _acquire(handle: IO[str], mode: int, what: str, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            _wait_or_fail(what, deadline)


def _wait_or_fail(what: str, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise MachineWaitTimeout(f"waited past the deadline for the machine ({what})")
    time.sleep(POLL_SECONDS)


def _alive(holder: str) -> bool:
    pid = int(holder.split(":", 1)[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def may_enter(mode: str, modes_inside: list[str]) -> bool:
    """Alone: only an empty room. Shared or quiet: a room of that same mode (or empty)."""
    if not modes_inside:
        return True
    return mode != ALONE and all(inside == mode for inside in modes_inside)


def _change_room(directory: Path, change: Callable[[dict[str, str]], bool]) -> bool | None:
    """Read the room, let ``change`` edit it (a dict holder -> mode) and write it back, under the
    mutex; dead holders are dropped first. Returns what ``change`` returned, or None when the
    mutex was busy."""
    with open(directory / "room.lock", "a") as mutex:
        try:
            fcntl.flock(mutex, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:
            path = directory / "room.json"
            room = json.loads(path.read_text()) if path.exists() else {}
            room = {holder: mode for holder, mode in room.items() if _alive(holder)}
            answer = change(room)
            partial = directory / f"room.json.{os.getpid()}"
            partial.write_text(json.dumps(room))
            os.replace(partial, path)
            return answer
        finally:
            fcntl.flock(mutex, fcntl.LOCK_UN)


def _enter(directory: Path, mode: str, deadline: float) -> str:
    holder = f"{os.getpid()}:{uuid.uuid4().hex}"

    def try_enter(room: dict[str, str]) -> bool:
        if not may_enter(mode, list(room.values())):
            return False
        room[holder] = mode
        return True

    while not _change_room(directory, try_enter):
        _wait_or_fail(mode, deadline)
    return holder


def _leave(directory: Path, holder: str) -> None:
    def remove(room: dict[str, str]) -> bool:
        room.pop(holder, None)
        return True

    while _change_room(directory, remove) is None:  # None: the mutex was busy
        time.sleep(POLL_SECONDS)


# An alone test whose worker runs another alone test next keeps the gate for it (by lock
# directory): between the two, no other worker's test may slip in (they poll the gate).
_KEPT_GATES: dict[Path, IO[str]] = {}


@contextlib.contextmanager
def using(directory: Path, mode: str, limit: float = WAIT_LIMIT_SECONDS,
          keep_gate: bool = False) -> Iterator[None]:
    """Run a test of ``mode`` (SHARED, QUIET or ALONE) once the machine allows it.
    ``keep_gate`` (ALONE): the gate stays held for this worker's next test, alone too."""
    if mode != ALONE:
        _give_the_alone_tests_their_head_start(directory)
    deadline = time.monotonic() + limit
    kept_for_this = _KEPT_GATES.pop(directory, None)
    if kept_for_this is not None and mode != ALONE:  # not the test it was kept for: let go
        kept_for_this.close()
        kept_for_this = None
    gate = kept_for_this or open(directory / "gate", "a")
    kept = False
    try:
        if mode == SHARED:  # pass through: wait while a quiet or alone test waits
            _acquire(gate, fcntl.LOCK_SH, "gate", deadline)
            fcntl.flock(gate, fcntl.LOCK_UN)
            holder = _enter(directory, mode, deadline)
        else:
            _acquire(gate, fcntl.LOCK_EX, "gate", deadline)  # at once when kept for it
            try:
                holder = _enter(directory, mode, deadline)
                if mode == ALONE:
                    (directory / ALONE_BEGAN_FILE).touch()
            finally:
                if mode == QUIET:  # inside: other quiet tests may follow it in
                    fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            _leave(directory, holder)
            kept = mode == ALONE and keep_gate
            if kept:
                _KEPT_GATES[directory] = gate
            else:
                fcntl.flock(gate, fcntl.LOCK_UN)
    finally:
        if not kept:
            gate.close()


def sharing(directory: Path, limit: float = WAIT_LIMIT_SECONDS) -> contextlib.AbstractContextManager[None]:
    """Run beside other sharing tests; wait while a quiet or whole-machine test runs or waits."""
    return using(directory, SHARED, limit)


def quiet(directory: Path, limit: float = WAIT_LIMIT_SECONDS) -> contextlib.AbstractContextManager[None]:
    """Run beside other quiet tests only."""
    return using(directory, QUIET, limit)


def alone(directory: Path, limit: float = WAIT_LIMIT_SECONDS) -> contextlib.AbstractContextManager[None]:
    """Run with no other lab or Vagrant test in flight."""
    return using(directory, ALONE, limit)


def mode_of(item: Any) -> str:
    """A test's way of using the machine, from its markers."""
    if item.get_closest_marker(MARKER) is not None:
        return ALONE
    if item.get_closest_marker(QUIET_MARKER) is not None:
        return QUIET
    return SHARED


TIERS_TAKING_PART = ("lab", "vagrant")


def holding(item: Any, tier: str, next_item: Any = None,
            next_tier: str = "") -> contextlib.AbstractContextManager[None]:
    """The context a test of ``tier`` runs in: its mode's, or nothing (unit tests).
    ``next_item`` (of ``next_tier``): the test this worker runs next, if known."""
    directory = lock_dir()
    if directory is None or tier not in TIERS_TAKING_PART:
        return contextlib.nullcontext()
    mode = mode_of(item)
    next_alone = next_item is not None and next_tier in TIERS_TAKING_PART \
        and mode_of(next_item) == ALONE
    return using(directory, mode, keep_gate=mode == ALONE and next_alone)
