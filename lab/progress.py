"""Step printing with elapsed seconds (on stderr, so command output stays clean)."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

QUIET = False


def say(message: str) -> None:
    if not QUIET:
        print(f"[lab] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"{title} ...")
    try:
        yield
    except BaseException:
        say(f"{title}: FAILED after {time.monotonic() - started:.1f}s")
        raise
    say(f"{title}: done in {time.monotonic() - started:.1f}s")
