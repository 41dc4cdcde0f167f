"""The value checks of host data: ``(key, value) -> clean value``, or ``SettingsError`` naming
the key. ``settings.KEYS`` names one per key; this module knows nothing of the keys."""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import Any

from pyinfra.api.exceptions import PyinfraError

TLS_LEVELS = ("encrypt", "verify", "secure")
# The levels at which Postfix checks the relay's certificate against its name and the CA bundle.
VERIFIED_TLS_LEVELS = ("verify", "secure")
AUDIT_PROBE_OFF = "off"

# Patterns are used with fullmatch only: `$` also matches before a final newline, and a value
# with a newline would write a second line into main.cf or a map.
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²" and "٣"
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


class SettingsError(PyinfraError):
    """Bad host data or missing credentials; raised before any host is changed."""

    def __init__(self, key: str, problem: str, fix: str = ""):
        self.key, self.problem, self.fix = key, problem, fix
        message = f"host data `{key}`: {problem}"
        super().__init__(f"{message}. {fix}".rstrip(". ") + "." if fix else message)


# --- value checks: (key, value) -> clean value, or SettingsError naming the key --------------

def choice(*choices: object) -> Callable[[str, Any], Any]:
    def check(key: str, value: Any) -> Any:
        if value not in choices:
            raise SettingsError(key, f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value
    check.shown = " | ".join(map(str, choices))  # type: ignore[attr-defined]
    return check


def optional_choice(*choices: object) -> Callable[[str, Any], Any]:
    strict = choice(*choices)
    return lambda key, value: None if value is None else strict(key, value)


def boolean(key: str, value: Any) -> bool:
    if isinstance(value, str):  # `pyinfra --data key=false` passes strings
        value = _BOOL_WORDS.get(value.lower(), value)
    if not isinstance(value, bool):
        raise SettingsError(key, f"{value!r} must be True or False")
    return value


def port(key: str, value: Any) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, str))
            or not _DIGITS.fullmatch(str(value))):
        raise SettingsError(key, f"{value!r} is not a port number")
    number = int(value)
    if not 1 <= number <= 65535:
        raise SettingsError(key, f"{number} is out of range (1-65535)")
    return number


def optional_port(key: str, value: Any) -> int | None:
    return None if value is None else port(key, value)


def whole_number(low: int, high: int | None = None) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> Any:
        ok = not isinstance(value, bool) and bool(_DIGITS.fullmatch(str(value)))
        if not ok or int(value) < low or (high is not None and int(value) > high):
            bounds = f"{low}-{high}" if high is not None else f">= {low}"
            raise SettingsError(key, f"{value!r} must be a whole number ({bounds})")
        return int(value)
    return check


# The dead-man check waits for its new SSH connection up to half the delay (at most pyinfra's
# connect timeout, 10 s by default) and must have concluded, and the disarm run, before the
# timer fires: below 20 s a slow login or a slow `ufw enable` lets the timer switch off the
# firewall of a run that succeeded.
DEADMAN_MIN_SECONDS = 20


def deadman_delay(key: str, value: Any) -> int:
    seconds = whole_number(1)(key, value)
    if seconds > 3600:
        whole_number(DEADMAN_MIN_SECONDS, 3600)(key, value)
    if seconds < DEADMAN_MIN_SECONDS:
        raise SettingsError(key, f"{value!r} is too short: at least {DEADMAN_MIN_SECONDS} s, "
                            "so that "
                            "the timer cannot fire before the new SSH connection's check (up to "
                            "half the delay) and the disarm of a run that succeeded")
    return seconds


def host_name(key: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not (_is_ip(value) or _HOSTNAME.fullmatch(value)):
        raise SettingsError(key, f"{value!r} is not a host name or IP address")
    return value


def relay_host(key: str, value: Any) -> str | None:
    """Unset (None) means the provider's host; an empty string is a mistake, not "unset"."""
    if value == "":
        raise SettingsError(key, "is empty", "Remove the key to use the provider's host, or set "
                            "it to the relay's host name or IP address")
    return host_name(key, value)


def optional_boolean(key: str, value: Any) -> bool | None:
    return None if value is None else boolean(key, value)


def region(key: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9-]{2,32}", value):
        raise SettingsError(key, f"{value!r} is not a region name")
    return value


def domain(key: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _HOSTNAME.fullmatch(value) or "." not in value:
        raise SettingsError(key, f"{value!r} is not a domain")
    return value


def email(key: str, value: Any) -> str:
    if value is None:
        raise SettingsError(key, "is required", "Set it to the address that should receive "
                            "root's mail (cron, logwatch), e.g. ops@example.com")
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise SettingsError(key, f"{value!r} is not an e-mail address")
    return value


def optional_email(key: str, value: Any) -> str | None:
    return None if value in (None, "") else email(key, value)


def tls_level(key: str, value: Any) -> str:
    if value in ("may", "none", ""):
        raise SettingsError(key, f"{value!r} would let the password leave the host without TLS",
                            "Use encrypt, verify or secure")
    return choice(*TLS_LEVELS)(key, value)


def service_list(key: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise SettingsError(key, f"{value!r} must be a list of services")
    return list(value)  # each item is checked by firewall.firewall_rules (it knows ufw's syntax)


_LOGWATCH_SERVICE = re.compile(r"-?[A-Za-z0-9][A-Za-z0-9_.-]*")
LOGWATCH_DETAILS = ("low", "med", "high")


def logwatch_detail(key: str, value: Any) -> str:
    """logwatch's own words (low, med, high) or its numeric level 0-10."""
    text = str(value).strip().lower()
    if text in LOGWATCH_DETAILS or (_DIGITS.fullmatch(text) and 0 <= int(text) <= 10
                                    and not isinstance(value, bool)):
        return text
    raise SettingsError(key, f"{value!r} is not a logwatch detail level",
                        "Use low, med, high or a number 0-10")


def logwatch_services(key: str, value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise SettingsError(key, f"{value!r} must be a non-empty list of logwatch services")
    names = [str(item).strip() for item in items]
    for name in names:
        if not _LOGWATCH_SERVICE.fullmatch(name):
            raise SettingsError(key, f"{name!r} is not a logwatch service name",
                                "Use names such as All, postfix, sshd, or -name to leave one out")
    return names


def path(key: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise SettingsError(key, f"{value!r} is not a path")
    return str(value)


def address_list(key: str, value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    items = value.split(",") if isinstance(value, str) else value
    if (not isinstance(items, (list, tuple))
            or not all(host_name(key, str(a).strip()) for a in items)):
        raise SettingsError(key, f"{value!r} must be a list of host names or addresses")
    return [str(a).strip() for a in items]


# A fallback relay's fields: the top-level key each one mirrors (validated by that key's check).
FALLBACK_FIELDS = {"provider": "relay_provider", "region": "relay_region", "host": "relay_host",
                   "port": "relay_port", "tls_level": "relay_tls_level",
                   "tls_wrappermode": "relay_tls_wrappermode",
                   "credentials_file": "relay_credentials_file"}


def fallback_list(key: str, value: Any) -> list[dict]:
    """A list of dicts with FALLBACK_FIELDS only (each field is checked by relay_settings)."""
    if value in (None, "", []):
        return []
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, dict) for i in items):
        raise SettingsError(key, f"{value!r} must be a list of relays, each a dict",
                            "e.g. [{'provider': 'sendgrid', 'port': 587}]")
    for index, item in enumerate(items, 1):
        unknown = sorted(str(name) for name in item if name not in FALLBACK_FIELDS)
        if unknown:
            raise SettingsError(f"{key}[{index}]", f"unknown field {unknown[0]!r}",
                                f"Use {', '.join(FALLBACK_FIELDS)}")
    return [dict(item) for item in items]


def probe(key: str, value: Any) -> Any:
    """None (a `probes` group if the inventory has one), "off", or a callable the inventory
    provides: ``probe(addresses, ports) -> {"via": str, "results": [...], "error": str|None}``."""
    if value is None or value == AUDIT_PROBE_OFF or callable(value):
        return value
    raise SettingsError(key, f"{value!r} must be \"off\" or a probe function from the inventory")


def _is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address, without an IPv6 scope id: ``ipaddress`` accepts any text after
    ``%`` (``::1%x]:587, [mx.attacker.example``), which would end up in main.cf's relayhost."""
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
