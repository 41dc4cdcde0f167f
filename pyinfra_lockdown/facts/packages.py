"""Which of a few Debian packages are installed (one dpkg-query, cheap enough for every run)."""
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from .._typing import override

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["InstalledDebs"]


class InstalledDebs(FactBase[dict[str, Any]]):
    """
    Returns the subset of ``packages`` that dpkg reports as installed, plus their versions:

    .. code:: python

        {"postfix": "3.7.11-0+deb12u1", "ufw": "0.36.2-1"}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    @override
    def command(self, packages: tuple[str, ...] = (
            "postfix", "libsasl2-modules", "ca-certificates", "ufw")) -> str:
        # Unknown packages make dpkg-query exit 1: that is "not installed", not a failure.
        names = StringCommand(*(QuoteString(p) for p in packages))
        return StringCommand(
            "dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n'", names,
            "2>/dev/null || true",
        ).get_raw_value()

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        installed = {}
        for line in output:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "installed":
                installed[parts[0]] = parts[1]
        return installed
