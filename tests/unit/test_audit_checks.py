"""Audit verdicts from a real converged box's AuditState (tests/unit/facts/audit.converged_state.json,
read from a lab box converged with inventories/lab.py host data), then drifts applied to it."""
import copy
import json
from pathlib import Path

import pytest

from pyinfra_lockdown.audit_checks import FAIL, NA, PASS, expected_state, host_checks, outside_check, summary
from pyinfra_lockdown.audit_report import build_report, render_table
from pyinfra_lockdown.settings import SettingsError, audit_settings

STATE = json.loads((Path(__file__).parent / "facts" / "audit.converged_state.json").read_text())
# The fixtures were captured on boxes converged with relay_host 10.77.0.1 at level encrypt
# (an IP cannot be verified against a certificate, so that level is chosen explicitly).
DATA = {"relay_host": "10.77.0.1", "relay_tls_level": "encrypt", "mail_root_forward": "admin@lab.test",
        "apt_update": False}
CREDS = {"LOCKDOWN_RELAY_LOGIN": "postmaster@lab.test", "LOCKDOWN_RELAY_PASSWORD": "lab-password"}


def verdicts(state, data=DATA, environ=None, probe=None):
    checks = host_checks(expected_state(audit_settings(data, environ or {})), state, probe)
    return {c.id: c for c in checks}


def drifted(**changes):
    state = copy.deepcopy(STATE)
    for path, value in changes.items():
        target = state
        *keys, last = path.split("__")
        for key in keys:
            target = target[key]
        target[last] = value
    return state


def test_converged_box_passes_without_credentials():
    result = verdicts(STATE)
    assert {c.verdict for c in result.values()} == {PASS, NA}
    assert result["postfix.senders_map"].verdict == NA  # sender domain unknown without creds
    assert result["outside.smtp"].verdict == NA


def test_with_credentials_the_sasl_map_content_and_sender_map_are_compared():
    result = verdicts(STATE, environ=CREDS)
    assert result["postfix.sasl_map"].verdict == PASS
    assert result["postfix.senders_map"].verdict == PASS
    wrong = verdicts(STATE, environ={**CREDS, "LOCKDOWN_RELAY_PASSWORD": "Zq9-not-it"})
    assert wrong["postfix.sasl_map"].verdict == FAIL
    assert "Zq9-not-it" not in repr(wrong) and "lab-password" not in repr(result)


@pytest.mark.parametrize("status, found", [
    ("edited", "edited since lockdown wrote it"), ("missing", "no lockdown stamp")])
def test_a_sasl_map_edited_by_hand_or_unstamped_fails_whatever_its_content(status, found):
    state = drifted(sasl_map__stamp_status=status, sasl_map__stamp=None)
    check = verdicts(state, environ=CREDS)["postfix.sasl_map"]
    assert check.verdict == FAIL and found in check.found


def test_sender_domain_from_host_data_without_credentials():
    result = verdicts(STATE, data={**DATA, "mail_sender_domain": "lab.test"})
    assert result["postfix.senders_map"].verdict == PASS


def test_bad_host_data_still_raises_naming_the_key():
    with pytest.raises(SettingsError, match="relay_tls_level"):
        audit_settings({**DATA, "relay_tls_level": "may"}, {})
    with pytest.raises(SettingsError, match="audit_noise_hours"):
        audit_settings({**DATA, "audit_noise_hours": "x"}, {})


@pytest.mark.parametrize("path, value, failing", [
    ("main_cf__settings__relayhost", "[10.77.0.99]:587", "postfix.relayhost"),
    ("main_cf__settings__smtp_tls_security_level", "may", "postfix.tls_level"),
    ("main_cf__settings__smtp_sasl_security_options", "noanonymous", "postfix.sasl_auth_in_tls"),
    ("main_cf__settings__inet_interfaces", "all", "postfix.loopback_only"),
    ("sasl_map__mode", 644, "postfix.sasl_map"),
    ("sasl_map__mtime_ns", 10**19, "postfix.sasl_map"),
    ("ufw__enabled", False, "ufw.enabled ufw.mail_egress"),
    ("ufw__ipv6", False, "ufw.ipv6"),
    ("ufw__defaults__incoming", "allow", "ufw.defaults"),
    ("ufw__rules", [], "ufw.mail_egress ufw.rules ufw.ssh_allowed"),
    ("ufw__rules", [r for r in STATE["ufw"]["rules"] if r["direction"] == "in"],
     "ufw.mail_egress ufw.rules"),  # the outgoing rules gone
    ("ufw__kernel_problems", ["IPv4: ufw's chains are not loaded in the kernel"], "ufw.kernel"),
    ("ufw_output__v6__loaded", 0, "ufw.kernel"),  # ip6tables -F ufw6-user-output
    ("ufw_output", {}, "ufw.kernel"),  # the outgoing side could not be read
    ("ufw__deadman__pending", True, "ufw.deadman"),
    ("ufw__deadman__fired", True, "ufw.deadman"),
    ("ufw__deadman__armed", True, "ufw.deadman"),
    ("listeners", [{"address": "::", "port": 25, "interface": None, "loopback": False}],
     "postfix.no_public_listener"),
    ("noise__relay_denied_since_converge", 3, "noise.relay_denied"),
    ("noise__connects_since_converge", 1, "noise.smtpd_connects"),
])
def test_each_drift_fails_exactly_its_checks(path, value, failing):
    result = verdicts(drifted(**{path: value}))
    assert sorted(c.id for c in result.values() if c.verdict == FAIL) == failing.split()


def test_inline_static_secret_is_named_never_shown():
    state = drifted(main_cf__settings__smtp_sasl_password_maps="static:u:s3cret")
    result = verdicts(state)
    assert result["postfix.no_inline_secret"].verdict == FAIL
    assert "s3cret" not in repr(result) and "s3cret" not in render_table(
        build_report({"h": {"checks": list(result.values())}}, {}))


def test_smtp_inet_reenabled_and_unexpected_rule_are_listed():
    state = copy.deepcopy(STATE)
    state["master"]["services"]["smtp/inet"]["enabled"] = True
    extra = dict(state["ufw"]["rules"][0], port="8080", comment="")
    state["ufw"]["rules"].append(extra)
    result = verdicts(state)
    assert "smtp/inet ON" in result["postfix.loopback_only"].found
    assert result["ufw.rules"].value["missing"] == []
    assert result["ufw.rules"].value["unexpected"] == [
        "allow proto tcp from 0.0.0.0/0 to any port 8080 (v4)"]


def test_deferred_queue_fails_only_when_old():
    queue = {"source": "postqueue", "now": 10_000, "total": 1, "deferred": 1,
             "oldest_arrival": 10_000 - 600, "reason": "connect to x: No route to host"}
    assert verdicts(drifted(queue=queue))["postfix.queue"].verdict == PASS
    old = verdicts(drifted(queue={**queue, "oldest_arrival": 10_000 - 7200}))["postfix.queue"]
    assert old.verdict == FAIL and "No route to host" in old.found


def test_outside_view():
    closed = {"via": "lab prober", "error": None, "results": [
        {"address": "10.77.0.11", "port": p, "open": False, "relay": None} for p in (25, 465, 587)]}
    assert outside_check(closed).verdict == PASS
    opened = copy.deepcopy(closed)
    opened["results"][0].update(open=True, relay={"accepted": True})
    check = outside_check(opened)
    assert check.verdict == FAIL
    assert (check.value["open"], check.value["relayed"]) == (["10.77.0.11:25"], ["10.77.0.11:25"])
    assert outside_check({"via": "x", "error": "boom"}).verdict == FAIL


def test_report_json_and_table_agree():
    checks = list(verdicts(drifted(ufw__enabled=False)).values())
    report = build_report({"box1": {"checks": checks, "address": "10.77.0.11"}},
                          {"box2": "10.77.0.12"})
    assert report["ok"] is False and report["failing_hosts"] == ["box1", "box2"]
    assert report["hosts"][0]["summary"] == summary(checks)
    table = render_table(report)
    assert "FAIL  ufw.enabled" in table and "box2: UNREACHABLE" in table
    json.dumps(report)


@pytest.mark.parametrize("value", [">=TLSv1", "", "!SSLv2, !SSLv3"])
def test_a_weaker_tls_floor_fails_only_its_check(value):
    result = verdicts(drifted(main_cf__settings__smtp_tls_protocols=value))
    assert [c for c, check in result.items() if check.verdict == FAIL] == ["postfix.tls_floor"]
    assert result["postfix.tls_floor"].value["smtp_tls_protocols"] == value


def test_tls_floor_on_an_old_postfix_wants_the_exclusion_spelling():
    old = drifted(defaults={"mail_version": "3.5.25",
                            "smtp_tls_mandatory_protocols": "!SSLv2, !SSLv3"})
    assert verdicts(old)["postfix.tls_floor"].verdict == FAIL  # ">=TLSv1.2" is unreadable there
    spelled = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
    old["main_cf"]["settings"].update(smtp_tls_protocols=spelled, smtp_tls_mandatory_protocols=spelled)
    assert verdicts(old)["postfix.tls_floor"].verdict == PASS


def test_deferred_mail_names_its_cause_from_the_queue_reason():
    state = drifted(queue={"source": "postqueue", "now": 10_000, "total": 1, "deferred": 1,
                           "oldest_arrival": 1_000, "reason": "Cannot start TLS: handshake failure"})
    check = verdicts(state)["postfix.queue"]
    assert check.verdict == FAIL and check.value["cause"] == "tls_handshake"
    assert "below 1.2" in check.found and "no AUTH" in check.found


def test_encrypt_chosen_explicitly_passes_with_the_weaker_note():
    check = verdicts(STATE)["postfix.tls_level"]
    assert check.verdict == PASS
    assert "WEAKER" in check.found and "not verified" in check.found
    assert check.value == {"level": "encrypt", "certificate_verified": False}


def test_secure_relay_passes_without_a_note_and_encrypt_on_the_host_fails_it():
    named = {**DATA, "relay_host": "smtp.lab.example", "relay_tls_level": "secure"}
    state = drifted(main_cf__settings__relayhost="[smtp.lab.example]:587",
                    main_cf__settings__smtp_tls_security_level="secure")
    check = verdicts(state, data=named)["postfix.tls_level"]
    assert check.verdict == PASS and "WEAKER" not in check.found + check.expected
    assert check.value == {"level": "secure", "certificate_verified": True}
    # someone lowered the level by hand: the check fails and says it is the weaker one
    lowered = drifted(main_cf__settings__relayhost="[smtp.lab.example]:587")
    check = verdicts(lowered, data=named)["postfix.tls_level"]
    assert check.verdict == FAIL and "WEAKER" in check.found


# --- hostile host state (issue 22 item 6): each a row of the security table -----------------

def _ledger(request, attack: str, outcome: str, held: bool = True) -> None:
    from tests.security_ledger import record

    record(attack=attack, where=request.node.nodeid, outcome=outcome, held=held)


def test_a_hand_made_rule_with_a_quote_in_its_comment_fails_checks_never_the_audit(request):
    """One host's `ufw allow 8080 comment 'a"b'` crashed the audit of the fleet (ValueError)."""
    state = copy.deepcopy(STATE)
    rule = {**state["ufw"]["rules"][0], "port": "8080", "comment": 'a"b'}
    state["ufw"]["rules"].append(rule)
    result = verdicts(state)
    assert result["ufw.rules"].verdict == FAIL and "8080" in result["ufw.rules"].found
    assert result["ufw.ssh_allowed"].verdict == PASS  # a comment decides no reachability
    _ledger(request, "hostile host text: a hand-made ufw rule with a '\"' in its comment",
            f"that host's ufw.rules FAILs ({result['ufw.rules'].found[:60]}...); no crash")


def test_an_unparsable_value_fails_its_check_of_that_host_only(request):
    """Any host value a check cannot read is a FAIL of that check, with the reason."""
    state = copy.deepcopy(STATE)
    state["ufw"]["rules"].append({**state["ufw"]["rules"][0], "port": "22", "proto": "sctp?"})
    result = verdicts(state)
    assert result["ufw.ssh_allowed"].verdict == FAIL
    assert "cannot check: ValueError" in result["ufw.ssh_allowed"].found
    assert result["ufw.enabled"].verdict == PASS and result["postfix.relayhost"].verdict == PASS
    _ledger(request, "hostile host state: a ufw rule whose fields lockdown cannot parse",
            f"ufw.ssh_allowed FAILs naming the parse error; the other checks still run")


def test_escape_sequences_in_host_text_are_escaped_in_the_table(request):
    state = drifted(main_cf__settings__relayhost="[evil]:25\x1b[2J\x1b]0;owned\x07\r PASS")
    result = verdicts(state)
    table = render_table(build_report({"b\x1bx": {"checks": list(result.values())}}, {}))
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table
    assert "\\x1b[2J\\x1b]0;owned\\x07\\r PASS" in table and "b\\x1bx" in table
    _ledger(request, "hostile host text: terminal escape sequences in a main.cf value",
            "shown escaped (\\x1b...) in the audit table; the JSON escapes them as \\u001b")


def test_the_json_report_is_written_through_mkstemp_never_a_planted_link(tmp_path, request):
    import os
    from pyinfra_lockdown.audit_report import emit

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "audit.json"
    for guess in (f"{target}.tmp{os.getpid()}", f"{target}.tmp"):  # the old, predictable name
        os.symlink(victim, guess)
    emit(build_report({"box1": {"checks": list(verdicts(STATE).values())}}, {}), str(target))
    assert victim.read_text() == "precious\n"
    assert json.loads(target.read_text())["ok"] is True and not target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["victim", "audit.json", f"audit.json.tmp{os.getpid()}", "audit.json.tmp"])
    _ledger(request, "a link planted at the audit JSON's temp file name",
            "not followed: the report goes through mkstemp; the link's target is untouched")


@pytest.mark.parametrize("service, public", [
    ("0.0.0.0:smtp", True), ("[::]:2525", True), ("mail.example.com:smtp", True),
    ("127.0.0.1:2525", False), ("[::1]:2525", False), ("localhost:submission", False),
    ("2525", False),  # no address: it listens on inet_interfaces (loopback-only)
])
def test_an_smtpd_service_bound_beyond_loopback_fails_loopback_only(service, public, request):
    state = copy.deepcopy(STATE)
    state["master"]["services"][f"{service}/inet"] = {
        "enabled": True, "entry": f"{service} inet n - y - - smtpd"}
    check = verdicts(state)["postfix.loopback_only"]
    assert check.verdict == (FAIL if public else PASS), check
    if public:
        assert f"bound beyond loopback: {service}/inet" in check.found
        _ledger(request, f"a public smtpd in master.cf ({service} inet ... smtpd)",
                "postfix.loopback_only FAILs naming it (and the deploy disables it: "
                "tests/lab/test_audit.py::test_smtpd_services_bound_beyond_loopback_are_disabled)")
