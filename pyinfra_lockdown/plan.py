"""Read each host once; call an operation only when it has something to do.

Facts are not cached in pyinfra 3.x and each read is an SSH round trip, so the deploys read
everything they decide on with ONE combined fact. ``firewall()`` and ``mail_relay()`` share that
read when both run on a host: deploy code runs before any operation executes, so a second read
would return the same thing.

pyinfra orders operations by walking the Python stack at every operation call (~6 ms): on a
converged host that alone made the no-op run ~30% slower than a bare pyinfra run. So an
operation is first asked (its own generator, ``_pyinfra.operation_generator``) with the state
already read, and called for real only if it yields a command; when it yields nothing it has
logged its own ``noop`` line (shown with ``-v``). Each is asked once per run and host.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta
from pyinfra.operations.util import any_changed

from ._pyinfra import operation_generator
from .facts.host_state import HostState, LockdownState

Operation = Callable[..., OperationMeta]  # a pyinfra operation (its _inner is asked)

_READS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pyinfra State -> {host: dict}


def host_state(host: Host) -> HostState | None:
    """The LockdownState of ``host``, read (as root) once per pyinfra run.

    ``None`` when the read failed (e.g. a master.cf line Postfix itself rejects): pyinfra has
    then failed this host and printed why, and the caller must return, so that the run goes on
    for the other hosts instead of ending with a traceback."""
    reads = _READS.setdefault(host.state, {})
    if host.name not in reads:
        reads[host.name] = host.get_fact(LockdownState, _sudo=True)
    return reads[host.name]


_UPDATED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # State -> {host names}


def apt_update_wanted(host: Host, wanted: bool) -> bool:
    """``wanted`` unless an install of this run already refreshed the host's package lists
    (``firewall()`` installing ufw, then ``mail_relay()`` Postfix: one ``apt-get update``)."""
    return wanted and host.name not in _UPDATED.get(host.state, ())


def installs_with_update(host: Host, install: OperationMeta | None, update: bool) -> None:
    """Record that ``install`` (an ``if_needed`` result) refreshes the host's package lists."""
    if install is not None and update:
        _UPDATED.setdefault(host.state, set()).add(host.name)


def needed(op: Operation, **kwargs: Any) -> bool:
    """Whether ``op(**kwargs)`` would yield a command (asked without calling it)."""
    arguments = {k: v for k, v in kwargs.items() if k != "name" and not k.startswith("_")}
    return next(operation_generator(op)(**arguments), None) is not None


def if_needed(op: Operation, **kwargs: Any) -> OperationMeta | None:
    """Call ``op(**kwargs)`` if it would yield a command; ``None`` otherwise."""
    return op(**kwargs) if needed(op, **kwargs) else None


def call_if(wanted: bool, op: Operation, **kwargs: Any) -> OperationMeta | None:
    """Call ``op(**kwargs)`` when ``wanted`` (a ``needed`` answer already had); ``None``
    otherwise. For a deploy that must know whether anything is needed before it calls any
    step: asking again would run each step's generator twice."""
    return op(**kwargs) if wanted else None


def any_called_changed(*metas: OperationMeta | None) -> Callable[[], bool] | None:
    """``any_changed`` over the operations actually called; ``None`` when none was."""
    called = [meta for meta in metas if meta is not None]
    return any_changed(*called) if called else None
