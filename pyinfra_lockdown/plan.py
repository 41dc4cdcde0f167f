"""Add an operation to the run only when it has something to do.

pyinfra orders operations by walking the Python stack (``inspect.stack()``) at every
operation call, about 6 ms each here: on a converged host that alone made the no-op run
~30% slower than a bare pyinfra run. The operation still decides: its generator is
advanced once, with the state the deploy already read, and only if it yields a command
is the operation called for real (it then decides again when it runs). When it yields
nothing it has logged its own ``noop`` line (shown with ``-v``).
"""
from __future__ import annotations

from typing import Callable

from pyinfra.api.operation import OperationMeta
from pyinfra.operations.util import any_changed


def if_needed(op, **kwargs) -> OperationMeta | None:
    """Call ``op(**kwargs)`` if it would yield a command; ``None`` otherwise."""
    arguments = {k: v for k, v in kwargs.items() if k != "name" and not k.startswith("_")}
    if next(op._inner(**arguments), None) is None:
        return None
    return op(**kwargs)


def any_called_changed(*metas: OperationMeta | None) -> Callable[[], bool] | None:
    """``any_changed`` over the operations actually called; ``None`` when none was."""
    called = [meta for meta in metas if meta is not None]
    return any_changed(*called) if called else None
