"""Host data accepted by lockdown: every key, its default, and its validation.

This module is the one place that documents lockdown's user-facing interface. Set these keys
in an inventory (host or group data). Secrets are NOT host data: the relay login and password
come from the environment (MAILGUN_SMTP_LOGIN, MAILGUN_SMTP_PASSWORD) or from the file named
by ``relay_credentials_file``.

Relay (Postfix null client)
    relay_provider          "mailgun"   "mailgun", or "custom" (then relay_host is required)
    mailgun_region          "us"        "us" -> smtp.mailgun.org, "eu" -> smtp.eu.mailgun.org
    relay_host              None        host name or IP of the relay; overrides provider/region
    relay_port              587         587 (STARTTLS), 465 (implicit TLS: wrappermode is set
                                        automatically) or 2525; any port 1-65535 is accepted
    relay_tls_level         "encrypt"   "encrypt", "verify" or "secure" (verify/secure check the
                                        relay's certificate against the system CA bundle);
                                        "may" and "none" are refused: AUTH must never leave
                                        the host without TLS
    relay_credentials_file  None        path (outside the repo, readable only by you) of a file
                                        with MAILGUN_SMTP_LOGIN=... and MAILGUN_SMTP_PASSWORD=...
                                        lines; when unset, those environment variables are used
    mail_sender_domain      None        domain that local senders (root@<host>, cron, ...) are
                                        rewritten to; default: the domain of the relay login
                                        (postmaster@mg.example.com -> mg.example.com)
    mail_root_forward       (required)  address that receives mail for root, postmaster and
                                        every other local user (cron, logwatch)
    apt_update              True        run "apt-get update" before installing missing packages
                                        (only when a package is missing; off for offline boxes)

Firewall (ufw)
    firewall_allowed        ["ssh"]     services allowed in: "ssh" (sshd's real ports),
                                        "http/tcp", "443/tcp", "6000:6007/udp", or dicts
                                        {"port": 443, "proto": "tcp", "from": "198.51.100.0/24",
                                         "action": "allow"|"limit"|"deny"|"reject",
                                         "comment": "..."}
    firewall_default_incoming  "deny"   allow | deny | reject
    firewall_default_outgoing  "allow"  allow | deny | reject
    firewall_default_routed    "deny"   allow | deny | reject
    firewall_logging        "low"       off | low | medium | high | full
    firewall_ipv6           True        manage IPv6 rules too
    firewall_prune          "tagged"    remove undeclared rules: "tagged" (only rules lockdown
                                        added), "all" (also hand-made ones) or "off"
    firewall_deadman        True        on the first enable, schedule "ufw disable" and cancel
                                        it only after a new SSH connection succeeds
    firewall_deadman_seconds   120      delay before that timer disables ufw (1-3600)
    firewall_deadman_check_port None    port of the new SSH connection (default: ssh_port);
                                        tests point it at a closed port to fire the timer

Audit (deploys/audit.py, facts only)
    audit_noise_hours            24     journal window for relay noise ("Relay access denied",
                                        smtpd connects from outside); FAIL only for noise after
                                        the last converge
    audit_queue_max_age_minutes  60     FAIL when a deferred message is older than this
    audit_probe                  None   "lab": probe from the lab prober; otherwise hosts of a
                                        `probes` inventory group probe every target
    audit_probe_addresses        None   addresses probed for this host (default: ssh_hostname)
    audit_json                   None   also write the report as JSON to this path ("-" = stdout)
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra.api.exceptions import PyinfraError

MAILGUN_HOSTS = {"us": "smtp.mailgun.org", "eu": "smtp.eu.mailgun.org"}
TLS_LEVELS = ("encrypt", "verify", "secure")
LOGIN_ENV, PASSWORD_ENV = "MAILGUN_SMTP_LOGIN", "MAILGUN_SMTP_PASSWORD"
CREDENTIAL_KEYS = (LOGIN_ENV, "relay_credentials_file")  # keys a credentials error names
POLICIES = ("allow", "deny", "reject")
LOG_LEVELS = ("off", "low", "medium", "high", "full")
PRUNE_MODES = ("tagged", "all", "off")

DEFAULTS = {
    "relay_provider": "mailgun",
    "mailgun_region": "us",
    "relay_host": None,
    "relay_port": 587,
    "relay_tls_level": "encrypt",
    "relay_credentials_file": None,
    "mail_sender_domain": None,
    "mail_root_forward": None,
    "apt_update": True,
    "firewall_allowed": ["ssh"],
    "firewall_default_incoming": "deny",
    "firewall_default_outgoing": "allow",
    "firewall_default_routed": "deny",
    "firewall_logging": "low",
    "firewall_ipv6": True,
    "firewall_prune": "tagged",
    "firewall_deadman": True,
}

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ADDRESS = re.compile(r"^[A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


class SettingsError(PyinfraError):
    """Bad host data or missing credentials; raised before any host is changed."""

    def __init__(self, key: str, problem: str, fix: str = ""):
        self.key = key
        message = f"host data `{key}`: {problem}"
        super().__init__(f"{message}. {fix}".rstrip(". ") + "." if fix else message)


@dataclass(frozen=True)
class Credentials:
    login: str
    password: str = field(repr=False)

    def __repr__(self) -> str:  # never print the password, even by accident
        return f"Credentials(login={self.login!r}, password=***)"


@dataclass(frozen=True)
class RelaySettings:
    host: str
    port: int
    tls_level: str
    sender_domain: str | None  # None only without credentials (audit)
    root_forward: str
    apt_update: bool
    credentials: Credentials | None = field(repr=False)  # None only for the audit

    @property
    def relayhost(self) -> str:
        """The relayhost value: brackets suppress the MX lookup."""
        host = f"ipv6:{self.host}" if ":" in self.host else self.host
        return f"[{host}]:{self.port}"

    @property
    def wrappermode(self) -> bool:
        return self.port == 465


@dataclass(frozen=True)
class FirewallSettings:
    allowed: list
    default_incoming: str
    default_outgoing: str
    default_routed: str
    logging: str
    ipv6: bool
    prune: str
    deadman: bool


def _get(data, key):
    value = data.get(key) if hasattr(data, "get") else None
    return DEFAULTS[key] if value is None else value


def _choice(data, key, choices):
    value = _get(data, key)
    if value not in choices:
        raise SettingsError(key, f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _bool(data, key) -> bool:
    value = _get(data, key)
    if isinstance(value, str):  # `pyinfra --data key=false` passes strings
        value = _BOOL_WORDS.get(value.lower(), value)
    if not isinstance(value, bool):
        raise SettingsError(key, f"{value!r} must be True or False")
    return value


def validate_port(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise SettingsError(key, f"{value!r} is not a port number")
    port = int(value)
    if not 1 <= port <= 65535:
        raise SettingsError(key, f"{port} is out of range (1-65535)")
    return port


def _relay_host(data) -> str:
    provider = _choice(data, "relay_provider", ("mailgun", "custom"))
    region = _choice(data, "mailgun_region", tuple(MAILGUN_HOSTS))
    host = (data.get("relay_host") if hasattr(data, "get") else None) or None
    if host is not None:
        if not isinstance(host, str) or not (_is_ip(host) or _HOSTNAME.match(host)):
            raise SettingsError("relay_host", f"{host!r} is not a host name or IP address")
        return host
    if provider == "custom":
        raise SettingsError("relay_host", "is required when relay_provider is 'custom'")
    return MAILGUN_HOSTS[region]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address(data, key) -> str:
    value = _get(data, key)
    if value is None:
        raise SettingsError(key, "is required", "Set it to the address that should receive "
                            "root's mail (cron, logwatch), e.g. ops@example.com")
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise SettingsError(key, f"{value!r} is not an e-mail address")
    return value


def _tls_level(data) -> str:
    level = _get(data, "relay_tls_level")
    if level in ("may", "none", ""):
        raise SettingsError("relay_tls_level", f"{level!r} would let the password leave the "
                            "host without TLS", "Use encrypt, verify or secure")
    return _choice(data, "relay_tls_level", TLS_LEVELS)


def read_credentials(data, environ=os.environ) -> Credentials:
    """Relay credentials from ``relay_credentials_file`` or the environment, never host data."""
    for forbidden in ("relay_password", "mailgun_password", "smtp_password"):
        if hasattr(data, "get") and data.get(forbidden) is not None:
            raise SettingsError(forbidden, "secrets must not be kept in inventory data",
                                f"Remove it; export {PASSWORD_ENV} or use relay_credentials_file")
    path = data.get("relay_credentials_file") if hasattr(data, "get") else None
    if path:
        values = _read_secret_file(Path(os.path.expanduser(str(path))))
        source = f"relay_credentials_file {path}"
    else:
        values, source = environ, "the environment"
    login, password = values.get(LOGIN_ENV), values.get(PASSWORD_ENV)
    key = "relay_credentials_file" if path else LOGIN_ENV
    if not login or not password:
        missing = " and ".join(n for n, v in ((LOGIN_ENV, login), (PASSWORD_ENV, password)) if not v)
        raise SettingsError(key, f"no relay credentials: {missing} missing in {source}",
                            f"Export {LOGIN_ENV} and {PASSWORD_ENV}, or set relay_credentials_file "
                            "to a file holding both")
    if any(c.isspace() for c in login) or "\n" in password:
        raise SettingsError(key, f"{LOGIN_ENV} must not contain spaces and {PASSWORD_ENV} "
                            "must be one line")
    return Credentials(login=login, password=password)


def _read_secret_file(path: Path) -> dict:
    key = "relay_credentials_file"
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as error:
        raise SettingsError(key, f"cannot read {path}: {error.strerror}") from None
    if mode & 0o077:
        raise SettingsError(key, f"{path} is readable by other users (mode {mode & 0o777:o})",
                            f"Run: chmod 600 {path}")
    values = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def relay_settings(data, environ=os.environ, require_credentials: bool = True) -> RelaySettings:
    """
    Validate the relay part of host data; raises SettingsError naming the bad key.

    ``require_credentials=False`` (the audit, which never needs the password): missing or
    unreadable credentials give ``credentials=None``, and the sender domain is then known
    only from ``mail_sender_domain`` (else ``None``).
    """
    host = _relay_host(data)
    port = validate_port("relay_port", _get(data, "relay_port"))
    tls_level = _tls_level(data)
    root_forward = _address(data, "mail_root_forward")
    update = apt_update(data)
    try:
        credentials = read_credentials(data, environ)
    except SettingsError as error:
        if require_credentials or error.key not in CREDENTIAL_KEYS:
            raise
        credentials = None
    login_domain = credentials.login.rpartition("@")[2] if credentials else None
    sender_domain = _get(data, "mail_sender_domain") or login_domain
    if credentials and (not sender_domain or not _HOSTNAME.match(sender_domain)
                        or "." not in sender_domain):
        raise SettingsError("mail_sender_domain", f"{sender_domain!r} is not a domain",
                            "Set it, or use a relay login of the form user@your-mailgun-domain")
    return RelaySettings(host=host, port=port, tls_level=tls_level, sender_domain=sender_domain,
                         root_forward=root_forward, apt_update=update, credentials=credentials)


def apt_update(data) -> bool:
    """The ``apt_update`` key, for deploys that need nothing else of the relay settings."""
    return _bool(data, "apt_update")


def firewall_settings(data) -> FirewallSettings:
    """Validate the firewall part of host data (rule syntax is checked by operations.ufw_rules)."""
    allowed = _get(data, "firewall_allowed")
    if not isinstance(allowed, (list, tuple)):
        raise SettingsError("firewall_allowed", f"{allowed!r} must be a list of services")
    return FirewallSettings(
        allowed=list(allowed),
        default_incoming=_choice(data, "firewall_default_incoming", POLICIES),
        default_outgoing=_choice(data, "firewall_default_outgoing", POLICIES),
        default_routed=_choice(data, "firewall_default_routed", POLICIES),
        logging=_choice(data, "firewall_logging", LOG_LEVELS),
        ipv6=_bool(data, "firewall_ipv6"),
        prune=_choice(data, "firewall_prune", PRUNE_MODES),
        deadman=_bool(data, "firewall_deadman"),
    )
