"""Mail leaves only through the relay (firewall_mail_relay_only, issue 25 item 3): which ports
close outward for which relays, the refusals naming the key, and the audit's verdict on rules
captured from converged Debian 12/13 boxes (tests/unit/facts/ufw.UfwConfig/*_mail_relay_only)
and on drifts of them."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pyinfra_lockdown.audit_checks import FAIL, NA, PASS, egress_check
from pyinfra_lockdown.egress import EGRESS_COMMENT, blocked_ports, egress_rules, outbound_verdict
from pyinfra_lockdown.facts.ufw import ufw_active
from pyinfra_lockdown.facts.ufw_output import output_problems, with_output_kernel
from pyinfra_lockdown.firewall import check_rules_syntax, declared_rules
from pyinfra_lockdown.operations.ufw import _rules_to_delete as rules_to_delete
from pyinfra_lockdown.operations.ufw import rules_to_add
from pyinfra_lockdown.settings import SettingsError, firewall_settings
from pyinfra_lockdown.ufw_rules import normalize_rule, rule_arguments

FACTS = Path(__file__).parent / "facts" / "ufw.UfwConfig"
CAPTURED = {release: json.loads((FACTS / f"{release}_mail_relay_only.json").read_text())["fact"]
            for release in ("debian12", "debian13")}
FALLBACK = {"host": "relay2.example.net"}


def ports_closed(data: dict) -> list[tuple[str, bool]]:
    return [(rule["port"], rule["v6"]) for rule in egress_rules(firewall_settings(data))]


def hand_made(action: str, port: str, to: str = "any", v6: bool = False, comment: str = "") -> dict:
    return normalize_rule({"action": action, "direction": "out", "proto": "tcp", "port": port,
                           "to": to, "v6": v6, "comment": comment})


# --- which ports close ------------------------------------------------------------------------

def test_default_mailgun_587_closes_25_and_465_over_both_families():
    assert firewall_settings({}).mail_relay_ports == (587,)
    assert ports_closed({}) == [("25", False), ("25", True), ("465", False), ("465", True)]


def test_ipv6_off_closes_ipv4_only():
    assert ports_closed({"firewall_ipv6": False}) == [("25", False), ("465", False)]


def test_a_relay_on_465_keeps_465_open_and_closes_587():
    data = {"relay_provider": "sendgrid", "relay_port": 465}
    assert firewall_settings(data).mail_relay_ports == (465,)
    assert [port for port, v6 in ports_closed(data) if not v6] == ["25", "587"]


def test_every_fallback_port_stays_open_outward():
    data = {"relay_fallbacks": [{**FALLBACK, "port": 465}, {"host": "relay3.example.net",
                                                             "port": 2525}]}
    assert firewall_settings(data).mail_relay_ports == (587, 465, 2525)
    assert blocked_ports((587, 465, 2525)) == [25]
    # a fallback on the relay's own port adds nothing
    assert firewall_settings({"relay_fallbacks": [FALLBACK]}).mail_relay_ports == (587,)


def test_every_smtp_port_of_the_relays_open_closes_nothing():
    data = {"relay_fallbacks": [{**FALLBACK, "port": 465}], "relay_port": 587}
    assert blocked_ports((587, 465)) == [25]
    assert [p for p, v6 in ports_closed(data) if not v6] == ["25"]


def test_off_declares_nothing_and_leaves_the_relay_data_unread():
    data = {"firewall_mail_relay_only": "false", "relay_port": 25,
            "relay_provider": "custom"}  # custom without relay_host: not read at all
    settings = firewall_settings(data)
    assert settings.mail_relay_ports is None and egress_rules(settings) == []


def test_the_rules_are_tagged_outgoing_rejects_with_log():
    rules = egress_rules(firewall_settings({}))
    assert {(r["action"], r["direction"], r["proto"], r["log"], r["to"], r["comment"])
            for r in rules} == {("reject", "out", "tcp", "log", "any", EGRESS_COMMENT)}
    assert rule_arguments(rules[0]) == [
        "reject", "out", "log", "proto", "tcp", "from", "0.0.0.0/0", "to", "any", "port", "25",
        "comment", EGRESS_COMMENT]


# --- refusals: one error naming the key, before any host --------------------------------------

@pytest.mark.parametrize("data, named", [
    ({"relay_port": 25}, "relay_port is 25"),
    ({"relay_fallbacks": [FALLBACK, {"host": "relay3.example.net", "port": 25}]},
     "relay_fallbacks[2].port is 25"),
])
def test_a_relay_on_port_25_is_refused_naming_the_key_and_the_way_out(data, named):
    with pytest.raises(SettingsError) as caught:
        firewall_settings(data)
    assert caught.value.key == "firewall_mail_relay_only"
    assert named in str(caught.value)
    assert "firewall_mail_relay_only: false" in str(caught.value)
    assert "587" in caught.value.fix


def test_port_25_is_fine_when_the_key_is_off():
    assert firewall_settings({"relay_port": 25, "firewall_mail_relay_only": False}) is not None


@pytest.mark.parametrize("data, key", [
    ({"firewall_mail_relay_only": "maybe"}, "firewall_mail_relay_only"),
    ({"firewall_mail_relay_only": 1}, "firewall_mail_relay_only"),
    ({"relay_fallbacks": [{**FALLBACK, "port": "x"}]}, "relay_fallbacks[1].port"),
    ({"relay_fallbacks": [{"port": 465}]}, "relay_fallbacks[1].host"),
    ({"relay_port": 2587}, "relay_port"),  # not a Mailgun port
])
def test_bad_values_name_their_key(data, key):
    with pytest.raises(SettingsError) as caught:
        firewall_settings(data)
    assert caught.value.key == key, caught.value


def test_a_settings_object_built_by_hand_with_port_25_is_refused_too():
    settings = firewall_settings({})
    hand = type(settings)(allowed=["ssh"], mail_relay_ports=(25,))
    with pytest.raises(SettingsError, match="firewall_mail_relay_only"):
        check_rules_syntax(hand)
    assert settings.mail_relay_ports == (587,)


# --- converging: what the rules operation adds and deletes -------------------------------------

@pytest.mark.parametrize("release", sorted(CAPTURED))
def test_the_captured_converged_box_needs_nothing(release):
    wanted = declared_rules(firewall_settings({}), [22])
    found = CAPTURED[release]["rules"]
    assert rules_to_add(wanted, found) == []
    assert rules_to_delete(wanted, found, "tagged", "lockdown") == []


def test_turning_the_key_off_prunes_exactly_the_egress_rules():
    wanted = declared_rules(firewall_settings({"firewall_mail_relay_only": False}), [22])
    deleted = rules_to_delete(wanted, CAPTURED["debian12"]["rules"], "tagged", "lockdown")
    assert sorted((r["port"], r["v6"]) for r in deleted) == [
        ("25", False), ("25", True), ("465", False), ("465", True)]


def test_a_new_fallback_port_reopens_it():
    """A fallback added on 465: the 465 rules are pruned so the fallback is not silently
    broken, the 25 rules stay."""
    wanted = declared_rules(firewall_settings({"relay_fallbacks": [{**FALLBACK, "port": 465}]}),
                            [22])
    found = CAPTURED["debian13"]["rules"]
    assert rules_to_add(wanted, found) == []
    assert sorted((r["port"], r["v6"]) for r in rules_to_delete(wanted, found, "tagged",
                                                                 "lockdown")) == [
        ("465", False), ("465", True)]


# --- the audit ---------------------------------------------------------------------------------

def verdict(ufw: dict, data: dict | None = None):
    return egress_check(firewall_settings(data or {}), ufw)


@pytest.mark.parametrize("release", sorted(CAPTURED))
def test_the_captured_converged_box_passes(release):
    check = verdict(CAPTURED[release])
    assert check.verdict == PASS, check
    assert "25, 465 rejected outward" in check.expected and "587 open" in check.expected


def test_off_is_not_applicable():
    assert verdict(CAPTURED["debian12"], {"firewall_mail_relay_only": False}).verdict == NA


def test_a_missing_family_fails_naming_it_and_the_fix():
    ufw = copy.deepcopy(CAPTURED["debian13"])
    ufw["rules"] = [r for r in ufw["rules"] if not (r["v6"] and r["port"] == "25")]
    check = verdict(ufw)
    assert check.verdict == FAIL
    assert check.value["problems"] == ["port 25 open outward over IPv6 (no rule, default "
                                       "outgoing allow)"]
    assert "Run the firewall deploy" in check.found


def test_ufw_disabled_fails():
    ufw = {**CAPTURED["debian12"], "enabled": False}
    assert verdict(ufw).verdict == FAIL


def test_a_hand_made_allow_before_lockdowns_reject_fails_even_towards_one_address():
    ufw = copy.deepcopy(CAPTURED["debian12"])
    # a comment as the fact decodes it from user.rules: anything root wrote there
    hostile = {**hand_made("allow", "25", to="203.0.113.9"), "comment": "x'\nPASS ufw.mail_egress"}
    ufw["rules"].insert(0, hostile)
    check = verdict(ufw)
    assert check.verdict == FAIL
    assert "port 25 open outward over IPv4 (allow out to 203.0.113.9 port 25" in check.found
    assert "\n" not in check.found  # the comment is host text: shown escaped


def test_a_hand_made_allow_after_lockdowns_reject_changes_nothing():
    ufw = copy.deepcopy(CAPTURED["debian12"])
    ufw["rules"].append(hand_made("allow", "25"))
    assert verdict(ufw).verdict == PASS


def test_a_rule_closing_the_relays_port_fails_mail_cannot_leave():
    ufw = copy.deepcopy(CAPTURED["debian13"])
    ufw["rules"].insert(0, hand_made("deny", "500:600", v6=True))
    check = verdict(ufw)
    assert check.verdict == FAIL
    assert "the relay's port 587 is closed outward over IPv6" in check.found


def test_a_stricter_default_outgoing_still_passes_when_rules_hold():
    ufw = copy.deepcopy(CAPTURED["debian12"])
    ufw["defaults"] = {**ufw["defaults"], "outgoing": "deny"}
    assert outbound_verdict(ufw["rules"], 2525, False, "deny") == (False, None)
    assert verdict(ufw).verdict == PASS


# --- the kernel's copy of the outgoing rules (facts/ufw_output.py) ---------------------------

OUTPUT_FACTS = Path(__file__).parent / "facts" / "ufw_output.UfwOutputKernel"


def captured_output(case: str) -> dict:
    return json.loads((OUTPUT_FACTS / f"{case}.json").read_text())["fact"]


@pytest.mark.parametrize("release", sorted(CAPTURED))
def test_the_converged_kernel_runs_the_outgoing_rules(release):
    output = captured_output(f"{release}_mail_relay_only")
    assert output_problems(CAPTURED[release], output) == []
    assert ufw_active(with_output_kernel(CAPTURED[release], output))


@pytest.mark.parametrize("case, problem", [
    ("debian13_user_output_flushed", "IPv4: 0 of the 4 outgoing user rule lines are loaded"),
    ("debian12_v6_output_jump_removed", "IPv6: outgoing traffic does not pass ufw's user rules"),
])
def test_a_kernel_drift_of_the_outgoing_side_makes_ufw_inactive_for_the_deploy(case, problem):
    """ufw.enable then reloads ufw into the kernel (the lab test shows the repair)."""
    release = case.split("_")[0]
    merged = with_output_kernel(CAPTURED[release], captured_output(case))
    assert [p for p in merged["kernel_problems"] if p.startswith(problem)], merged
    assert not ufw_active(merged)
    assert CAPTURED[release]["kernel_problems"] == []  # the fact's own value is not changed


def test_disabled_or_missing_ufw_has_no_outgoing_problems():
    assert output_problems({**CAPTURED["debian12"], "enabled": False}, {}) == []
    assert with_output_kernel(None, {}) is None


def test_ipv6_off_looks_at_ipv4_only():
    config = {**CAPTURED["debian12"], "ipv6": False}
    output = {"v4": captured_output("debian12_mail_relay_only")["v4"]}
    assert output_problems(config, output) == []
