"""Mail leaves only through the relay (``firewall_mail_relay_only``).

ufw rejects, and logs, outgoing TCP to the SMTP ports (25, 465, 587) except the ports of the
relay and of each fallback: a program on the host (a compromised web app) cannot hand mail to
the recipients' MX hosts on port 25 itself, around Postfix's relay, its sender rewriting and
its log. The rules are ordinary declared ufw rules (``lockdown: ...`` comment): converged,
pruned and audited like the incoming ones, kept by ufw across reboots. Why ports and not
addresses or Postfix's uid: docs/design.md, "Mail leaves only through the relay".

Pure functions, no host access: the firewall deploy declares ``egress_rules`` and the audit
judges the rules it found with ``egress_findings``.
"""
from __future__ import annotations

from .settings import SMTP_PORTS, FirewallSettings, check_relay_ports
from .ufw_rules import PASSING_ACTIONS, normalize_rule, port_in_spec

EGRESS_COMMENT = "lockdown: mail leaves only through the relay"


def blocked_ports(relay_ports: tuple[int, ...]) -> list[int]:
    """The SMTP ports closed outward: all of them but the relays' own."""
    check_relay_ports(relay_ports)
    return [number for number in SMTP_PORTS if number not in relay_ports]


def egress_rules(settings: FirewallSettings) -> list[dict]:
    """One ``reject out log`` rule per closed port and address family (none when off)."""
    if settings.mail_relay_ports is None:
        return []
    families = (False, True) if settings.ipv6 else (False,)
    return [normalize_rule({"action": "reject", "direction": "out", "proto": "tcp",
                            "port": str(number), "v6": v6, "log": "log",
                            "comment": EGRESS_COMMENT})
            for number in blocked_ports(settings.mail_relay_ports) for v6 in families]


def outbound_verdict(rules: list[dict], port: int, v6: bool,
                     default_outgoing: str) -> tuple[bool, dict | None]:
    """
    Can a local program open TCP to ``port`` on any host over this family? (passes, the rule
    that decides or None for the default policy). ufw's order: the first outgoing rule that
    covers every destination of the port decides; a passing rule before it that covers only
    some destinations (an address, an interface) still lets mail out there, and decides.
    """
    for rule in rules:
        if not _outbound_covers(rule, port, v6):
            continue
        if rule["action"] in PASSING_ACTIONS or _covers_every_destination(rule):
            return rule["action"] in PASSING_ACTIONS, rule
    return default_outgoing == "allow", None


def _outbound_covers(rule: dict, port: int, v6: bool) -> bool:
    return (rule["direction"] == "out" and not rule["route"] and rule["v6"] == v6
            and rule["proto"] in ("tcp", "any") and not rule["app"]
            and port_in_spec(port, rule["port"]))


def _covers_every_destination(rule: dict) -> bool:
    return (rule["to"] == "any" and rule["from"] == "any" and rule["from_port"] == "any"
            and not rule["from_app"] and not rule["interface_out"] and not rule["interface_in"])


def egress_findings(settings: FirewallSettings, found_rules: list[dict],
                    default_outgoing: str, ipv6: bool) -> list[str]:
    """What lets mail out around the relay, or keeps it from the relay, in the rules found
    (``UfwConfig["rules"]`` in file order, which is ufw's order); empty when all is well."""
    if settings.mail_relay_ports is None:
        return []
    problems = []
    for v6 in (False, True) if ipv6 else (False,):
        family = "IPv6" if v6 else "IPv4"
        for number in blocked_ports(settings.mail_relay_ports):
            passes, rule = outbound_verdict(found_rules, number, v6, default_outgoing)
            if passes:
                problems.append(f"port {number} open outward over {family} "
                                f"({_decided_by(rule, default_outgoing)})")
        for number in settings.mail_relay_ports:
            passes, rule = outbound_verdict(found_rules, number, v6, default_outgoing)
            if not passes and rule is not None:
                problems.append(f"the relay's port {number} is closed outward over {family} "
                                f"({_decided_by(rule, default_outgoing)}): mail cannot leave")
    return problems


def _decided_by(rule: dict | None, default_outgoing: str) -> str:
    if rule is None:
        return f"no rule, default outgoing {default_outgoing}"
    target = rule["to"] if rule["to"] != "any" else "anywhere"
    where = f" on {rule['interface_out']}" if rule["interface_out"] else ""
    # the comment is host text: shown through repr only, so it cannot forge a line
    return (f"{rule['action']} out to {target} port {rule['port']}{where}, "
            f"comment {rule['comment']!r}")
