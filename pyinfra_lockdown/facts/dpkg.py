"""Was a dpkg run interrupted on this host (killed mid-install, power lost)?"""
from typing import Any

from pyinfra.api import FactBase

from .._typing import override

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["DpkgState"]

MAX_AUDIT_LINES = 20


class DpkgState(FactBase[dict[str, Any]]):
    """
    Returns whether dpkg needs ``dpkg --configure -a`` before apt can install anything, and
    what ``dpkg --audit`` says (first lines):

    .. code:: python

        {"interrupted": True, "audit": ["The following packages are only half configured, ..."]}
    """

    @staticmethod
    def default() -> dict[str, Any]:
        return {"interrupted": False, "audit": []}

    # A journal left in /var/lib/dpkg/updates is what makes apt refuse ("dpkg was interrupted");
    # `dpkg --audit` names half-installed or unconfigured packages.
    @override
    def command(self) -> str:
        return (
            # any entry, dotfiles too (the glob is the shell's: no process for it)
            "for f in /var/lib/dpkg/updates/* /var/lib/dpkg/updates/.[!.]* "
            "/var/lib/dpkg/updates/..?*; do [ -e \"$f\" ] && echo 'journal: pending' && break; "
            "done; "
            f"dpkg --audit 2>/dev/null | sed -n 's/^/audit: /p; {MAX_AUDIT_LINES}q'"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        audit = [line[len("audit: "):] for line in output if line.startswith("audit: ")]
        journal = any(line.startswith("journal: ") for line in output)
        return {"interrupted": journal or any(line.strip() for line in audit),
                "audit": [line for line in audit if line.strip()]}
