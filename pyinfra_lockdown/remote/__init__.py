"""What lockdown sends to hosts as code: each a file of its own, so that shellcheck and ruff
check it and tests read it from here. ``script(name)`` is the text sent.

- ``canary.sh``: the relay canary (``canary.canary_script``), run with ``sh -c``.
- ``probe.py``: the outside probe (``facts.audit.SmtpProbe``), run with ``python3 -c`` on a
  host of the ``probes`` group; importing it runs nothing.
"""
from __future__ import annotations

import functools
from importlib.resources import files

__all__ = ["script"]


@functools.cache
def script(name: str) -> str:
    """The text of ``name`` in this folder, as sent to a host (outer blank lines stripped)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8").strip()
