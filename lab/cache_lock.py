"""One builder at a time for a thing in the shared cache (an image, a mirror, the mirror key).

Several labs use one cache at once (pytest-xdist workers, each with its own lab; people's own
labs): the first to find an image missing builds it while the others wait on its lock, then
find it built. Without the lock two builders race, and the second's "remove the stale image"
step could delete the image the first had just put in place and a box was booting from.

An ``flock`` on ``<cache>/locks/<name>.lock``, polled with a short sleep (the test process is
gevent-patched: a blocking flock would stop its hub), with a deadline. The kernel releases it
when the holder dies, so a killed build leaves no stale lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path

from .errors import LabError

POLL_SECONDS = 0.2


@contextlib.contextmanager
def held(cache_dir: Path, name: str, timeout: float = 3600):
    locks = Path(cache_dir) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(locks / f"{name}.lock", "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"waited {timeout:.0f} s for another lab building {name}",
                                   f"see which process holds {locks / (name + '.lock')} (fuser)") from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
