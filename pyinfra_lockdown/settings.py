"""lockdown's whole user-facing interface: every host data key, its default, its validation
and one line of why. The README's table is generated from ``KEYS`` (``python -m
pyinfra_lockdown.settings``) and a test keeps the two equal.

Secrets are NOT host data: the relay login and password come from the environment
(LOCKDOWN_RELAY_LOGIN, LOCKDOWN_RELAY_PASSWORD; the older MAILGUN_SMTP_* names still work) or
from the file named by ``relay_credentials_file``. The provider presets (hosts, ports, login
conventions) are data in ``providers.py``; this module applies them. Each ``*_settings(data)``
function validates its part of the host data and raises ``SettingsError`` naming the first bad
key, before any host is changed.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass, field
from typing import Any

from . import credentials, renamed
from .credentials import (
    LEGACY_ENV,
    LOGIN_ENV,
    PASSWORD_ENV,
    Credentials,
    checked_credentials,
)
from .providers import CUSTOM, PROVIDER_NAMES, PROVIDERS, Provider
from .ufw_rules import LOG_LEVELS, POLICIES, PRUNE_MODES
from .value_checks import (  # the checks KEYS names; SettingsError is part of the interface
    DEADMAN_MIN_SECONDS,
    FALLBACK_FIELDS,
    VERIFIED_TLS_LEVELS,
    SettingsError,
    address_list,
    boolean,
    choice,
    deadman_delay,
    domain,
    email,
    fallback_list,
    logwatch_detail,
    logwatch_services,
    optional_boolean,
    optional_choice,
    optional_email,
    optional_port,
    path,
    port,
    probe,
    region,
    relay_host,
    service_list,
    tls_level,
    whole_number,
)

IMPLICIT_TLS_PORT = 465  # custom relays: wrappermode on this port unless relay_tls_wrappermode says
# The ports mail reaches another host on: MX delivery (25), implicit TLS (465) and
# submission (587). firewall_mail_relay_only closes them outward except the relays' own.
SMTP_PORTS = (25, 465, 587)
MX_PORT = 25

# --- the keys --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    check: Callable[[str, Any], Any]
    why: str
    section: str  # "relay", "logwatch", "firewall" or "audit"
    required: bool = False

    def value(self, data: Any) -> Any:
        found = data.get(self.name) if hasattr(data, "get") else None
        return self.check(self.name, self.default if found is None else found)


KEYS = (
    Key("mail_root_forward", None, email, "receives mail for root, postmaster and every local "
        "user (cron, logwatch)", "relay", required=True),
    Key("relay_provider", "mailgun", choice(*PROVIDER_NAMES),
        "a preset (see Relay providers) or `custom`: any other relay, then `relay_host` is "
        "required", "relay"),
    Key("relay_region", None, region, "Mailgun: `us` (default) or `eu` (separate accounts); "
        "Amazon SES: required, the AWS region of the SMTP credentials, e.g. `eu-west-1`; "
        "SendGrid: `global` (default) or `eu` (EU regional subusers); Postmark: the message "
        "stream's host, `transactional` (default) or `broadcasts`", "relay"),
    Key("mailgun_region", None, optional_choice(*PROVIDERS["mailgun"].regions),
        "older spelling of `relay_region` for Mailgun (`us` or `eu`)", "relay"),
    Key("relay_host", None, relay_host, "host name or IP of the relay; overrides only the "
        "provider's host (its ports and login rules still apply)", "relay"),
    Key("relay_port", 587, port, "one of the provider's ports (see Relay providers); 2525 "
        "(SES: 2587) when the network filters 587", "relay"),
    Key("relay_tls_wrappermode", None, optional_boolean, "`custom` only: implicit TLS on "
        f"`relay_port` (default: only on {IMPLICIT_TLS_PORT}); presets know their ports", "relay"),
    Key("relay_tls_level", "secure", tls_level, "`secure`: the relay's certificate must chain to "
        "the system CA bundle and name the relay's host (an internal CA: add it to that bundle, "
        "see Relay TLS); `verify`; `encrypt` (any certificate: weaker, the audit says so); "
        "`may`/`none` are refused: AUTH never leaves the host without TLS", "relay"),
    Key("relay_credentials_file", None, path, "chmod-600 file outside the repo with "
        f"`{LOGIN_ENV}=` and `{PASSWORD_ENV}=` lines; else those environment variables "
        f"(`{LEGACY_ENV[LOGIN_ENV]}`/`{LEGACY_ENV[PASSWORD_ENV]}` also read)", "relay"),
    Key("mail_sender_domain", None, domain, "local senders (root@host, cron) leave as "
        "user@this domain; default: the relay login's domain (Mailgun, custom); required "
        "for SES, SendGrid, Postmark, Brevo", "relay"),
    Key("relay_fallbacks", [], fallback_list, "further relays, tried in order when the relay "
        "above is down or refuses (Postfix's `smtp_fallback_relay`): a list of dicts with "
        f"{', '.join(f'`{f}`' for f in FALLBACK_FIELDS)} (as the `relay_*` keys; `provider` "
        "defaults to `custom`); credentials from `credentials_file` or "
        "`LOCKDOWN_FALLBACK<n>_LOGIN`/"
        "`_PASSWORD` (n = 1 for the first); each gets its own SASL line, TLS level and canary",
        "relay"),
    Key("mail_log", "journal", choice("journal", "file"), "`file`: on hosts where no syslog "
        "daemon (rsyslog, syslog-ng) writes /var/log/mail.log, Postfix writes it itself "
        "(`maillog_file` through the `postlog` service), rotated weekly by a systemd timer "
        "(`postfix logrotate`, 5 weeks kept); logwatch, the canary and the audit then read "
        "it. `journal`: Postfix's default (the journal, or rsyslog's mail.log), whose lines a "
        "local user cannot forge (see Mail log)", "relay"),
    Key("relay_canary", True, boolean, "after a converge that changed the relay path, send one "
        "message and follow it in Postfix's log until the relay took it; the host fails with "
        "the cause otherwise", "relay"),
    Key("relay_canary_seconds", 30, whole_number(5, 600), "how long the canary may take to "
        "leave (then it is removed from the queue and the host fails)", "relay"),
    Key("relay_canary_to", None, optional_email, "the canary's recipient (default: "
        "`mail_root_forward`)", "relay"),
    Key("logwatch", False, boolean, "install logwatch; its daily report is root's mail, so it "
        "reaches `mail_root_forward` through the relay; reads the journal where there is no "
        "mail log file. Off: nothing about logwatch is touched", "logwatch"),
    Key("logwatch_detail", "low", logwatch_detail, "the report's detail: `low` (counts, as "
        "Debian ships it), `med` (plus client addresses), `high`, or 0-10", "logwatch"),
    Key("logwatch_services", ["All"], logwatch_services, "logwatch services in the report "
        "(`All`, or e.g. `['postfix', 'sshd']`; `-name` leaves one out)", "logwatch"),
    Key("apt_update", True, boolean, "run `apt-get update` before installing a missing package "
        "(only then); off for hosts without a mirror", "relay"),
    Key("firewall_allowed", ["ssh"], service_list, "services let in: `ssh` (sshd's real ports), "
        "`http/tcp`, `443/tcp`, `6000:6007/udp`, or {port, proto, from, action, comment} dicts",
        "firewall"),
    Key("firewall_default_incoming", "deny", choice(*POLICIES), "policy for everything not "
        "declared", "firewall"),
    Key("firewall_default_outgoing", "allow", choice(*POLICIES), "the relay, apt and DNS go out",
        "firewall"),
    Key("firewall_default_routed", "deny", choice(*POLICIES), "a mail host forwards nothing",
        "firewall"),
    Key("firewall_logging", "low", choice(*LOG_LEVELS), "ufw's log level", "firewall"),
    Key("firewall_ipv6", True, boolean, "manage IPv6 rules too (ufw's IPV6=yes)", "firewall"),
    Key("firewall_mail_relay_only", True, boolean, "mail leaves only through the relay: ufw "
        f"rejects (and logs) outgoing TCP to {', '.join(map(str, SMTP_PORTS))} except the ports of "
        "the relay and of each fallback, so a compromised program cannot hand mail to the "
        "recipients' MX hosts itself; a relay on port 25 is refused (ufw could not tell it from "
        "any MX host: use its submission port). `false`: outgoing SMTP is left to "
        "`firewall_default_outgoing`", "firewall"),
    Key("firewall_prune", "tagged", choice(*PRUNE_MODES), "remove undeclared rules: `tagged` "
        "(only lockdown's), `all` (hand-made too) or `off`; never `ufw reset`", "firewall"),
    Key("firewall_deadman", True, boolean, "on the first enable, schedule `ufw disable`, cancelled "
        "only after a NEW SSH connection gets in", "firewall"),
    Key("firewall_deadman_seconds", 120, deadman_delay, "delay before that timer disables ufw "
        f"again ({DEADMAN_MIN_SECONDS}-3600: the check may wait up to half of it for its "
        "connection, "
        "the enable and the disarm need the rest)", "firewall"),
    Key("firewall_deadman_check_port", None, optional_port, "port of that new SSH connection "
        "(default: ssh_port)", "firewall"),
    Key("audit_noise_hours", 24, whole_number(1), "journal window for relay noise (FAIL only for "
        "noise after the last converge)", "audit"),
    Key("audit_queue_max_age_minutes", 60, whole_number(1), "FAIL when deferred mail is older",
        "audit"),
    Key("audit_probe", None, probe, "`off`, or a probe function from the inventory (the lab's); "
        "default: hosts of a `probes` group probe the others", "audit"),
    Key("audit_probe_addresses", None, address_list, "addresses probed from outside for this "
        "host (default: ssh_hostname or the host name)", "audit"),
    Key("audit_json", None, path, "also write the report as JSON there (`-` = stdout); or env "
        "LOCKDOWN_AUDIT_JSON", "audit"),
)
BY_NAME = {key.name: key for key in KEYS}


def data_defaults(*sections: str) -> dict:
    """Defaults for ``@deploy(data_defaults=...)``, so ``host.data.<key>`` works in user code."""
    return {k.name: k.default for k in KEYS if k.section in sections and k.default is not None}


def _value(data: Any, name: str) -> Any:
    return BY_NAME[name].value(data)


class _Merged:
    """pyinfra's host data read once. Each ``host.data.get`` walks every layer (override,
    host, groups, the deploy's defaults) and raises inside for a key a layer lacks; the
    settings look up ~40 keys per host, which at a thousand hosts was ~0.4 ms of the
    controller's CPU per host. ``HostData.dict()`` merges the same layers in the same order."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]):
        self._values = values

    def get(self, key: str, default: Any = None) -> Any:
        return copy(self._values.get(key, default))  # a copy, as host.data gives


def merged(data: Any) -> Any:
    """``data`` (pyinfra's HostData, or a mapping in tests) ready for many look-ups."""
    to_dict = getattr(data, "dict", None)
    if callable(to_dict) and not isinstance(data, Mapping):
        return _Merged(to_dict())
    return data


# --- validated settings ------------------------------------------------------------------------

@dataclass(frozen=True)
class LogwatchSettings:
    enabled: bool = False
    detail: str = "low"
    services: tuple[str, ...] = ("All",)


def nexthop(host: str, port: int) -> str:
    """A relay as Postfix names it in relayhost, smtp_fallback_relay and map keys."""
    return f"[{f'ipv6:{host}' if ':' in host else host}]:{port}"


@dataclass(frozen=True)
class FallbackRelay:
    """One of ``relay_fallbacks``: tried when the relays before it are down or refuse."""
    host: str
    port: int
    tls_level: str
    wrappermode: bool
    provider: str
    credentials: Credentials | None = field(repr=False)  # None only for the audit

    @property
    def relayhost(self) -> str:
        return nexthop(self.host, self.port)


@dataclass(frozen=True)
class RelaySettings:
    host: str
    port: int
    tls_level: str
    sender_domain: str | None  # None only without credentials (audit)
    root_forward: str
    apt_update: bool
    credentials: Credentials | None = field(repr=False)  # None only for the audit
    provider: str = "mailgun"
    wrappermode: bool = False  # implicit TLS (smtp_tls_wrappermode)
    canary: bool = True  # send and follow a canary after a relay change (canary.py)
    canary_seconds: int = 30
    canary_to: str | None = None  # None: root_forward
    logwatch: LogwatchSettings = LogwatchSettings()
    mail_log: str = "journal"  # or "file": Postfix's own /var/log/mail.log (mail_log.py)

    @property
    def canary_recipient(self) -> str:
        return self.canary_to or self.root_forward

    fallbacks: tuple[FallbackRelay, ...] = ()

    @property
    def relayhost(self) -> str:
        """The relayhost value: brackets suppress the MX lookup."""
        return nexthop(self.host, self.port)

    @property
    def all_relays(self) -> tuple[RelaySettings | FallbackRelay, ...]:
        """The relay, then each fallback: every relay the SASL map and the canary cover."""
        return (self, *self.fallbacks)


@dataclass(frozen=True)
class FirewallSettings:
    allowed: list
    default_incoming: str = "deny"
    default_outgoing: str = "allow"
    default_routed: str = "deny"
    logging: str = "low"
    ipv6: bool = True
    prune: str = "tagged"
    deadman: bool = True
    deadman_seconds: int = 120
    deadman_check_port: int | None = None
    apt_update: bool = True
    # The ports of the relay and its fallbacks when mail may leave only through them
    # (firewall_mail_relay_only); None: outgoing SMTP is not restricted.
    mail_relay_ports: tuple[int, ...] | None = None


@dataclass(frozen=True)
class AuditSettings:
    relay: RelaySettings
    firewall: FirewallSettings
    noise_hours: int = 24
    queue_max_age_minutes: int = 60
    probe: Any = None  # None, "off" or a callable (see ``probe``)
    probe_addresses: list[str] | None = None
    json_path: str | None = None


def relay_settings(data: Any, environ: Mapping[str, str] = os.environ,
                   require_credentials: bool = True) -> RelaySettings:
    """
    The relay part of host data, with the provider's preset applied. ``require_credentials=False``
    (the audit, which never needs the password): missing credentials give ``credentials=None``,
    and the sender domain is then known only from ``mail_sender_domain`` (else ``None``).
    """
    data = merged(data)
    renamed.old_keys(data)  # warns once per run: mailgun_region is relay_region now
    name, preset, host, relay_port, wrappermode, level = _endpoint(data)
    root_forward = _value(data, "mail_root_forward")
    update = _value(data, "apt_update")
    declared_domain = _value(data, "mail_sender_domain")
    credentials = _relay_credentials(data, environ, require_credentials)
    _check_login(preset, credentials, LOGIN_ENV)
    sender_domain = _sender_domain(declared_domain, name, preset, credentials)
    fallbacks = _fallbacks(data, environ, require_credentials, nexthop(host, relay_port),
                           wrappermode)
    return RelaySettings(host=host, port=relay_port, tls_level=level,
                         sender_domain=sender_domain, root_forward=root_forward,
                         apt_update=update, credentials=credentials, provider=name,
                         wrappermode=wrappermode, canary=_value(data, "relay_canary"),
                         canary_seconds=_value(data, "relay_canary_seconds"),
                         canary_to=_value(data, "relay_canary_to"),
                         logwatch=logwatch_settings(data), fallbacks=fallbacks,
                         mail_log=_value(data, "mail_log"))


def _relay_credentials(data: Any, environ: Mapping[str, str],
                       require_credentials: bool) -> Credentials | None:
    """The relay's credentials; ``None`` when they are missing and not required (the audit)."""
    try:
        return read_credentials(data, environ)
    except SettingsError as error:
        if require_credentials or error.key not in (LOGIN_ENV, "relay_credentials_file"):
            raise
        return None


def _sender_domain(declared: str | None, name: str, preset: Provider | None,
                   credentials: Credentials | None) -> str | None:
    """``mail_sender_domain``, else the domain of a login that is an address (where the
    provider's logins name it); ``None`` when neither says (the audit without credentials)."""
    if declared is None and preset is not None and not preset.login_names_domain:
        raise SettingsError("mail_sender_domain", f"is required with relay_provider {name!r}: "
                            f"a {preset.title} login says nothing about your sending domain",
                            "Set it to the domain your mail is sent from (verified at "
                            f"{preset.title}), e.g. example.com")
    if credentials and declared is None:
        derived = domain("mail_sender_domain", credentials.login.rpartition("@")[2] or None)
        if derived is None:
            raise SettingsError("mail_sender_domain", "cannot be derived from the relay login "
                                "(it is not an address)", "Set it to your sending domain")
        return derived
    return declared


def _endpoint(data: Any) -> tuple[str, Provider | None, str, int, bool, str]:
    """Provider name, preset, host, port, wrappermode and TLS level of one relay."""
    name = _value(data, "relay_provider")
    preset = PROVIDERS.get(name)
    host = _value(data, "relay_host")
    if host is None and preset is None:
        raise SettingsError("relay_host", f"is required when relay_provider is {CUSTOM!r}")
    region = _region(data, preset)
    relay_port = _value(data, "relay_port")
    wrappermode = _wrappermode(data, preset, relay_port)
    level = _value(data, "relay_tls_level")
    if not host:
        if preset is None:  # no host and no preset: refused above
            raise SettingsError("relay_host", f"is required when relay_provider is {CUSTOM!r}")
        host = preset.host(region)
    _check_verifiable(host, level)
    return name, preset, host, relay_port, wrappermode, level


def _check_login(preset: Provider | None, credentials: Credentials | None, key: str) -> None:
    if credentials and preset is not None:
        problem = preset.check_login(credentials.login, credentials.password)
        if problem:  # the login is no secret; the password is never shown
            # Not shown: for Postmark the login is the token, for SES an access key id.
            raise SettingsError(key, f"the relay login does not look like a "
                                f"{preset.title} login, which {problem}",
                                "Check the credentials, or relay_provider")


def fallback_env_names(index: int) -> tuple[str, str]:
    """The environment names of fallback ``index``'s (1 = the first) login and password."""
    return f"LOCKDOWN_FALLBACK{index}_LOGIN", f"LOCKDOWN_FALLBACK{index}_PASSWORD"


def _fallbacks(data: Any, environ: Mapping[str, str], require_credentials: bool, primary: str,
               wrappermode: bool) -> tuple[FallbackRelay, ...]:
    seen = {primary.lower()}
    found = []
    for index, item in enumerate(_value(data, "relay_fallbacks"), 1):
        where = f"relay_fallbacks[{index}]"
        fields = _fallback_fields(item)
        try:
            name, preset, host, port_number, implicit, level = _endpoint(fields)
            credentials = _fallback_credentials(index, fields, environ, require_credentials)
            _check_login(preset, credentials, "credentials")
        except SettingsError as error:
            raise _in_fallback(index, error) from None
        relay = FallbackRelay(host=host, port=port_number, tls_level=level, wrappermode=implicit,
                              provider=name, credentials=credentials)
        if relay.relayhost.lower() in seen:
            raise SettingsError(where, f"{relay.relayhost} is already a relay above it",
                                "Each fallback must be another relay (or another port)")
        if implicit != wrappermode:
            raise SettingsError(f"{where}.port", f"{port_number} speaks "
                                f"{'implicit TLS' if implicit else 'STARTTLS'} and the relay "
                                f"above {'STARTTLS' if implicit else 'implicit TLS'}: Postfix "
                                "has one smtp_tls_wrappermode for all of them",
                                "Use ports of the same kind (587/2525 or 465) for every relay")
        seen.add(relay.relayhost.lower())
        found.append(relay)
    return tuple(found)


def _fallback_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """A fallback's fields under the top-level keys they mirror (provider: custom)."""
    fields = {FALLBACK_FIELDS[name]: value for name, value in item.items()}
    fields.setdefault("relay_provider", CUSTOM)
    return fields


def _in_fallback(index: int, error: SettingsError) -> SettingsError:
    """``error`` of a mirrored top-level key, named as the field of fallback ``index``."""
    short = {top: short for short, top in FALLBACK_FIELDS.items()}.get(error.key, error.key)
    return SettingsError(f"relay_fallbacks[{index}].{short}", error.problem, error.fix)


def _fallback_credentials(index: int, fields: dict, environ: Mapping[str, str],
                          require_credentials: bool) -> Credentials | None:
    """A fallback's own login and password: its credentials_file (the same form as
    relay_credentials_file), else LOCKDOWN_FALLBACK<index>_LOGIN/_PASSWORD."""
    try:
        if fields.get("relay_credentials_file"):
            return read_credentials({"relay_credentials_file": fields["relay_credentials_file"]},
                                    environ)
        login_env, password_env = fallback_env_names(index)
        login, password = environ.get(login_env), environ.get(password_env)
        if not login or not password:
            missing = " and ".join(n for n, v in ((login_env, login), (password_env, password))
                                   if not v)
            raise SettingsError("credentials", f"no credentials: {missing} missing in the "
                                "environment", f"Export {login_env} and {password_env}, or set "
                                "its credentials_file to a file holding LOCKDOWN_RELAY_LOGIN= "
                                "and LOCKDOWN_RELAY_PASSWORD= lines")
        return checked_credentials(login, password, "credentials")
    except SettingsError:
        if require_credentials:
            raise
        return None


def _check_verifiable(host: str, level: str) -> None:
    """A certificate names host names: an IP address as relayhost can never match one."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    if level in VERIFIED_TLS_LEVELS:
        raise SettingsError("relay_tls_level", f"{level!r} checks that the relay's certificate "
                            f"names the relay, but relay_host {host!r} is an IP address: Postfix "
                            "matches the relay's host name against the certificate's names, "
                            "so delivery would never succeed",
                            "Set relay_host to the relay's host name (the name its certificate "
                            "carries), or choose relay_tls_level: encrypt (any certificate: "
                            "weaker)")


def logwatch_settings(data: Any) -> LogwatchSettings:
    """The logwatch part of host data (read even when off, so a bad value is still named)."""
    data = merged(data)
    return LogwatchSettings(enabled=_value(data, "logwatch"),
                            detail=_value(data, "logwatch_detail"),
                            services=tuple(_value(data, "logwatch_services")))


def _region(data: Any, preset: Provider | None) -> str | None:
    """The provider's region: ``relay_region`` (``mailgun_region`` is Mailgun's older name)."""
    chosen, legacy = _value(data, "relay_region"), _value(data, "mailgun_region")
    if legacy is not None and (preset is None or preset.name != "mailgun"):
        raise SettingsError("mailgun_region", "applies only to relay_provider 'mailgun'",
                            "Use relay_region")
    if chosen and legacy and chosen != legacy:
        raise SettingsError("relay_region", f"{chosen!r} contradicts mailgun_region {legacy!r}",
                            "Keep one of the two")
    chosen = chosen or legacy
    if preset is None or not preset.hosts or list(preset.hosts) == [""]:
        if chosen is not None:
            raise SettingsError("relay_region", f"{chosen!r}: relay_provider "
                                f"{(preset.name if preset else CUSTOM)!r} has no regions")
        return None
    if preset.region_format is not None:
        if chosen is None:
            raise SettingsError("relay_region", f"is required with relay_provider "
                                f"{preset.name!r}", f"Set it to your {preset.title} region, "
                                "e.g. eu-west-1 (the region your identities are verified in)")
        if not preset.region_format.fullmatch(chosen):
            raise SettingsError("relay_region", f"{chosen!r} is not an AWS region name "
                                "(e.g. us-east-1, eu-west-1)")
        if preset.known_regions and chosen not in preset.known_regions:
            raise SettingsError("relay_region", f"{chosen!r} is not a region where "
                                f"{preset.title} has an SMTP endpoint: one of "
                                f"{', '.join(preset.known_regions)}",
                                "SES SMTP credentials work only in the region they were created "
                                "in: set relay_region to that region")
        return chosen
    chosen = chosen or preset.default_region
    if chosen not in preset.regions:
        raise SettingsError("relay_region", f"{chosen!r} is not a {preset.title} region: "
                            f"one of {', '.join(preset.regions)}")
    return chosen


def _wrappermode(data: Any, preset: Provider | None, relay_port: int) -> bool:
    """Implicit TLS: a preset knows which of its ports speak it; a custom relay may say."""
    asked = _value(data, "relay_tls_wrappermode")
    if preset is None:
        return relay_port == IMPLICIT_TLS_PORT if asked is None else asked
    if relay_port not in preset.ports:
        raise SettingsError("relay_port", f"{relay_port} is not offered by {preset.title}: "
                            f"STARTTLS on {', '.join(map(str, preset.starttls_ports))}"
                            + (f", implicit TLS on {', '.join(map(str, preset.implicit_tls_ports))}"
                               if preset.implicit_tls_ports else ", no implicit-TLS port"))
    implicit = relay_port in preset.implicit_tls_ports
    if asked is not None and asked != implicit:
        raise SettingsError("relay_tls_wrappermode", f"{asked} contradicts {preset.title}'s "
                            f"port {relay_port} ({'implicit TLS' if implicit else 'STARTTLS'})",
                            "Remove it: presets know their ports")
    return implicit


def firewall_settings(data: Any) -> FirewallSettings:
    """The firewall part of host data (each ``firewall_allowed`` item is checked by
    ``firewall.firewall_rules``, which knows ufw's syntax)."""
    data = merged(data)
    return FirewallSettings(
        allowed=_value(data, "firewall_allowed"),
        default_incoming=_value(data, "firewall_default_incoming"),
        default_outgoing=_value(data, "firewall_default_outgoing"),
        default_routed=_value(data, "firewall_default_routed"),
        logging=_value(data, "firewall_logging"),
        ipv6=_value(data, "firewall_ipv6"),
        prune=_value(data, "firewall_prune"),
        deadman=_value(data, "firewall_deadman"),
        deadman_seconds=_value(data, "firewall_deadman_seconds"),
        deadman_check_port=_value(data, "firewall_deadman_check_port"),
        apt_update=_value(data, "apt_update"),
        mail_relay_ports=mail_relay_ports(data),
    )


def mail_relay_ports(data: Any) -> tuple[int, ...] | None:
    """The ports of the relay and of each fallback (in order, no repeats) when
    ``firewall_mail_relay_only`` is on, else None. Needs no credentials and no
    ``mail_root_forward``: the firewall alone reads it."""
    data = merged(data)
    if not _value(data, "firewall_mail_relay_only"):
        return None
    ports = [_endpoint(data)[3]]
    for index, item in enumerate(_value(data, "relay_fallbacks"), 1):
        try:
            ports.append(_endpoint(_fallback_fields(item))[3])
        except SettingsError as error:
            raise _in_fallback(index, error) from None
    where = {ports[0]: "relay_port"}
    for index, number in enumerate(ports[1:], 1):
        where.setdefault(number, f"relay_fallbacks[{index}].port")
    check_relay_ports(tuple(where), where)
    return tuple(where)


def check_relay_ports(ports: tuple[int, ...], where: Mapping[int, str] | None = None) -> None:
    """Refuse a relay on port 25 while mail may leave only through the relays: ufw matches
    ports and addresses, and 25 to the relay is 25 to every MX host (see docs/design.md)."""
    for number in ports:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise SettingsError("firewall_mail_relay_only", f"relay port {number!r} is not a "
                                "port number")
    if MX_PORT in ports:
        named = (where or {}).get(MX_PORT, "relay_port")
        raise SettingsError("firewall_mail_relay_only", f"{named} is {MX_PORT}, the port every "
                            "MX host listens on: ufw cannot let Postfix reach the relay on 25 "
                            "and refuse everyone else's 25 (the relay's address comes from DNS "
                            "and changes)", f"Use the relay's submission port (587, 2525 or "
                            f"465) in {named}, or set firewall_mail_relay_only: false (outgoing "
                            "SMTP is then open towards every host)")


def audit_settings(data: Any, environ: Mapping[str, str] = os.environ) -> AuditSettings:
    """What the audit expects of a host: the deploy's own settings (no password needed)."""
    data = merged(data)
    return AuditSettings(
        relay=relay_settings(data, environ, require_credentials=False),
        firewall=firewall_settings(data),
        noise_hours=_value(data, "audit_noise_hours"),
        queue_max_age_minutes=_value(data, "audit_queue_max_age_minutes"),
        probe=_value(data, "audit_probe"),
        probe_addresses=_value(data, "audit_probe_addresses"),
        json_path=_value(data, "audit_json") or environ.get("LOCKDOWN_AUDIT_JSON") or None,
    )


def read_credentials(data: Any, environ: Mapping[str, str] = os.environ) -> Credentials:
    """Relay credentials from ``relay_credentials_file`` or the environment (credentials.py)."""
    data = merged(data)
    return credentials.read_credentials(data, environ, _value(data, "relay_credentials_file"))


# --- the README's table ----------------------------------------------------------------------

def markdown_table() -> str:
    """The host data table the README shows (checked by tests/unit/test_settings.py)."""
    lines = ["| key | default | what and why |", "|---|---|---|"]
    for key in KEYS:
        default = ("**required**" if key.required else
                   "unset" if key.default is None else f"`{key.default!r}`")
        lines.append(f"| `{key.name}` | {default} | {key.why} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
