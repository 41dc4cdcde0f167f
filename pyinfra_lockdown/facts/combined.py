"""Run several facts' commands as ONE remote command and parse each section with its own fact.

Facts are not cached in pyinfra 3.x and every read is an SSH round trip, so a deploy that
needs ten facts pays ten round trips on every run. A ``CombinedFact`` concatenates the
commands of granular facts, separated by marker lines, and hands each section's lines to
that fact's ``process()`` (or its ``default()`` when the section is empty).
"""
from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["CombinedFact", "SectionSpec", "awk_over_saved"]

MARKER = "@@lockdown-section "
# The shell variable naming the combined read's directory of shared outputs (awk_over_saved).
SHARED_DIR = "ld_shared"
SHARED_COMMANDS = ("iptables-save", "ip6tables-save")


def awk_over_saved(command: str, awk: str, before: str = "") -> str:
    """Shell text running ``awk`` (the program and its options) over the files ``before``,
    then ``command``'s output (one of SHARED_COMMANDS, or a shell variable holding one):
    inside the combined read, the copy it saved once for every section that names the command
    in ``shared_reads``, read as a file (no process more); in a fact read alone, the command
    run now into a pipe. On a state read every process counts (~1 ms of CPU each)."""
    return (f'if [ -n "${{{SHARED_DIR}:-}}" ]; then {awk} {before} "${SHARED_DIR}/{command}"; '
            f"else {command} 2>/dev/null | {awk} {before} -; fi")


SectionSpec = tuple[type[FactBase[Any]], dict[str, Any]]  # a granular fact and its arguments
T = TypeVar("T")


class CombinedFact(FactBase[T]):
    """Subclasses define ``sections(**kwargs) -> {key: (FactClass, fact_kwargs)}`` and a
    ``command`` with their own keyword arguments that returns ``combined_command(...)``; ``T``
    is the dict of the sections' values (a TypedDict)."""

    abstract = True

    sections: Callable[..., dict[str, SectionSpec]]

    def combined_command(self, **kwargs: Any) -> str:
        # The sections run at once, each into its own file of a fresh root-only directory, and
        # are printed in order after `wait`: the read takes as long as its slowest section,
        # not their sum (most of them wait on fork/exec, D-Bus or postconf's parsing, not CPU).
        # Each section's file starts with its marker line, so one `cat` prints them all.
        # Commands several sections read (one iptables-save per family) run once, first, into
        # the directory; the sections reading them start when they are done, the others at once.
        runs: list[str] = []
        after_shared: list[str] = []
        files: list[str] = []
        shared: list[str] = []
        for index, (key, (fact_cls, fact_kwargs)) in enumerate(self.sections(**kwargs).items()):
            text = _command_text(fact_cls, fact_kwargs)
            run = f'( echo {shlex.quote(MARKER + key)}; {text} ) >"$d/{index}" &'
            reads = getattr(fact_cls, "shared_reads", ())
            shared += [command for command in reads if command not in shared]
            (after_shared if reads else runs).append(run)
            files.append(f'"$d/{index}"')
        if shared:
            if any(command not in SHARED_COMMANDS for command in shared):
                raise ValueError(f"shared_reads must be among {SHARED_COMMANDS}: {shared}")
            saves = " ".join(f'( {command} 2>/dev/null ) >"${SHARED_DIR}/{command}" &'
                             for command in shared)
            runs.insert(0, f'{SHARED_DIR}="$d/shared"; mkdir "${SHARED_DIR}" || exit 1; '
                        f'{{ {saves} wait; {" ".join(after_shared)} wait; }} &')
        # A section that fails leaves its lines empty (-> that fact's default), never the read;
        # no directory for the sections fails the read (defaults would misreport the host).
        return (
            'd=$(mktemp -d) || exit 1; trap \'rm -rf "$d"\' EXIT; '
            + " ".join(runs) + " wait; cat " + " ".join(files) + "; true"
        )

    @override
    def process(self, output: list[str]) -> T:
        lines_by_key: dict[str, list[str]] = {}
        current = None
        for line in output:
            if line.startswith(MARKER):
                current = line[len(MARKER):].strip()
                lines_by_key[current] = []
            elif current is not None:
                lines_by_key[current].append(line)
        result: dict[str, Any] = {}
        for key, (fact_cls, _) in self.section_classes().items():
            lines = [line for line in lines_by_key.get(key, []) if line.strip()]
            fact = fact_cls()
            try:
                result[key] = fact.process(lines) if lines else _default(fact_cls)
            except FactProcessError:
                raise
            except Exception as error:  # a parser bug must not abort the whole run
                raise FactProcessError(f"{key}: {error}") from error
        return cast(T, result)

    def section_classes(self) -> dict[str, SectionSpec]:
        """The section layout (keys and classes do not depend on the command's arguments)."""
        return self.sections()


def _command_text(fact_cls: type[FactBase], fact_kwargs: dict[str, Any]) -> str:
    """The shell text of one granular fact's command (a plain string, or a StringCommand)."""
    command = fact_cls().command
    text = command(**fact_kwargs) if callable(command) else command
    return str(text.get_raw_value()) if hasattr(text, "get_raw_value") else str(text)


def _default(fact_cls: type[FactBase[Any]]) -> Any:
    default: Any = fact_cls.default
    return default() if callable(default) else default
