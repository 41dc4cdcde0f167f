"""Install missing Debian packages non-interactively, without touching the ones present.

Every apt step that can fail says, on the host's stderr (pyinfra shows it), which packages
could not be installed, why, and what to do: a package source that cannot be read, a
package the sources do not have, a dpkg run that was interrupted.
"""
from shlex import quote
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from .._typing import Commands, Current
from ..facts.packages import InstalledDebs

# The operations; the other public names are helpers the package's deploys and audit share.
__all__ = ["installed"]

# Preseeded so that installing postfix never asks and never writes a main.cf of its own:
# lockdown writes every setting it relies on.
POSTFIX_PRESEED = "postfix postfix/main_mailer_type select No configuration"
REPAIR = "dpkg --configure -a"
SOURCES = "/etc/apt/sources.list and /etc/apt/sources.list.d/"


def _fail(message: str, status: str = "100") -> str:
    return f"{{ echo {quote('lockdown: ' + message)} >&2; exit {status}; }}"


def _repair_command() -> str:
    return (f"DEBIAN_FRONTEND=noninteractive {REPAIR} || " + _fail(
        f"dpkg was interrupted on this host and `{REPAIR}` could not finish it (output above). "
        f"Run `sudo {REPAIR}` and `sudo apt-get -f install` on the host, then run the deploy again",
        "1"))


def _update_command(missing: list[str]) -> str:
    # apt-get update exits 0 when a source cannot be fetched ("W: Failed to fetch"): the
    # install would then fail with a misleading "Unable to locate package".
    names = " ".join(missing)
    return (
        "out=$(apt-get update -q 2>&1); status=$?; "
        "if [ $status -ne 0 ] || printf '%s\\n' \"$out\" "
        "| grep -Eq '^(E:|W: (Failed to fetch|Some index files))'; "
        "then printf '%s\\n' \"$out\" | grep -E '^(E|W):' >&2; " + _fail(
            f"could not install {names}: `apt-get update` failed, so the package sources in "
            f"{SOURCES} cannot be read (errors above). Make the mirror they name reachable from "
            f"this host (or fix the sources), then run the deploy again") + "; fi"
    )


def _install_command(missing: list[str]) -> str:
    names = " ".join(quote(p) for p in missing)
    return (
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {names} || "
        f"{{ status=$?; for p in {names}; do [ -n \"$(apt-cache madison \"$p\" 2>/dev/null)\" ] || "
        "echo \"lockdown: package $p is not available from this host's package sources "
        f"({SOURCES})\" >&2; done; "
        + _fail(f"could not install {' '.join(missing)} (apt-get's errors above). Make every "
                f"package named installable from the host's sources (`apt-cache policy NAME` "
                f"shows where apt looks; a mirror must carry them and their dependencies), then "
                f"run the deploy again", "$status") + "; }"
    )


@operation()
def installed(packages: list[str], update: bool = True, current: Current = None,
              dpkg: dict[str, Any] | None = None) -> Commands:
    """
    Install the packages that are missing, with apt-get, non-interactively.

    + packages: Debian package names
    + update: run ``apt-get update`` first (only when something is missing)
    + current: ``InstalledDebs`` fact value; read when not given
    + dpkg: ``DpkgState`` fact value (an interrupted dpkg is repaired first); None: not checked
    """
    if current is None:
        current = host.get_fact(InstalledDebs, packages=tuple(packages))
    missing = [p for p in packages if p not in current]
    interrupted = bool(dpkg and dpkg.get("interrupted"))
    if not missing:
        note = f"; dpkg was interrupted on this host: run `sudo {REPAIR}`" if interrupted else ""
        host.noop(f"packages installed: {', '.join(packages)}{note}")
        return
    if interrupted:  # apt refuses to install anything until dpkg has finished its last run
        yield _repair_command()
    if "postfix" in missing:
        yield StringCommand("echo", QuoteString(POSTFIX_PRESEED), "| debconf-set-selections")
    if update:
        yield _update_command(missing)
    yield _install_command(missing)
