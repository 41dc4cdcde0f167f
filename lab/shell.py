"""Running host commands; failures become LabErrors that show the command and its output."""
from __future__ import annotations

import shlex
import subprocess

from . import waiting
from .errors import LabError


def run(argv: list[str], *, check: bool = True, timeout: float | None = 60, todo: str = "",
        input: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    try:
        result = waiting.run(argv, timeout=timeout, input=input, **kwargs)
    except FileNotFoundError as error:
        raise LabError(f"command not found: {argv[0]}", todo or "install it (see lab/README.md)") from error
    except subprocess.TimeoutExpired as error:
        raise LabError(f"timed out after {timeout}s: {shlex.join(argv)}", todo) from error
    if check and result.returncode != 0:
        raise LabError(
            f"command failed (exit {result.returncode}): {shlex.join(argv)}",
            todo,
            detail=(result.stderr or result.stdout)[-2000:],
        )
    return result
