"""The audit's checks of every exposed port (issue 25): each listener beyond loopback and each
port published around ufw that no declared rule lets in is tried from outside, and FAILs when
it answers; the DOCKER-USER guard is checked from the state read. Pure, like audit_checks.

The probe of these ports runs once every host has been read (their ports come from the state
read), for all hosts at once with one timeout (audit_probe.probe_exposed); until then each
host's checks wait in ``Findings``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .audit_checks import FAIL, NA, PASS, Check, Expected, _join
from .exposure import (
    Exposure,
    exposures,
    guard_active,
    guard_problems,
    ports_to_probe,
    undeclared,
)
from .facts.audit_state import AuditHostState
from .facts.postfix import SMTP_PORTS
from .facts.ufw import ufw_active
from .firewall import FAMILIES_V4, FAMILIES_V4_V6, firewall_rules, guard_source_rules, sshd_ports

EXPECTED = "answers from outside only with a declared rule (firewall_allowed)"
NO_PROBE = "no probes group / audit_probe unset"


@dataclass
class Findings:
    """One host's undeclared exposures and what decides about them without a probe."""
    items: list[Exposure] = field(default_factory=list)
    guard: dict[int, bool] = field(default_factory=dict)  # family -> guard loaded
    filtering: bool = False  # ufw active with incoming deny/reject
    problem: str | None = None  # the exposure could not be read
    declared: list[str] = field(default_factory=list)  # exposed ports a declared rule opens

    @property
    def probe_ports(self) -> list[int]:
        return ports_to_probe(self.items)


def findings(exp: Expected, state: AuditHostState) -> Findings:
    """What this host exposes that no declared rule lets in (SMTP ports: ``outside.smtp``)."""
    found = state.get("exposure")
    if found is None:
        return Findings(problem="the exposure section of the state read is missing")
    fw, ufw = exp.firewall, state.get("ufw")
    rules = firewall_rules(fw, sshd_ports(state))
    families = FAMILIES_V4_V6 if fw.ipv6 else FAMILIES_V4
    incoming = ((ufw or {}).get("defaults") or {}).get("incoming")
    items = undeclared(found, rules, SMTP_PORTS)
    guarded = guard_source_rules(fw)
    return Findings(
        items=items,
        declared=[e.label for e in exposures(found, SMTP_PORTS) if e not in items],
        guard={family: guard_active(found, family, guarded) for family in families},
        filtering=ufw_active(ufw) and incoming in ("deny", "reject"),
        problem=None if found.get("ss") else "ss is missing: listeners unknown",
    )


def guard_check(exp: Expected, state: AuditHostState) -> Check:
    """lockdown's DOCKER-USER guard: in ufw's after rules and, ufw active, in the kernel."""
    fw, ufw = exp.firewall, state.get("ufw")
    expected = "DOCKER-USER guard in ufw's after rules and loaded (published ports obey the rules)"
    if ufw is None:
        return Check("ufw.docker_user", FAIL, expected, "ufw not installed")
    families = FAMILIES_V4_V6 if fw.ipv6 else FAMILIES_V4
    problems = guard_problems(state.get("exposure"), guard_source_rules(fw), families,
                              ufw_active(ufw))
    if problems:
        return Check("ufw.docker_user", FAIL, expected,
                     "; ".join(problems) + ": converge to restore it", {"problems": problems})
    return Check("ufw.docker_user", PASS, expected, "in place"
                 + (" and loaded" if ufw_active(ufw) else " (ufw inactive)"))


def _who(item: Exposure) -> str:
    """Who exposes the port, as the host says it (escaped by the report, never trusted)."""
    parts = []
    for listener in item.listeners:
        names = ",".join(sorted({f"{p['name']} (pid {p['pid']})" for p in listener["processes"]}))
        where = _join(listener["address"], listener["port"])
        unit = f" [{listener['unit']}]" if listener.get("unit") else ""
        parts.append(f"{where} {names or 'process unknown'}{unit}")
    for rule in item.published:
        kind = "Docker" if rule["docker"] else "nat rule"
        parts.append(f"published by {kind} (IPv{rule['family']} {rule['chain']}) to "
                     f"{rule['to'] or 'this host'}")
    return "; ".join(parts)


def _fix(item: Exposure) -> str:
    port = "every port" if item.port is None else f'"{item.label}"'
    fixes = []
    if any(rule["docker"] for rule in item.published):
        fixes.append("converge: lockdown's DOCKER-USER guard then drops it (to keep it public, "
                     f"declare {port} in firewall_allowed; the container: docker ps --filter "
                     f"publish={item.port}; or publish on loopback: -p 127.0.0.1:{item.port}:...)")
    elif item.published:
        fixes.append(f"remove the nat rule (iptables -t nat -S | grep -- '--dport {item.port}') "
                     f"or declare {port} in firewall_allowed")
    if item.listeners:
        fixes.append("bind it to 127.0.0.1 if only this host uses it, or declare "
                     f"{port} in firewall_allowed; a rule that lets it in undeclared: "
                     "ufw status numbered, or converge with firewall_prune: all")
    return "fix: " + "; or ".join(fixes)


def exposure_checks(found: Findings, probe: dict | None) -> list[Check]:
    """One check per undeclared port. TCP: FAIL when the probe reached it (or Docker publishes
    it with no guard loaded), PASS when filtered; UDP (a probe cannot tell filtered from
    silent): PASS while ufw's default deny is loaded, FAIL otherwise."""
    if found.problem:
        return [Check("outside.ports", FAIL, EXPECTED, f"cannot check: {found.problem}")]
    results = (probe or {}).get("results") or []
    if not found.items:
        return [Check("outside.ports", PASS, EXPECTED, "nothing beyond the declared rules ("
                      + (", ".join(found.declared) + " declared" if found.declared else
                         "no listener beyond loopback, no published port") + ")",
                      {"declared": found.declared})]
    checks = []
    for item in found.items:
        check_id = f"outside.{item.label}"
        who = _who(item)
        # the guard covers what Docker publishes (DNAT into its bridges), nothing else
        bypass = [r for r in item.published
                  if r["docker"] and not found.guard.get(r["family"], False)]
        answered = sorted({_join(r["address"], r["port"]) for r in results
                           if r.get("port") == item.port and r.get("open")})
        probed = sorted({r["address"] for r in results if r.get("port") == item.port})
        value = {"port": item.port, "proto": item.proto, "open": answered, "probed": probed,
                 "via": (probe or {}).get("via"), "listeners": len(item.listeners),
                 "published": [r["rule"] for r in item.published]}
        if answered:
            checks.append(Check(check_id, FAIL, EXPECTED, f"OPEN from outside: "
                                f"{', '.join(answered)}, no declared rule: {who}; "
                                f"{_fix(item)}", value))
        elif bypass and (item.proto == "udp" or item.port is None or not probed):
            checks.append(Check(check_id, FAIL, EXPECTED, f"published around ufw, no declared "
                                f"rule and no DOCKER-USER guard loaded: {who}; {_fix(item)}",
                                value))
        elif item.proto == "tcp" and item.port is not None and probe is not None:
            if probe.get("error"):
                checks.append(Check(check_id, FAIL, EXPECTED, f"probe failed: {probe['error']}",
                                    value))
            else:
                checks.append(Check(check_id, PASS, EXPECTED, f"filtered from outside on "
                                    f"{', '.join(probed)} (via {probe.get('via')}): {who}",
                                    value))
        elif (item.published and all(r["docker"] for r in item.published)
              and not item.listeners and not bypass):
            checks.append(Check(check_id, PASS, EXPECTED, "dropped by lockdown's DOCKER-USER "
                                f"guard (not probed: {NO_PROBE if probe is None else 'UDP'}): "
                                f"{who}", value))
        elif found.filtering:
            how = "UDP, not probed" if item.proto == "udp" else (
                "not probed: " + NO_PROBE if probe is None else "not probed")
            verdict = NA if item.proto == "tcp" else PASS
            checks.append(Check(check_id, verdict, EXPECTED,
                                f"{how}; ufw's default deny applies: {who}", value))
        else:
            checks.append(Check(check_id, FAIL, EXPECTED, f"ufw is not filtering (inactive or "
                                f"default allow): {who}; {_fix(item)}", value))
    return checks
