"""The Postfix null client: every message leaves through the relay, AUTH only inside TLS."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from pyinfra import host as current_host
from pyinfra.api import deploy
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import python, server

from . import canary
from ._pyinfra import name_lost_connections, send_at_once
from .facts.host_state import HostState, LockdownState
from .facts.postfix import (
    ALIASES_MAP,
    CANARY_ROUTES_MAP,
    MAIL_LOG,
    SASL_PASSWORD_MAP,
    SENDERS_MAP,
    TLS_POLICY_MAP,
)
from .fallback import (
    CANARY_SERVICE_ENTRY,
    CANARY_TRANSPORT,
    canary_routes_map,
    cleared_settings,
    fallback_settings,
    tls_policy_map,
)
from .logwatch import logwatch_step
from .mail_log import log_file_step, mail_log_settings, mail_log_steps, rotation_step, writes_file
from .operations import packages, postfix
from .operations.postfix import SECRET_MODE, SECRET_OWNER, settings_requiring_restart
from .plan import (
    Operation,
    any_called_changed,
    apt_update_wanted,
    call_if,
    host_state,
    if_needed,
    installs_with_update,
    needed,
)
from .settings import Credentials, RelaySettings, data_defaults, relay_settings
from .text import printable

PACKAGES = ["postfix", "libsasl2-modules", "ca-certificates"]
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # the system bundle update-ca-certificates writes
MANDATORY_CIPHERS = "high"
LOCAL_DOMAINS = ("localhost", "localhost.localdomain")

# The TLS floor towards the relay: never below TLS 1.2, lockdown's own floor, stricter than some
# providers document (Mailgun refuses TLS 1.0/1.1 since 2021; Postmark documents TLS 1.1 or
# higher since 2020, README "Relay providers"). Two spellings: the protocol range Postfix >= 3.6
# reads, and the exclusion list every version reads. Which one a host gets is decided from what its
# Postfix writes for its own built-in default (``postconf -d``), never from a version table.
TLS_FLOOR_PARAMETERS = ("smtp_tls_mandatory_protocols", "smtp_tls_protocols")
RANGE_FLOOR = ">=TLSv1.2"
EXCLUSION_FLOOR = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"


# The oldest compatibility level whose defaults lockdown relies on (smtpd_relay_restrictions,
# chroot off...). A release that ships a newer one keeps it: see compatibility_level().
MIN_COMPATIBILITY_LEVEL = "3.6"


def _level(text: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in (text or "0").split("."))
    except ValueError:  # e.g. a ${...} expression: treat as unknown, never as higher
        return (0,)


def compatibility_level(parameters: dict | None) -> str:
    """Never lower what the host has or its release ships (``parameters``: PostfixParameters):
    the highest of lockdown's minimum, the release's stock level and the current value."""
    parameters = parameters or {}
    candidates = [MIN_COMPATIBILITY_LEVEL, parameters.get("stock_compatibility_level"),
                  parameters.get("compatibility_level")]
    return max((c for c in candidates if c), key=_level)


def main_cf_settings(relay: RelaySettings, parameters: dict | None = None) -> dict[str, str]:
    """The main.cf lockdown owns, for a host whose PostfixParameters are ``parameters``.
    Values are written exactly like this and compared so."""
    settings = {
        "compatibility_level": compatibility_level(parameters),
        # Null client: nothing is delivered here; mail for local users is aliased away.
        # myorigin is pinned because Debian's "Internet Site" sets it to /etc/mailname,
        # which may differ from myhostname, the domain the alias tables match.
        "myorigin": "$myhostname",
        "mydestination": "",
        "local_transport": "error:local delivery is disabled",
        "alias_maps": "",
        "alias_database": "",
        "virtual_alias_maps": f"regexp:{ALIASES_MAP}",
        "smtp_generic_maps": f"regexp:{SENDERS_MAP}",
        # Nothing listens beyond loopback, and even then nothing relays for strangers.
        "inet_interfaces": "loopback-only",
        "mynetworks": "127.0.0.0/8 [::1]/128",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        # The relay, authenticated, and never without TLS.
        "relayhost": relay.relayhost,
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": f"${{default_database_type}}:{SASL_PASSWORD_MAP}",
        "smtp_sasl_security_options": "noanonymous, noplaintext",
        "smtp_sasl_tls_security_options": "noanonymous",
        "smtp_tls_security_level": relay.tls_level,
        "smtp_tls_wrappermode": "yes" if relay.wrappermode else "no",
        "smtp_tls_CAfile": CA_BUNDLE,
        # Every message goes to one relay that speaks TLS 1.2+ (the floor below), so the
        # mandatory-TLS cipher grade can be the top one (TLS_README: "high" suits a client
        # that sends everything to one capable relay). No grade is above it: never lowers a
        # release's default.
        "smtp_tls_mandatory_ciphers": MANDATORY_CIPHERS,
        **fallback_settings(relay),
    }
    return settings


def tls_floor_spellings(defaults: dict | None) -> tuple[str, ...]:
    """The floor's spellings this host's Postfix reads, preferred first. ``defaults``: the
    PostfixDefaults fact; ``None`` (Postfix not installed yet) gets the exclusion list, which
    every version reads (so a later run, knowing the version, keeps it)."""
    builtin = (defaults or {}).get("smtp_tls_mandatory_protocols") or ""
    if ">=" in builtin or "<=" in builtin:  # this Postfix speaks protocol ranges itself
        return (RANGE_FLOOR, EXCLUSION_FLOOR)
    return (EXCLUSION_FLOOR,)


def tls_floor_settings(defaults: dict | None, current: dict | None = None) -> dict[str, str]:
    """main.cf lines of the TLS floor; an already written spelling this host reads is kept."""
    spellings = tls_floor_spellings(defaults)
    current = current or {}
    return {name: current[name] if current.get(name) in spellings else spellings[0]
            for name in TLS_FLOOR_PARAMETERS}


def _bound_host(service: str) -> str | None:
    """The host of a master.cf inet service name (``0.0.0.0:smtp``, ``[::]:2525``), or None
    when it names only a port (it then listens on inet_interfaces, loopback-only here)."""
    if service.startswith("["):
        return service[1:].partition("]")[0]
    host, separator, _ = service.rpartition(":")
    return host if separator else None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: whatever it resolves to, not known to be loopback
        return False


def public_inet_services(master: dict | None) -> list[str]:
    """Enabled master.cf inet services bound to an address beyond loopback (``0.0.0.0:smtp``,
    ``[::]:2525 inet ... smtpd``): an explicit address overrides inet_interfaces, so such a
    service listens to the world whatever main.cf says. ``master``: PostfixMasterServices."""
    services = (master or {}).get("services") or {}
    public = []
    for key, service in services.items():
        name, _, service_type = key.rpartition("/")
        host = _bound_host(name)
        if service_type == "inet" and service.get("enabled") and host is not None \
                and not _is_loopback(host):
            public.append(key)
    return sorted(public)


def _local_domains_pattern(myhostname: str | None) -> str:
    domains = [myhostname] if myhostname else []
    return "|".join(re.escape(d) for d in dict.fromkeys(domains + list(LOCAL_DOMAINS)))


def aliases_map(relay: RelaySettings, myhostname: str | None) -> str:
    """regexp table: every local recipient (root, postmaster, cron users) -> the person."""
    return (
        "# Managed by lockdown: mail for local users goes to mail_root_forward.\n"
        f"/^[^@]+@({_local_domains_pattern(myhostname)})$/ {relay.root_forward}\n"
    )


def senders_map(relay: RelaySettings, myhostname: str | None) -> str:
    """regexp table for smtp_generic_maps: user@<this host> leaves as user@<sender domain>."""
    return (
        "# Managed by lockdown: local senders leave with an address in the relay's domain.\n"
        f"/^([^@]+)@({_local_domains_pattern(myhostname)})$/ ${{1}}@{relay.sender_domain}\n"
    )


def sasl_map_line(relay: RelaySettings) -> HiddenValue:
    """The SASL map: one line per relay (the relay, then each fallback), each keyed by that
    relay's nexthop exactly as main.cf names it, or Postfix finds no password and sends without
    AUTH, which the relay refuses with a 5xx: the mail bounces. Postfix looks a password up by
    the nexthop it is connecting to, so each relay only ever gets its own. Only ever keyed by
    host data: a relayhost read from the host gets no credentials from the controller unless it
    names the same host (see ``_relay_switch_bridge``)."""
    return HiddenValue("".join(_sasl_line(one.relayhost, one.credentials)
                               for one in relay.all_relays))


def _sasl_line(key: str, credentials: Credentials | None) -> str:
    if credentials is None:  # validation requires them wherever a map line is built
        raise ValueError(f"no relay credentials for {key}")
    return f"{key} {credentials.login}:{credentials.password}\n"


def _same_map_key(one: str, other: str) -> bool:
    return one.lower() == other.lower()  # Postfix folds map keys to lower case


def _relay_host_part(relayhost: str) -> str:
    """``[smtp.mailgun.org]:587`` -> ``smtp.mailgun.org`` (lower case; brackets or not)."""
    if relayhost.startswith("["):
        return relayhost[1:].partition("]")[0].lower()
    return relayhost.rpartition(":")[0].lower() or relayhost.lower()


def _relay_switch_bridge(relay: RelaySettings, found: HostState, db_type: str | None) -> list:
    """
    During a relay switch (main.cf names another relayhost AND the map is not yet the new
    one), the map first gets the new relayhost's line from the controller plus the old
    relayhost's OWN line, copied on the host from the current map; the one-line map follows
    after the reload. Postfix processes started before the reload still send via the old
    relayhost: they find its own credentials (without them: no AUTH, a 530, the mail bounced,
    commit ec77233), and the old relay never sees the new provider's secret. A relayhost that
    main.cf names but the map has no line for (a hand edit, ``postconf -e relayhost=...``)
    gets nothing; when the map is already current there is no bridge at all: repairing a
    drifted relayhost rewrites main.cf alone.

    One exception: the old relayhost names the same host as the new one (another port of the
    same relay, e.g. 587 -> 2525 with a rotated password). Its key then gets the NEW
    credentials, which only ever reach the host that host data names: the old password may
    already be revoked there, and mail in flight must not wait for a retry.
    """
    old_relayhost = ((found["main_cf"] or {}).get("settings") or {}).get("relayhost")
    sasl_found = found["sasl_map"]
    if not old_relayhost \
            or any(_same_map_key(old_relayhost, one.relayhost) for one in relay.all_relays) \
            or sasl_found["type"] != "file" \
            or postfix.secret_map_current(sasl_found, sasl_map_line(relay)):
        return []
    if _relay_host_part(old_relayhost) == _relay_host_part(relay.relayhost):
        return [(postfix.sasl_password_map, dict(
            name="Relay credentials for the new and the old port of the same relay",
            path=SASL_PASSWORD_MAP, db_type=db_type, current=sasl_found,
            content=HiddenValue(sasl_map_line(relay).unmask()
                                + _sasl_line(old_relayhost, relay.credentials))))]
    return [(postfix.sasl_password_map, dict(
        name="Relay credentials: the new relayhost's; the old one keeps its own until the "
             "reload", path=SASL_PASSWORD_MAP, content=sasl_map_line(relay), db_type=db_type,
        keep_line_of=old_relayhost, current=sasl_found))]


@deploy("lockdown mail relay", data_defaults=data_defaults("relay", "logwatch"))
def mail_relay(settings: RelaySettings | None = None) -> None:
    """
    Converge Postfix to a null client relaying via ``settings`` (default: the relay keys of
    host data and the credentials from the environment or ``relay_credentials_file``).

    + settings: a ``RelaySettings``; when None it is read and validated from host data
    """
    name_lost_connections(current_host)
    send_at_once(current_host)
    relay = settings or relay_settings(current_host.data)
    if relay.credentials is not None:
        postfix.prefetch_secret_stamp(sasl_map_line(relay))
    found = host_state(current_host)
    if found is None:  # this host failed its state read; the others go on
        return
    update = apt_update_wanted(current_host, relay.apt_update)
    install = if_needed(
        packages.installed, name="Install Postfix and SASL modules",
        packages=PACKAGES, update=update, current=found["packages"], dpkg=found["dpkg"],
    )
    installs_with_update(current_host, install, update)
    if "postfix" in found["packages"]:
        configure(relay, found)
        return
    # What Postfix says of itself (myhostname, its release's compatibility level, database
    # type) decides main.cf and the maps, and is known only once it is installed: the one
    # extra read of a first converge, after the install.
    python.call(name="Read the host again after installing Postfix, then configure it",
                function=_configure_after_install, relay=relay)


def _configure_after_install(relay: RelaySettings) -> None:
    configure(relay, current_host.get_fact(LockdownState, _sudo=True))


Step = tuple[Operation, dict[str, Any]]  # an operation and its arguments


def configure(relay: RelaySettings, found: HostState) -> None:
    """The null client's files and service, decided from ``found`` (the host's LockdownState)."""
    db_type = (found["parameters"] or {}).get("default_database_type")
    bridge = _relay_switch_bridge(relay, found, db_type)
    settings = _wanted_main_cf(relay, found)
    steps = _steps(relay, found, settings, db_type, bridged=bool(bridge))
    # A run killed between a change and the reload must not leave it unapplied: the reload
    # it owes is noted on the host first and only the reload removes the note.
    pending = (found["status"] or {}).get("pending")
    restart = bool(settings_requiring_restart(settings, found["main_cf"])) or pending == "restart"
    # Each step is decided once: whether anything is owed (the note) and which steps run.
    wanted = {name: needed(op, **kwargs) for name, (op, kwargs) in steps.items()}
    bridge_wanted = [needed(op, **kwargs) for op, kwargs in bridge]
    if any(wanted.values()) or any(bridge_wanted):
        postfix.note_pending(name="Note the reload this run owes Postfix (until it ran)",
                             action="restart" if restart else "reload", current=found["status"])
    called = _files_before_reload(steps, wanted, bridge, bridge_wanted)
    _log_steps(relay, found)
    changed = any_called_changed(*called.values())
    if changed is None and pending is None:
        if_needed(postfix.running, name="Postfix running and enabled", current=found["status"])
        return
    # New credentials written before the reload: deferred mail is retried at once, by the
    # reload's own remote command (it runs whenever the map was written: any change does).
    applied = _reload(found, restart, pending, changed,
                      flush=not bridge and called.get("sasl") is not None)
    # With a bridge, the one-key map waits until after the reload: Postfix processes started
    # before it still send via the old relayhost and look up its key (else: no AUTH, 530, bounce).
    sasl = _call_step(steps, wanted, "sasl") if bridge else None
    if sasl is not None:
        server.shell(
            name="Retry deferred mail with the new credentials",
            commands=["postqueue -f"], _if=sasl.did_change,
        )
    if relay.canary:
        _canary_step(relay, applied)


def _wanted_main_cf(relay: RelaySettings, found: HostState) -> dict[str, str]:
    """Every main.cf parameter lockdown sets (or empties) on this host."""
    return {**main_cf_settings(relay, found["parameters"] or {}),
            **tls_floor_settings(found["defaults"], (found["main_cf"] or {}).get("settings")),
            **cleared_settings(relay, found["main_cf"]),
            **mail_log_settings(relay, found["packages"])}


def _steps(relay: RelaySettings, found: HostState, settings: dict[str, str],
           db_type: str | None, bridged: bool) -> dict[str, Step]:
    """The file and master.cf steps, by name, in the order they run (main.cf first: on a fresh
    box postmap and postconf -M need it, and a fresh box has none)."""
    myhostname = (found["parameters"] or {}).get("myhostname")
    sasl_found = found["sasl_map"]
    if bridged:  # what the bridge's write leaves: a private map without a stamp
        sasl_found = {**sasl_found, "user": SECRET_OWNER[0], "group": SECRET_OWNER[1],
                      "mode": SECRET_MODE, "stamp": None, "stamp_status": "missing"}
    return {
        "main": (postfix.main_cf, dict(
            name=f"main.cf: null client via {relay.relayhost}, TLS {relay.tls_level}",
            settings=settings, current=found["main_cf"])),
        "aliases": (postfix.map_file, dict(
            name=f"Local recipients go to {relay.root_forward}", path=ALIASES_MAP,
            content=aliases_map(relay, myhostname), current=found["aliases_map"])),
        "senders": (postfix.map_file, dict(
            name=f"Local senders leave as @{relay.sender_domain}", path=SENDERS_MAP,
            content=senders_map(relay, myhostname), current=found["senders_map"])),
        "sasl": (postfix.sasl_password_map, dict(
            name="Relay credentials (SASL map, root 0600)", path=SASL_PASSWORD_MAP,
            content=sasl_map_line(relay), db_type=db_type, current=sasl_found)),
        **_fallback_steps(relay, found, myhostname),
        **mail_log_steps(relay, found),
        "listener": (postfix.master_service, dict(
            name="master.cf: smtp/inet listener off", service="smtp", service_type="inet",
            enabled=False, current=found["master"])),
        **{f"public {key}": (postfix.master_service, dict(
            name=f"master.cf: {printable(key)} (bound beyond loopback) off",
            service=key.rpartition("/")[0], service_type="inet", enabled=False,
            current=found["master"]))
           for key in public_inet_services(found["master"])},
    }


def _call_step(steps: dict[str, Step], wanted: dict[str, bool], name: str) -> OperationMeta | None:
    op, kwargs = steps[name]
    return call_if(wanted[name], op, **kwargs)


def _files_before_reload(steps: dict[str, Step], wanted: dict[str, bool], bridge: list[Step],
                         bridge_wanted: list[bool]) -> dict[str, OperationMeta | None]:
    """Call the steps that come before the reload, in order; by name, what each call returned.
    With a relay switch bridged, the SASL map's own step waits for after the reload."""
    called: dict[str, OperationMeta | None] = {
        f"bridge {n}": call_if(wants, op, **kwargs)
        for n, (wants, (op, kwargs)) in enumerate(zip(bridge_wanted, bridge, strict=True))}
    # One line per step: pyinfra tells operations apart by the line numbers of their call, so
    # steps called from one line of a loop could merge across hosts that skip different ones.
    called["main"] = _call_step(steps, wanted, "main")
    called["aliases"] = _call_step(steps, wanted, "aliases")
    called["senders"] = _call_step(steps, wanted, "senders")
    if not bridge:
        called["sasl"] = _call_step(steps, wanted, "sasl")
    called["listener"] = _call_step(steps, wanted, "listener")
    for name in steps:
        if name.startswith(("public ", "fallback ", "mail log ")):
            called[name] = _call_step(steps, wanted, name)
    return called


def _log_steps(relay: RelaySettings, found: HostState) -> None:
    """The mail log file, logwatch and the log's rotation (each decides for itself)."""
    log_file_step(relay, found)
    logwatch_state = found["logwatch"]
    if writes_file(relay, found["packages"]):  # the file logwatch's maillog group reads, soon
        logwatch_state = {**(logwatch_state or {}), "mail_logs": [MAIL_LOG]}
    logwatch_step(relay.logwatch, logwatch_state,
                  apt_update_wanted(current_host, relay.apt_update))
    rotation_step(relay, found)


def _reload(found: HostState, restart: bool, pending: str | None,
            changed: Callable[[], bool] | None, flush: bool) -> OperationMeta:
    """``postfix check``, then the reload (or restart) a change of this run or an earlier one
    owes; only ``_if`` this run changed something, unless an earlier run left it owed.
    ``flush``: then ``postqueue -f`` (the SASL map was written)."""
    if_changed: dict[str, Any] = {} if pending or changed is None else {"_if": changed}
    return postfix.reload(
        name="postfix check, then reload (or start)"
        + (" owed by an earlier run" if pending else ""),
        restart=restart, flush=flush, current=found["status"], **if_changed,
    )


def _canary_step(relay: RelaySettings, applied: OperationMeta) -> None:
    """Only when the reload ran, i.e. something the relay path depends on changed."""
    python.call(
        name=f"Relay canary: one message must leave via {relay.relayhost}"
        + (f" and one via each of its {len(relay.fallbacks)} fallback(s)"
           if relay.fallbacks else ""),
        function=canary.run, relay=relay, recipient=relay.canary_recipient,
        seconds=relay.canary_seconds, _if=applied.did_change,
    )


def _fallback_steps(relay: RelaySettings, found: HostState, myhostname: str | None) -> dict:
    """The fallbacks' TLS policy and canary routes, and the canary's transport (named
    "fallback ..."); without fallbacks only that transport, switched off if an earlier run
    wrote it (a noop otherwise). The maps are left: nothing names them then."""
    transport = dict(service=CANARY_TRANSPORT, service_type="unix", current=found["master"])
    if not relay.fallbacks:
        return {"fallback transport": (postfix.master_service, dict(
            name=f"master.cf: {CANARY_TRANSPORT} (no fallback relays) off", enabled=False,
            **transport))}
    return {
        "fallback tls": (postfix.map_file, dict(
            name="TLS level of each fallback relay", path=TLS_POLICY_MAP,
            content=tls_policy_map(relay), current=found["tls_policy_map"])),
        "fallback routes": (postfix.map_file, dict(
            name="Each relay canary leaves through its own relay", path=CANARY_ROUTES_MAP,
            content=canary_routes_map(relay, _local_domains_pattern(myhostname)),
            current=found["canary_routes_map"])),
        "fallback transport": (postfix.master_service, dict(
            name=f"master.cf: {CANARY_TRANSPORT}, the smtp client without fallbacks",
            enabled=True, entry=CANARY_SERVICE_ENTRY, **transport)),
    }
