"""``override`` (PEP 698) on every Python lockdown supports: ``typing`` has it from 3.12; on
3.11 type checkers take typing_extensions' and at run time it is the identity (typing_extensions
is not a declared dependency of lockdown or, on 3.11, of pyinfra)."""
from __future__ import annotations

import sys
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 12):
    from typing import override
elif TYPE_CHECKING:
    from typing_extensions import override
else:
    from collections.abc import Callable
    from typing import TypeVar

    _F = TypeVar("_F", bound=Callable[..., object])

    def override(method: _F, /) -> _F:
        return method

__all__ = ["Commands", "Current", "override"]


# What an operation's generator is: it yields pyinfra commands (strings, StringCommand,
# FunctionCommand), returns nothing.
Commands = Generator[Any, Any, None]
# An operation's ``current=``: the section of the one state read, or None to read its own fact.
Current = dict[str, Any] | None
