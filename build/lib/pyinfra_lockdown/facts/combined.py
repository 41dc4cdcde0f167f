"""Run several facts' commands as ONE remote command and parse each section with its own fact.

Facts are not cached in pyinfra 3.x and every read is an SSH round trip, so a deploy that
needs ten facts pays ten round trips on every run. A ``CombinedFact`` concatenates the
commands of granular facts, separated by marker lines, and hands each section's lines to
that fact's ``process()`` (or its ``default()`` when the section is empty).
"""
from __future__ import annotations

import shlex

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

MARKER = "@@lockdown-section "


class CombinedFact(FactBase):
    """Subclasses define ``sections(**kwargs) -> {key: (FactClass, fact_kwargs)}``."""

    abstract = True

    @staticmethod
    def sections(**kwargs) -> dict[str, tuple[type[FactBase], dict]]:
        raise NotImplementedError

    def command(self, **kwargs):
        parts = []
        for key, (fact_cls, fact_kwargs) in self.sections(**kwargs).items():
            fact_command = fact_cls().command
            if callable(fact_command):
                fact_command = fact_command(**fact_kwargs)
            text = getattr(fact_command, "get_raw_value", lambda: fact_command)()
            parts.append(f"echo {shlex.quote(MARKER + key)}; ( {text} )")
        # A section that fails leaves its lines empty (-> that fact's default), never the read.
        return "; ".join(parts) + "; true"

    def process(self, output):
        lines_by_key: dict[str, list[str]] = {}
        current = None
        for line in output:
            if line.startswith(MARKER):
                current = line[len(MARKER):].strip()
                lines_by_key[current] = []
            elif current is not None:
                lines_by_key[current].append(line)
        result = {}
        for key, (fact_cls, _) in self.section_classes().items():
            lines = [line for line in lines_by_key.get(key, []) if line.strip()]
            fact = fact_cls()
            try:
                result[key] = fact.process(lines) if lines else _default(fact_cls)
            except FactProcessError:
                raise
            except Exception as error:  # a parser bug must not abort the whole run
                raise FactProcessError(f"{key}: {error}") from error
        return result

    def section_classes(self) -> dict[str, tuple[type[FactBase], dict]]:
        """The section layout (keys and classes do not depend on the command's arguments)."""
        return self.sections()


def _default(fact_cls):
    default = fact_cls.default
    value = default() if callable(default) else default
    return value
