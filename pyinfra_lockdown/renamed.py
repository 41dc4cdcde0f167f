"""Names lockdown renamed: the old name still works, and the first time a run meets it lockdown
warns, once per run (not once per host), with the new name. A rename is one line here, and the
place that reads the old name calls ``old_keys`` or ``old_env_names`` (settings.py).
CHANGELOG.md's upgrade notes list the same renames (a unit test keeps them in step)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyinfra import logger

# host data key -> its new name
RENAMED_KEYS = {"mailgun_region": "relay_region"}
# environment (or relay_credentials_file) name -> its new name
RENAMED_ENV = {
    "MAILGUN_SMTP_LOGIN": "LOCKDOWN_RELAY_LOGIN",
    "MAILGUN_SMTP_PASSWORD": "LOCKDOWN_RELAY_PASSWORD",
}

emit: Callable[[str], None] = logger.warning  # pyinfra's log: yellow, counted as a warning
_warned: set[str] = set()


def warn_once(old: str, new: str, kind: str, where: str) -> bool:
    """Warn that ``old`` is now ``new``, unless this run already did; True when it warned."""
    if old in _warned:
        return False
    _warned.add(old)
    emit(f"lockdown: {kind} {old} ({where}) is an old name, use {new}; "
         "the old name still works in this release (CHANGELOG.md, Upgrade notes)")
    return True


def old_keys(data: Any) -> list[str]:
    """The renamed host data keys ``data`` sets, each warned about once per run."""
    found = [old for old in RENAMED_KEYS
             if hasattr(data, "get") and data.get(old) not in (None, "")]
    for old in found:
        warn_once(old, RENAMED_KEYS[old], "host data key", "in the inventory")
    return found


def old_env_names(values: Mapping[str, str], source: str) -> list[str]:
    """The renamed environment names set in ``values``, each warned about once per run."""
    found = [old for old in RENAMED_ENV if values.get(old)]
    for old in found:
        warn_once(old, RENAMED_ENV[old], "variable", f"in {source}")
    return found
