"""Every exposed port (issue 25): the HostExposure parsers on hostile and odd input, what counts
as declared, the DOCKER-USER guard's rules and digest (against what real Debian 12/13 boxes
printed: tests/unit/facts/exposure.HostExposure/), the exposure verdicts, and the probe of all
hosts at once."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gevent
import pytest
from pyinfra_lockdown.facts.exposure import PortProbe, parse_nat_rule, parse_ss_line

from pyinfra_lockdown.audit_checks import FAIL, NA, PASS, expected_state
from pyinfra_lockdown.audit_exposure import Findings, exposure_checks, findings, guard_check
from pyinfra_lockdown.audit_probe import probe_exposed
from pyinfra_lockdown.audit_report import AuditRun, build_report, host_entry, render_table
from pyinfra_lockdown.exposure import (
    Exposure,
    block_digest,
    declared,
    exposures,
    guard_active,
    guard_block,
    guard_rules,
    ports_to_probe,
    undeclared,
)
from pyinfra_lockdown.firewall import firewall_rules, guard_source_rules
from pyinfra_lockdown.settings import audit_settings, firewall_settings

FIXTURES = Path(__file__).parent / "facts" / "exposure.HostExposure"
RELEASES = ("debian12", "debian13")
DATA = {"relay_host": "10.77.0.1", "relay_tls_level": "encrypt",
        "mail_root_forward": "admin@lab.test"}


def captured(case: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{case}.json").read_text())["fact"]


def ssh_rules(*extra: Any, ipv6: bool = True) -> list[dict]:
    return firewall_rules(firewall_settings({"firewall_allowed": ["ssh", *extra],
                                             "firewall_ipv6": ipv6}), [22])


def guarded(*extra: Any, ipv6: bool = True) -> list[dict]:
    """The rules the guard is built from (firewall_allowed without ssh)."""
    return guard_source_rules(firewall_settings({"firewall_allowed": ["ssh", *extra],
                                                 "firewall_ipv6": ipv6}))


def state(exposure: dict, incoming: str = "deny", enabled: bool = True) -> dict:
    return {"exposure": exposure, "sshd": {"ports": [22]},
            "ufw": {"enabled": enabled, "kernel_problems": [],
                    "defaults": {"incoming": incoming}}}


EXPECTED = expected_state(audit_settings(DATA, {}))


# --- parsers -----------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "tcp LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* users:((\"systemd-resolve\",pid=9,fd=14))",
    "tcp LISTEN 0 100 127.0.0.1:25 0.0.0.0:* users:((\"master\",pid=1,fd=13))",
    "tcp LISTEN 0 100 [::1]:25 [::]:* users:((\"master\",pid=1,fd=14))",
    "udp UNCONN 0 0 127.0.0.1:323 0.0.0.0:* users:((\"chronyd\",pid=5,fd=5))",
    "tcp LISTEN 0 5 [::ffff:127.0.0.1]:8000 *:*",
])
def test_loopback_listeners_are_not_exposed(line: str) -> None:
    assert parse_ss_line(line) is None


def test_a_hostile_process_name_is_kept_as_text_and_never_shifts_the_fields() -> None:
    # comm is what the process chose: quotes, "pid=", " ino:", an escape sequence
    line = ('tcp LISTEN 0 16 0.0.0.0:9099 0.0.0.0:* users:(("a",pid=1,fd=3) ino:9",pid=77,'
            'fd=3)) ino:230 sk:1 cgroup:/system.slice/x.service <->')
    listener = parse_ss_line(line)
    assert listener is not None
    assert (listener["address"], listener["port"], listener["proto"]) == ("0.0.0.0", 9099, "tcp")
    assert listener["unit"] == "/system.slice/x.service"
    assert listener["processes"]  # shown (escaped by the report), never used to decide


def test_udp_and_interface_bound_listeners() -> None:
    dhcp = parse_ss_line('udp UNCONN 0 0 0.0.0.0%eth0:68 0.0.0.0:* users:(("dhclient",pid=4,fd=7))')
    assert dhcp is not None
    assert (dhcp["proto"], dhcp["port"], dhcp["interface"]) == ("udp", 68, "eth0")
    six = parse_ss_line('udp UNCONN 0 0 [fe80::1]%eth0:546 [::]:* '
                        'users:(("systemd-networkd",pid=2,fd=9))')
    assert six is not None and six["address"] == "fe80::1"


@pytest.mark.parametrize("rule, expected", [
    ("-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8088 -j DNAT --to-destination 172.17.0.2:80",
     {"chain": "DOCKER", "proto": "tcp", "ports": "8088", "to": "172.17.0.2:80", "docker": True}),
    ("-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080",
     {"chain": "PREROUTING", "proto": "tcp", "ports": "80", "to": "8080", "docker": False}),
    ("-A PREROUTING -d 203.0.113.7/32 -j DNAT --to-destination 10.0.0.5",
     {"chain": "PREROUTING", "proto": "any", "ports": "any", "docker": False}),
    ("-A PREROUTING -p udp -m multiport --dports 6000:6002 -j DNAT --to-destination 10.0.0.5",
     {"proto": "udp", "ports": "6000:6002"}),
    ("-A PREROUTING -p tcp -m tcp ! --dport 22 -j DNAT --to-destination 10.0.0.5",
     {"ports": "any"}),
])
def test_nat_rules_that_publish(rule: str, expected: dict) -> None:
    parsed = parse_nat_rule(rule, 4)
    assert parsed is not None
    assert {key: parsed[key] for key in expected} == expected


def test_nat_rules_of_local_connections_publish_nothing() -> None:
    assert parse_nat_rule("-A OUTPUT -p tcp --dport 80 -j DNAT --to-destination 1.2.3.4", 4) is None


# --- declared, exposed, probed -----------------------------------------------------------

def test_what_a_declared_rule_lets_in() -> None:
    rules = ssh_rules("6000:6007/udp", {"port": 5432, "from": "198.51.100.0/24"},
                      {"port": 8080, "action": "deny"}, 53)
    assert declared(rules, 22, "tcp") and not declared(rules, 22, "udp")
    assert declared(rules, 6003, "udp") and not declared(rules, 6008, "udp")
    assert declared(rules, 5432, "tcp")  # a source restriction is a declaration too
    assert not declared(rules, 8080, "tcp")  # deny lets nothing in
    assert declared(rules, 53, "udp") and declared(rules, 53, "tcp")  # proto any
    assert not declared(rules, None, "tcp")  # "every port" is never declared


@pytest.mark.parametrize("release", RELEASES)
def test_a_converged_box_exposes_only_sshd(release: str) -> None:
    found = captured(f"{release}_converged")
    assert [e.label for e in exposures(found)] == ["22/tcp"]
    assert undeclared(found, ssh_rules()) == []
    result = findings(EXPECTED, state(found))
    assert result.items == [] and result.declared == ["22/tcp"]
    assert exposure_checks(result, None)[0].verdict == PASS


@pytest.mark.parametrize("release", RELEASES)
def test_the_docker_published_port_and_the_stray_listener_are_undeclared(release: str) -> None:
    found = captured(f"{release}_docker_published_no_guard")
    items = undeclared(found, ssh_rules())
    assert [e.label for e in items] == ["8088/tcp", "9099/tcp"]
    assert ports_to_probe(items) == [8088, 9099]
    assert items[0].published[0]["to"] == "172.17.0.2:80" and items[1].listeners
    assert undeclared(found, ssh_rules("8088/tcp", "9099/tcp")) == []
    assert not guard_active(found, 4, guarded())


@pytest.mark.parametrize("release", RELEASES)
def test_the_guard_block_digest_is_what_the_host_prints(release: str) -> None:
    """The state read hashes the block with sed | sha256sum on the host; the deploy wrote
    guard_block(): equal, so a converged host reads as current (and a no-op)."""
    for case in ("converged", "docker_published_guarded_stray_listener"):
        found = captured(f"{release}_{case}")
        for family in (4, 6):
            assert found["guard"][f"v{family}"]["file"] == block_digest(
                guard_block(guarded(), family))
        # loaded in the kernel; the jump to it is Docker's (none on the box without Docker)
        assert guard_active(found, 4, guarded()) == (case != "converged")
        checks = guard_check(EXPECTED, state(found))
        assert checks.verdict == PASS, checks
    unguarded = guard_check(EXPECTED, state(captured(f"{release}_docker_published_no_guard")))
    assert unguarded.verdict == FAIL and "guard block is missing" in unguarded.found


def test_guard_rules_let_declared_published_ports_in_per_family_and_drop_the_rest() -> None:
    rules = guarded({"port": 5432, "from": "198.51.100.0/24"}, "6000:6001/udp")
    v4, v6 = guard_rules(rules, 4), guard_rules(rules, 6)
    assert not any("--ctorigdstport 22 " in line for line in v4 + v6)  # ssh: never Docker's
    assert any("-s 198.51.100.0/24 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 5432"
               in line for line in v4)
    assert not any("198.51.100.0/24" in line for line in v6)
    assert any("-p udp -m conntrack --ctstate DNAT --ctorigdstport 6000:6001" in line
               for line in v6)
    assert v4[0].startswith("-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED")
    assert v4[-2:] == [f"-A DOCKER-USER -o {b} -m comment --comment lockdown-guard -j DROP"
                       for b in ("docker0", "br-+")]
    assert all("--comment lockdown-guard" in line for line in v4 + v6)


# --- verdicts ----------------------------------------------------------------------------

def probe_of(results: list[tuple[str, int, bool]], error: str | None = None) -> dict:
    return {"via": "test prober", "error": error,
            "results": [{"address": a, "port": p, "open": o} for a, p, o in results]}


def no_guard_findings(release: str = "debian12") -> Findings:
    return findings(EXPECTED, state(captured(f"{release}_docker_published_no_guard")))


def test_ports_that_answer_fail_by_name_with_the_fix() -> None:
    checks = {c.id: c for c in exposure_checks(no_guard_findings(), probe_of(
        [("10.77.0.11", 8088, True), ("10.77.0.11", 9099, True), ("fd77::11", 9099, False)]))}
    docker, stray = checks["outside.8088/tcp"], checks["outside.9099/tcp"]
    assert docker.verdict == FAIL and "10.77.0.11:8088" in docker.found
    assert "published by Docker" in docker.found and "DOCKER-USER guard" in docker.found
    assert stray.verdict == FAIL and "10.77.0.11:9099" in stray.found
    assert "lab-stray-9099.service" in stray.found and "firewall_allowed" in stray.found


def test_filtered_ports_pass_and_say_so() -> None:
    found = findings(EXPECTED, state(captured("debian13_docker_published_guarded_stray_listener")))
    checks = exposure_checks(found, probe_of([("10.77.0.12", 8088, False),
                                              ("10.77.0.12", 9099, False)]))
    assert [c.verdict for c in checks] == [PASS, PASS]
    assert all("filtered from outside" in c.found for c in checks)


def test_without_a_probe_docker_without_guard_fails_and_a_listener_is_not_judged() -> None:
    checks = {c.id: c for c in exposure_checks(no_guard_findings(), None)}
    assert checks["outside.8088/tcp"].verdict == FAIL
    assert "no DOCKER-USER guard" in checks["outside.8088/tcp"].found
    assert checks["outside.9099/tcp"].verdict == NA
    guarded = findings(EXPECTED,
                       state(captured("debian12_docker_published_guarded_stray_listener")))
    by_id = {c.id: c for c in exposure_checks(guarded, None)}
    assert by_id["outside.8088/tcp"].verdict == PASS and "guard" in by_id["outside.8088/tcp"].found


def test_a_failed_probe_fails_and_an_open_firewall_fails_udp() -> None:
    checks = exposure_checks(no_guard_findings(), probe_of([], error="prober down"))
    assert {c.verdict for c in checks} == {FAIL}
    udp = {"ss": True, "published": [], "guard": {}, "listeners": [parse_ss_line(
        'udp UNCONN 0 0 0.0.0.0:5353 0.0.0.0:* users:(("avahi",pid=3,fd=12))')]}
    filtered = exposure_checks(findings(EXPECTED, state(udp)), None)
    assert [(c.id, c.verdict) for c in filtered] == [("outside.5353/udp", PASS)]
    wide_open = exposure_checks(findings(EXPECTED, state(udp, incoming="allow")), None)
    assert wide_open[0].verdict == FAIL and "not filtering" in wide_open[0].found


def test_an_exposure_that_cannot_be_read_fails() -> None:
    checks = exposure_checks(findings(EXPECTED, {"ufw": None}), None)
    assert [(c.id, c.verdict) for c in checks] == [("outside.ports", FAIL)]


def test_a_hostile_name_is_escaped_in_the_table() -> None:
    found = no_guard_findings("debian13")
    checks = exposure_checks(found, probe_of([("10.77.0.12", 9099, True)]))
    report = build_report({"box": {"checks": checks, "error": None}}, {})
    table = render_table(report)
    assert "\x1b" not in table and "db\\x1b[2J" in table
    assert host_entry("box", {"checks": checks})["status"] == "fail"


# --- the probe: all hosts, all ports, at once ----------------------------------------------

def test_every_hosts_ports_are_probed_at_once_with_one_timeout() -> None:
    calls: list[tuple[list[str], list[int]]] = []

    def slow_probe(addresses: list[str], ports: list[int]) -> dict:
        calls.append((addresses, list(ports)))
        gevent.sleep(0.3)  # a filtered port costs the whole connect timeout
        return probe_of([(a, p, False) for a in addresses for p in ports])

    run = AuditRun()
    for index in range(5):
        run.exposed[f"box{index}"] = (no_guard_findings(), slow_probe, [f"10.0.0.{index}"])
    run.exposed["clean"] = (Findings(), slow_probe, ["10.0.0.9"])  # nothing to probe
    run.exposed["off"] = (no_guard_findings(), "off", ["10.0.0.8"])  # no probes group: none
    started = time.monotonic()
    probe_exposed(run)
    assert time.monotonic() - started < 0.6  # five hosts: one timeout, not five
    assert sorted(calls) == sorted(([f"10.0.0.{i}"], [8088, 9099]) for i in range(5))
    assert set(run.exposure_probes) == {f"box{i}" for i in range(5)}


def test_port_probe_output_is_parsed() -> None:
    fact = PortProbe()
    assert "'[fd77::11]:8088'" in fact.command(targets=("[fd77::11]:8088",)) or \
        "[fd77::11]:8088" in fact.command(targets=("[fd77::11]:8088",))
    assert fact.process(["python3: missing"]) is None
    assert fact.process(["python3: yes", json.dumps({"address": "fd77::11", "port": 8088,
                                                      "open": True})])[0]["open"] is True


def test_exposure_entries_are_one_per_port_and_protocol() -> None:
    found = {"listeners": [parse_ss_line('tcp LISTEN 0 5 0.0.0.0:8088 0.0.0.0:* '
                                         'users:(("docker-proxy",pid=5,fd=4))')],
             "published": [parse_nat_rule("-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8088 "
                                          "-j DNAT --to-destination 172.17.0.2:80", 4)]}
    (item,) = exposures(found)
    assert isinstance(item, Exposure) and item.listeners and item.published


def test_a_nat_rule_that_is_not_dockers_is_judged_by_the_probe_not_the_guard() -> None:
    redirect = {"ss": True, "listeners": [], "guard": {}, "published": [parse_nat_rule(
        "-A PREROUTING -p tcp -m tcp --dport 8443 -j REDIRECT --to-ports 22", 4)]}
    found = findings(EXPECTED, state(redirect))
    (unprobed,) = exposure_checks(found, None)
    assert unprobed.verdict == NA and "not probed" in unprobed.found
    (opened,) = exposure_checks(found, probe_of([("10.77.0.11", 8443, True)]))
    assert opened.verdict == FAIL and "nat rule" in opened.found
