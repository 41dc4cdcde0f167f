"""Install missing Debian packages non-interactively, without touching the ones present."""
from pyinfra import host
from pyinfra.api import QuoteString, StringCommand


from .decide import operation
from ..facts.packages import InstalledDebs

# Preseeded so that installing postfix never asks and never writes a main.cf of its own:
# lockdown writes every setting it relies on.
POSTFIX_PRESEED = "postfix postfix/main_mailer_type select No configuration"


@operation()
def installed(packages: list[str], update: bool = True, current: dict | None = None):
    """
    Install the packages that are missing, with apt-get, non-interactively.

    + packages: Debian package names
    + update: run ``apt-get update`` first (only when something is missing)
    + current: ``InstalledDebs`` fact value; read when not given
    """
    if current is None:
        current = host.get_fact(InstalledDebs, packages=tuple(packages))
    missing = [p for p in packages if p not in current]
    if not missing:
        host.noop(f"packages installed: {', '.join(packages)}")
        return
    if "postfix" in missing:
        yield StringCommand("echo", QuoteString(POSTFIX_PRESEED), "| debconf-set-selections")
    if update:
        yield "apt-get update -qq"
    yield StringCommand(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends",
        *(QuoteString(p) for p in missing),
    )
