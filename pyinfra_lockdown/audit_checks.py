"""The audit's verdicts: expected state (from host data, through the deploy's own functions)
against found state (the AuditState fact). Pure: no host, no pyinfra context, no I/O.

Every check returns ``Check(id, verdict, expected, found)`` with verdict PASS, FAIL or N/A.
``expected``/``found`` are short display strings and never contain a secret (the SASL map
is compared by its salted scrypt stamp only; main.cf values that hold an inline ``static:``
secret are never shown).
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .egress import blocked_ports, egress_findings
from .facts.audit_state import AuditHostState
from .facts.logwatch import LOGWATCH_PACKAGES
from .facts.postfix import COMPILED_MAP_SUFFIX, SMTP_PORTS
from .facts.ufw_output import with_output_kernel
from .fallback import relay_label
from .firewall import declared_rules, sshd_ports
from .logwatch import MAIL_TO, logwatch_conf, postfix_override, postfix_source
from .mail import (
    TLS_FLOOR_PARAMETERS,
    aliases_map,
    main_cf_settings,
    public_inet_services,
    sasl_map_line,
    senders_map,
    tls_floor_spellings,
)
from .operations.ufw import checked_rules, describe, rules_to_add
from .relay_causes import relay_cause
from .secret_stamp import stamp_matches
from .settings import AuditSettings, FirewallSettings, RelaySettings
from .ufw_rules import identity, is_tagged, ssh_allowed
from .value_checks import TLS_LEVELS, VERIFIED_TLS_LEVELS

PASS, FAIL, NA = "PASS", "FAIL", "N/A"
# The note on a relay whose certificate is not verified (relay_tls_level: encrypt).
WEAKER_TLS_NOTE = ("WEAKER: relay certificate not verified, anyone answering for the relay "
                   "gets the login")


@dataclass(frozen=True)
class Check:
    id: str
    verdict: str
    expected: str = ""
    found: str = ""
    value: Any = None  # what was found, for programs (counts, addresses); JSON-serialisable

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Expected:
    relay: RelaySettings
    has_credentials: bool  # False: relay.credentials is None, the map content is not compared
    sender_domain: str | None  # None: unknown without credentials and mail_sender_domain
    firewall: FirewallSettings
    noise_hours: int = 24
    queue_max_age_minutes: int = 60


def expected_state(settings: AuditSettings) -> Expected:
    """
    What the deploy would converge this host to, from the same settings and main_cf_settings
    the mail deploy uses. The password is never needed: without credentials the SASL map's
    content is not compared and the sender domain is known only from ``mail_sender_domain``.
    """
    relay = settings.relay
    return Expected(
        relay=relay, has_credentials=relay.credentials is not None
        and all(one.credentials is not None for one in relay.fallbacks),
        sender_domain=relay.sender_domain, firewall=settings.firewall,
        noise_hours=settings.noise_hours,
        queue_max_age_minutes=settings.queue_max_age_minutes,
    )


# --- helpers ---------------------------------------------------------------------------------

def _verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def _show(value: object) -> str:
    if value is None:
        return "(unset)"
    return repr(value) if value == "" else str(value)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}min"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _clock(epoch: int | None) -> str:
    if not epoch:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _main(state: AuditHostState) -> dict[str, Any]:
    main = state.get("main_cf") or {}
    return main.get("settings") or {}


def _setting_check(check_id: str, key: str, expected: dict, found: dict) -> Check:
    return Check(check_id, _verdict(found.get(key) == expected[key]),
                 f"{key} = {_show(expected[key])}", _show(found.get(key)))


# --- Postfix ---------------------------------------------------------------------------------

SASL_KEYS = ("smtp_sasl_auth_enable", "smtp_sasl_security_options",
             "smtp_sasl_tls_security_options", "smtp_sasl_password_maps")
# main.cf parameters a check of their own covers; postfix.main_cf_rest checks the others.
COVERED = {"relayhost", "smtp_tls_security_level", "smtp_tls_wrappermode", "inet_interfaces",
           *SASL_KEYS}


def postfix_checks(exp: Expected, state: AuditHostState) -> list[Check]:
    """Postfix's checks, one function each, in the report's order."""
    found = _main(state)
    want = main_cf_settings(exp.relay, state.get("parameters"))
    return [
        installed_check(state),
        running_check(state),
        _setting_check("postfix.relayhost", "relayhost", want, found),
        tls_level_check(want, found),
        _setting_check("postfix.tls_wrappermode", "smtp_tls_wrappermode", want, found),
        tls_floor_check(state),
        sasl_auth_check(want, found),
        inline_secret_check(found),
        sasl_map_check(exp, state),
        *local_maps_checks(exp, state),
        loopback_check(want, found, state),
        public_listener_check(state),
        main_cf_rest_check(want, found),
        queue_check(exp, state),
        *relay_checks(exp, state),
    ]


def installed_check(state: AuditHostState) -> Check:
    main_state = state.get("main_cf") or {}
    installed = bool((state.get("packages") or {}).get("postfix")) and main_state.get("installed")
    return Check(
        "postfix.installed", _verdict(bool(installed and main_state.get("main_cf"))),
        "postfix installed, main.cf present",
        "installed, main.cf present" if installed and main_state.get("main_cf") else
        "installed, main.cf missing" if installed else "not installed")


def running_check(state: AuditHostState) -> Check:
    status = state.get("status") or {}
    running = bool(status.get("running")) and bool(status.get("enabled"))
    return Check(
        "postfix.running", _verdict(running), "running, enabled at boot",
        f"{'running' if status.get('running') else 'stopped'}, "
        f"{status.get('unit_state') or 'unit state unknown'}")


def sasl_auth_check(want: dict[str, Any], found: dict[str, Any]) -> Check:
    options = {o.strip() for o in (found.get("smtp_sasl_security_options") or "").split(",")}
    wrong = [k for k in SASL_KEYS if found.get(k) != want[k] and not _has_static(found.get(k))]
    sasl_ok = not wrong and "noplaintext" in options
    return Check(
        "postfix.sasl_auth_in_tls", _verdict(sasl_ok),
        "AUTH on; noplaintext outside TLS; " + "; ".join(f"{k} = {want[k]}" for k in SASL_KEYS[:3]),
        "as declared" if sasl_ok else "; ".join(
            f"{k} = {_show(found.get(k))}" for k in wrong) or "noplaintext missing")


def inline_secret_check(found: dict[str, Any]) -> Check:
    static = sorted(k for k, v in found.items() if _has_static(v))
    return Check(
        "postfix.no_inline_secret", _verdict(not static), "no static: map in main.cf",
        f"static: map in {', '.join(static)} (value not shown)" if static else "none")


def loopback_check(want: dict[str, Any], found: dict[str, Any], state: AuditHostState) -> Check:
    master = ((state.get("master") or {}).get("services") or {}).get("smtp/inet")
    smtp_on = bool(master and master.get("enabled"))
    interfaces = found.get("inet_interfaces")
    public = public_inet_services(state.get("master"))
    loopback_ok = interfaces == want["inet_interfaces"] and not smtp_on and not public
    return Check(
        "postfix.loopback_only", _verdict(loopback_ok),
        f"inet_interfaces = {want['inet_interfaces']}, smtp/inet off, no service bound "
        "beyond loopback",
        f"inet_interfaces = {_show(interfaces)}, smtp/inet {'ON' if smtp_on else 'off'}"
        + (f", bound beyond loopback: {', '.join(public)}" if public else ""))


def public_listener_check(state: AuditHostState) -> Check:
    listeners = state.get("listeners")
    if listeners is None:
        return Check("postfix.no_public_listener", NA, "no SMTP listener beyond loopback",
                     "ss not installed")
    public = [f"{_join(s['address'], s['port'])}" for s in listeners if not s["loopback"]]
    return Check(
        "postfix.no_public_listener", _verdict(not public),
        "no SMTP listener (25/465/587) beyond loopback",
        "listening on " + ", ".join(public) if public else "loopback only")


def main_cf_rest_check(want: dict[str, Any], found: dict[str, Any]) -> Check:
    other = [k for k in want if k not in COVERED and found.get(k) != want[k]]
    return Check(
        "postfix.main_cf_rest", _verdict(not other),
        f"{len([k for k in want if k not in COVERED])} other lockdown settings as declared",
        "as declared" if not other else "; ".join(
            f"{k} = {'(value not shown)' if _has_static(found.get(k)) else _show(found.get(k))} "
            f"(want {_show(want[k])})" for k in other))


def tls_level_check(want: dict, found: dict) -> Check:
    """The declared level, never below encrypt; ``encrypt`` (chosen explicitly: the default is
    secure) passes with a named note, as Postfix then sends AUTH to any certificate."""
    level = found.get("smtp_tls_security_level")
    declared = want["smtp_tls_security_level"]
    tls_ok = level == declared and level in TLS_LEVELS
    verified = level in VERIFIED_TLS_LEVELS
    note = "" if verified or level not in TLS_LEVELS else WEAKER_TLS_NOTE
    return Check(
        "postfix.tls_level", _verdict(tls_ok),
        f"smtp_tls_security_level = {declared} (never below encrypt)"
        + ("" if declared in VERIFIED_TLS_LEVELS else f"; {WEAKER_TLS_NOTE}"),
        _show(level) + (f"; {note}" if note else ""),
        {"level": level, "certificate_verified": verified})


def tls_floor_check(state: AuditHostState) -> Check:
    """Postfix refuses TLS below 1.2 towards the relay, in a spelling this Postfix reads."""
    defaults = state.get("defaults")
    spellings = tls_floor_spellings(defaults)
    found = _main(state)
    values = {name: found.get(name) for name in TLS_FLOOR_PARAMETERS}
    wrong = [name for name, value in values.items() if value not in spellings]
    version = (defaults or {}).get("mail_version")
    return Check(
        "postfix.tls_floor", _verdict(not wrong),
        f"{' and '.join(TLS_FLOOR_PARAMETERS)} = {spellings[0]} (no TLS below 1.2)",
        "as declared" + (f" (Postfix {version})" if version else "") if not wrong else
        "; ".join(f"{name} = {_show(values[name])}" for name in wrong),
        {**values, "mail_version": version})


def queue_cause(reason: str | None) -> tuple[str | None, str | None]:
    """(cause id, what it means and the fix) from relay_causes, the one table."""
    cause = relay_cause(reason)
    if cause is None:
        return None, None
    what, fix = cause.text()
    return cause.id, f"{what}; fix: {fix}"


def _has_static(value: object) -> bool:
    return isinstance(value, str) and "static:" in value


def _join(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def sasl_map_check(exp: Expected, state: AuditHostState) -> Check:
    sasl = state.get("sasl_map") or {}
    db_type = (state.get("parameters") or {}).get("default_database_type") or "hash"
    suffix = COMPILED_MAP_SUFFIX.get(db_type, db_type)
    expected = f"sasl_passwd root:root 0600, {db_type} map root 0600 and not older"
    if exp.has_credentials:
        expected += ", content = declared credentials"
    if sasl.get("type") != "file":
        return Check("postfix.sasl_map", FAIL, expected, f"source {sasl.get('type', 'missing')}")
    problems = []
    if (sasl.get("user"), sasl.get("group"), sasl.get("mode")) != ("root", "root", 600):
        problems.append(f"source {sasl.get('user')}:{sasl.get('group')} {sasl.get('mode')}")
    compiled = (sasl.get("compiled") or {}).get(suffix) or {}
    if not compiled.get("exists"):
        problems.append(f"no compiled {db_type} map")
    else:
        if compiled.get("user") != "root" or compiled.get("mode") != 600:
            problems.append(f"compiled {compiled.get('user')}:{compiled.get('group')} "
                            f"{compiled.get('mode')}")
        if compiled.get("mtime_ns", 0) < sasl.get("mtime_ns", 0):
            problems.append("compiled map older than source (postmap not run)")
    if exp.has_credentials:
        line = sasl_map_line(exp.relay)
        text = line.unmask() if hasattr(line, "unmask") else str(line)
        if sasl.get("stamp_status") == "edited":
            problems.append("edited since lockdown wrote it (re-run the mail deploy)")
        elif sasl.get("stamp_status") == "missing":
            problems.append("no lockdown stamp: written by hand or by an older lockdown "
                            "(re-run the mail deploy)")
        elif not stamp_matches(sasl.get("stamp"), text):
            problems.append("content differs from the declared credentials/relayhost")
    return Check("postfix.sasl_map", _verdict(not problems), expected,
                 "; ".join(problems) if problems else "as declared")


def local_maps_checks(exp: Expected, state: AuditHostState) -> list[Check]:
    """The aliases and senders regexp maps, compared by SHA-256 with what the deploy writes."""
    myhostname = (state.get("parameters") or {}).get("myhostname")
    checks = []
    for check_id, key, build, what in (
        ("postfix.aliases_map", "aliases_map", aliases_map,
         f"local users -> {exp.relay.root_forward}"),
        ("postfix.senders_map", "senders_map", senders_map,
         f"local senders -> @{exp.sender_domain}"),
    ):
        found: dict[str, Any] = state.get(key) or {}  # type: ignore[assignment]
        if key == "senders_map" and exp.sender_domain is None:
            checks.append(Check(check_id, NA, "set mail_sender_domain or relay credentials",
                                "sender domain unknown without credentials"))
            continue
        want = hashlib.sha256(build(exp.relay, myhostname).encode()).hexdigest()
        ok = found.get("type") == "file" and found.get("sha256") == want
        checks.append(Check(check_id, _verdict(ok), what,
                            "as declared" if ok else
                            "missing" if found.get("type") != "file" else "content differs"))
    return checks


def queue_check(exp: Expected, state: AuditHostState) -> Check:
    queue = state.get("queue")
    limit = exp.queue_max_age_minutes
    expected = f"no deferred mail older than {limit}min"
    if not queue or queue.get("source") == "not-installed":
        return Check("postfix.queue", NA, expected, "postfix not installed")
    deferred = queue.get("deferred") or 0
    if not deferred:
        return Check("postfix.queue", PASS, expected,
                     f"{queue.get('total') or 0} queued, 0 deferred")
    if queue.get("source") == "spool" or queue.get("oldest_arrival") is None:
        return Check("postfix.queue", FAIL, expected,
                     f"{deferred} deferred, age unknown (postfix not running)")
    age = (queue.get("now") or 0) - queue["oldest_arrival"]
    reason = f"; reason: {queue['reason']}" if queue.get("reason") else ""
    cause, meaning = queue_cause(queue.get("reason"))
    return Check("postfix.queue", _verdict(age <= limit * 60), expected,
                 f"{deferred} deferred, oldest {_age(age)}{reason}"
                 + (f"; cause: {meaning}" if meaning else ""),
                 {"deferred": deferred, "oldest_age_seconds": age, "reason": queue.get("reason"),
                  "cause": cause})


def relay_checks(exp: Expected, state: AuditHostState) -> list[Check]:
    """``postfix.relay``; with fallbacks one check per relay (``postfix.relay`` for the relay,
    ``postfix.relay.fallback<n>``), each from the newest attempt towards that relay's host."""
    last = state.get("relay_last")
    if not exp.relay.fallbacks:
        return [relay_check(exp, last)]
    relays = (last or {}).get("relays") or {}
    checks = []
    for index, one in enumerate(exp.relay.all_relays):
        own = {**(last or {}), **relays.get(one.host.lower(), dict.fromkeys(
            ("at", "status", "relay", "reason")))} if last else last
        checks.append(relay_check(exp, own, index, relay_label(index, one)))
    return checks


def relay_check(exp: Expected, last: dict | None, index: int = 0,
                label: str = "the relay") -> Check:
    """A relay's last word: Postfix's newest delivery attempt in the window (RelayLastAttempt)."""
    check_id = "postfix.relay" if index == 0 else f"postfix.relay.fallback{index}"
    expected = f"last delivery attempt via {label} in {exp.noise_hours}h: sent"
    if not last or last.get("log") is None:
        return Check(check_id, NA, expected, "no mail log to read")
    if last.get("status") is None:
        return Check(check_id, NA, expected, f"no delivery attempt in {exp.noise_hours}h",
                     {"status": None})
    when = f" at {_clock(last['at'])}" if last.get("at") else ""
    value = {"status": last["status"], "at": last.get("at"), "relay": last.get("relay"),
             "reason": last.get("reason"), "cause": None}
    if last["status"] == "sent":
        return Check(check_id, PASS, expected, f"sent{when} via {last.get('relay')}", value)
    cause, meaning = queue_cause(last.get("reason"))
    value["cause"] = cause
    return Check(check_id, FAIL, expected,
                 f"{last['status']}{when}: {last.get('reason') or 'no reason logged'}"
                 + (f"; cause: {meaning}" if meaning else ""), value)


# --- ufw -------------------------------------------------------------------------------------

def ufw_checks(exp: Expected, state: AuditHostState) -> list[Check]:
    fw = exp.firewall
    ufw = with_output_kernel(state.get("ufw"), state.get("ufw_output"))
    ids = ("ufw.installed", "ufw.enabled", "ufw.kernel", "ufw.defaults", "ufw.ipv6",
           "ufw.logging", "ufw.rules", "ufw.ssh_allowed", "ufw.mail_egress", "ufw.deadman")
    if ufw is None:
        return [Check(ids[0], FAIL, "ufw installed", "not installed")] + [
            Check(i, FAIL, "", "ufw not installed") for i in ids[1:]]
    checks = [Check("ufw.installed", PASS, "ufw installed",
                    (state.get("packages") or {}).get("ufw") or "installed")]
    checks.append(Check("ufw.enabled", _verdict(bool(ufw.get("enabled"))), "enabled",
                        "enabled" if ufw.get("enabled") else "DISABLED"))
    checks += _safely("ufw.kernel", kernel_check, ufw)
    want_defaults = {d: getattr(fw, f"default_{d}") for d in ("incoming", "outgoing", "routed")}
    found_defaults = {d: (ufw.get("defaults") or {}).get(d) for d in want_defaults}
    checks.append(Check("ufw.defaults", _verdict(found_defaults == want_defaults),
                        _policies(want_defaults), _policies(found_defaults)))
    checks.append(Check("ufw.ipv6", _verdict(ufw.get("ipv6") == fw.ipv6),
                        f"IPV6={'yes' if fw.ipv6 else 'no'}",
                        f"IPV6={'yes' if ufw.get('ipv6') else 'no'}"))
    checks.append(Check("ufw.logging", _verdict(ufw.get("logging") == fw.logging),
                        fw.logging, _show(ufw.get("logging"))))
    checks += _safely("ufw.rules", rules_check, exp, state)
    checks += _safely("ufw.ssh_allowed", ssh_check, exp, state)
    checks += _safely("ufw.mail_egress", egress_check, fw, ufw)
    checks += _safely("ufw.deadman", deadman_check, ufw)
    return checks


def kernel_check(ufw: dict) -> Check:
    """ufw.conf's ENABLED=yes is a wish: the kernel must run ufw's chains and its rules."""
    expected = "ufw's chains and user rules loaded in the kernel"
    if not ufw.get("enabled"):
        return Check("ufw.kernel", NA, expected, "ufw disabled")
    problems = ufw.get("kernel_problems") or []
    loaded = {family: counts.get("loaded") for family, counts in (ufw.get("kernel") or {}).items()}
    return Check("ufw.kernel", _verdict(not problems), expected,
                 "; ".join(problems) if problems else "loaded: " + ", ".join(
                     f"IPv{family[1]} {count} rules" for family, count in sorted(loaded.items())),
                 {"problems": list(problems)})


def deadman_check(ufw: dict) -> Check:
    """A dead-man switch left behind: pending (it will disable ufw) or fired (it did)."""
    switch = ufw.get("deadman") or {}
    expected = "no dead-man switch left (each run cancels its own)"
    if switch.get("fired"):
        found = "FIRED: its timer ran `ufw --force disable` after a run; converge again"
    elif switch.get("pending"):
        found = "PENDING: its timer will run `ufw --force disable`; converge again to check SSH"
    elif switch.get("armed"):
        found = "armed (marker left, timer not running): converge again"
    else:
        return Check("ufw.deadman", PASS, expected, "none")
    return Check("ufw.deadman", FAIL, expected, found, dict(switch))


def _policies(policies: dict) -> str:
    return ", ".join(f"{d} {p or '?'}" for d, p in policies.items())


def rules_check(exp: Expected, state: AuditHostState) -> Check:
    """Exactly the declared rules: missing ones and every other rule (tagged or hand-made)."""
    fw, ufw = exp.firewall, state["ufw"] or {}
    ssh_ports = sshd_ports(state)
    try:
        wanted = checked_rules(declared_rules(fw, ssh_ports), fw.prune, "lockdown", fw.ipv6)
    except Exception as error:  # bad host data: the deploy would refuse it too
        return Check("ufw.rules", FAIL, "declared rules", f"cannot compute: {error}")
    existing = [dict(rule) for rule in ufw.get("rules") or []]
    missing = rules_to_add(wanted, existing)
    identities = {identity(rule) for rule in wanted}
    unexpected = [rule for rule in existing if identity(rule) not in identities]
    problems = [f"missing: {describe(r)}" for r in missing]
    problems += [f"unexpected: {describe(r)}" for r in unexpected]
    hand_made = [rule for rule in unexpected if not is_tagged(rule, "lockdown")]
    if hand_made and fw.prune != "all":
        problems.append("hand-made rules are kept by firewall_prune=" + fw.prune +
                        ": declare them, or converge once with firewall_prune=all")
    return Check("ufw.rules", _verdict(not problems),
                 f"exactly the {len(wanted)} declared rules ({', '.join(map(str, fw.allowed))}"
                 f"{', mail egress' if fw.mail_relay_ports is not None else ''})",
                 "; ".join(problems) if problems else f"{len(existing)} rules as declared",
                 {"missing": [describe(r) for r in missing],
                  "unexpected": [describe(r) for r in unexpected]})


def ssh_check(exp: Expected, state: AuditHostState) -> Check:
    ports = (state.get("sshd") or {}).get("ports")
    ufw = state["ufw"] or {}
    if not ports:
        return Check("ufw.ssh_allowed", NA, "sshd's ports allowed", "sshd not installed")
    if ufw.get("defaults", {}).get("incoming") == "allow":
        return Check("ufw.ssh_allowed", PASS, f"sshd ports {ports} allowed", "default allow")
    families = (4, 6) if ufw.get("ipv6") else (4,)
    # A comment decides nothing about reachability, and a hand-made one may hold anything.
    rules = [{**rule, "comment": ""} for rule in ufw.get("rules") or []]
    blocked = [f"IPv{f}" for f in families if not ssh_allowed(rules, ports, f)]
    return Check("ufw.ssh_allowed", _verdict(not blocked),
                 f"sshd ports {ports} allowed over IPv{'4+6' if len(families) == 2 else '4'}",
                 f"blocked over {', '.join(blocked)}" if blocked else "allowed")


def egress_check(fw: FirewallSettings, ufw: dict) -> Check:
    """Mail leaves only through the relay: the SMTP ports other than the relays' closed
    outward, the relays' open, by the rules ufw has (its order, its default outgoing)."""
    if fw.mail_relay_ports is None:
        return Check("ufw.mail_egress", NA, "outgoing SMTP not restricted",
                     "firewall_mail_relay_only: false")
    relays = ", ".join(map(str, fw.mail_relay_ports))
    closed = ", ".join(map(str, blocked_ports(fw.mail_relay_ports))) or "none"
    expected = f"tcp {closed} rejected outward, the relays' {relays} open"
    if not ufw.get("enabled"):
        return Check("ufw.mail_egress", FAIL, expected, "ufw disabled: every port open "
                     "outward; run the firewall deploy")
    default = (ufw.get("defaults") or {}).get("outgoing") or "allow"
    problems = egress_findings(fw, ufw.get("rules") or [], default, bool(ufw.get("ipv6")))
    found = ("; ".join(problems) + ". Run the firewall deploy (lockdown's rules go back; a "
             "hand-made rule before them: delete it or set firewall_prune: all)"
             if problems else "as expected")
    return Check("ufw.mail_egress", _verdict(not problems), expected, found,
                 {"relay_ports": list(fw.mail_relay_ports), "problems": problems})


# --- relay noise and the outside view --------------------------------------------------------

def noise_checks(exp: Expected, state: AuditHostState) -> list[Check]:
    noise = state.get("noise")
    ids = ("noise.relay_denied", "noise.smtpd_connects")
    if not noise or not noise.get("journal"):
        return [Check(i, NA, "no new ones since last converge", "no journal") for i in ids]
    since = _clock(noise.get("converged_at"))
    client = f" (last from {noise['last_client']})" if noise.get("last_client") else ""
    counts = [
        {"since_converge": noise.get(f"{key}_since_converge"), "in_window": noise.get(key)}
        for key in ("relay_denied", "connects")
    ]
    return [
        Check(ids[0], _verdict(not counts[0]["since_converge"]),
              "no 'Relay access denied' since last converge",
              f"{counts[0]['since_converge']} since {since}, "
              f"{counts[0]['in_window']} in {noise.get('hours')}h", counts[0]),
        Check(ids[1], _verdict(not counts[1]["since_converge"]),
              "no smtpd connect from non-loopback since last converge",
              f"{counts[1]['since_converge']} since {since}, "
              f"{counts[1]['in_window']} in {noise.get('hours')}h{client}", counts[1]),
    ]


def outside_check(probe: dict | None) -> Check:
    """``probe``: {"via": "lab prober"|probe host, "results": [{address, port, open, relay}],
    "error"}."""
    expected = f"{'/'.join(map(str, SMTP_PORTS))} closed from outside, no relay"
    if probe is None:
        return Check("outside.smtp", NA, expected, "no probes group / audit_probe unset")
    if probe.get("error"):
        return Check("outside.smtp", FAIL, expected, f"probe failed: {probe['error']}")
    results = probe.get("results") or []
    opened = [_join(r["address"], r["port"]) for r in results if r.get("open")]
    relayed = [_join(r["address"], r["port"]) for r in results
               if (r.get("relay") or {}).get("accepted")]
    addresses = sorted({r["address"] for r in results})
    value = {"probed": addresses, "open": opened, "relayed": relayed, "via": probe.get("via")}
    if not opened:
        return Check("outside.smtp", PASS, expected,
                     f"closed on {', '.join(addresses)} (via {probe.get('via')})", value)
    found = f"OPEN: {', '.join(opened)}"
    if relayed:
        found += f"; RELAY ACCEPTED: {', '.join(relayed)}"
    return Check("outside.smtp", FAIL, expected, f"{found} (via {probe.get('via')})", value)


_SOURCES = {"file": "its mail log file", "journal": "the journal (the package's own reading)",
            "journal-override": "the journal (lockdown's override)", "none": "nothing"}


def logwatch_check(exp: Expected, state: AuditHostState) -> Check:
    """Only with ``logwatch`` on: installed, configured as declared, reading a log that has
    Postfix's lines, and a cron daemon to run the daily report."""
    settings, found = exp.relay.logwatch, state.get("logwatch") or {}
    expected = (f"logwatch installed, report to {MAIL_TO} (-> {exp.relay.root_forward}) at "
                f"detail {settings.detail}, Postfix read from a log it has, run daily by cron")
    source = postfix_source(found)
    missing = [p for p in LOGWATCH_PACKAGES if p not in (found.get("packages") or {})]
    problems = [f"not installed: {', '.join(missing)}"] if missing else []
    if found.get("conf") != _sha256(logwatch_conf(settings)):
        problems.append("logwatch.conf " + ("missing" if found.get("conf") is None else
                                            "differs from the declared settings"))
    if source == "none":
        problems.append("no mail log file and no journal reading: the Postfix section is empty")
    elif source == "journal-override" and found.get("postfix_conf") != _sha256(
            postfix_override(found)):
        problems.append("Postfix section reads no log: the journal override is "
                        + ("missing" if found.get("postfix_conf") is None else "changed"))
    if not found.get("cron"):
        problems.append("no cron daemon: nothing runs the daily report")
    value = {"source": source, "version": (found.get("packages") or {}).get("logwatch"),
             "problems": problems}
    return Check("logwatch.report", _verdict(not problems), expected,
                 "; ".join(problems) if problems else
                 f"logwatch {value['version']}, Postfix from {_SOURCES[source]}, cron", value)


def _sha256(text: str | None) -> str | None:
    if text is None:
        return None
    return hashlib.sha256((text if text.endswith("\n") else text + "\n").encode()).hexdigest()


def _safely(check_id: str, compute: Callable[..., Check | list[Check]], *args: Any) -> list[Check]:
    """``compute(*args)`` (one Check or a list), or ONE failing check naming what could not
    be read: a value on the host that lockdown cannot parse (anyone with root there may have
    written it) fails this check of this host, never the audit of the fleet."""
    try:
        result = compute(*args)
    except Exception as error:  # noqa: BLE001 - any parse error of host text is a finding
        return [cannot_check(check_id, error)]
    return result if isinstance(result, list) else [result]


def cannot_check(check_id: str, error: Exception) -> Check:
    """The failing check of a value on the host that lockdown could not parse."""
    return Check(check_id, FAIL, "a state lockdown can read",
                 f"cannot check: {type(error).__name__}: {error}")


def host_checks(exp: Expected, state: AuditHostState, probe: dict | None = None) -> list[Check]:
    logwatch = (_safely("logwatch", logwatch_check, exp, state)
                if exp.relay.logwatch.enabled else [])
    return (_safely("postfix", postfix_checks, exp, state) + _safely("ufw", ufw_checks, exp, state)
            + _safely("noise", noise_checks, exp, state) + logwatch + [outside_check(probe)])


def summary(checks: list[Check]) -> dict:
    counts = {PASS: 0, FAIL: 0, NA: 0}
    for check in checks:
        counts[check.verdict] += 1
    return {"pass": counts[PASS], "fail": counts[FAIL], "na": counts[NA],
            "failed": [c.id for c in checks if c.verdict == FAIL]}
