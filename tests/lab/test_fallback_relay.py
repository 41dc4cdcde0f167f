"""Fallback relays (issue 26 item 1) on real boxes with two stand-ins: the relay
(smtp.mailgun.org, the lab's stand-in) and a fallback (relay2.lab.test, lab.standin.second),
each verified by the lab CA, each with its own credentials. Each relay's canary leaves through
that relay only; while the relay refuses, mail leaves through the fallback, once; neither relay
ever sees the other's secret; the audit checks each relay on its own."""
from __future__ import annotations

import hashlib
import json
import secrets

import pytest

from lab.relay_names import SECOND_RELAY_NAME
from lab.standin import second
from tests.lab.deploy_helpers import (
    audit_checks, canaries, converge, new_credentials, not_canaries, pyinfra, queue, send_mail, wait_for,
)
from tests.lab.secret_forms import leaks, needles
from tests.security_ledger import record

pytestmark = pytest.mark.lab
RELAYHOST, FALLBACK_RELAYHOST = "[smtp.mailgun.org]:587", f"[{SECOND_RELAY_NAME}]:587"
FALLBACK_LOGIN = "postmaster@mg2.lab.test"
FALLBACKS = {"relay_fallbacks": json.dumps([{"host": SECOND_RELAY_NAME}])}


def _with_fallback(standin, fallback) -> dict:
    """Credentials of both relays, each set on its own stand-in; the deploy's environment."""
    env = new_credentials(standin)
    password = "pw-" + secrets.token_urlsafe(18)
    fallback.set(login=FALLBACK_LOGIN, password=password, mode="normal")
    return {**env, "LOCKDOWN_FALLBACK1_LOGIN": FALLBACK_LOGIN,
            "LOCKDOWN_FALLBACK1_PASSWORD": password}


def _logins(relay) -> set[str]:
    """Every login that was offered to this relay in an AUTH."""
    return {e.get("login") for e in relay.events() if e["event"] == "auth_result"}


def _crossed(standin, fallback, env) -> list:
    """Any form of one relay's secret that reached the other (events, AUTH, messages)."""
    primary = needles(RELAYHOST, env["LOCKDOWN_RELAY_LOGIN"], env["LOCKDOWN_RELAY_PASSWORD"])
    other = needles(FALLBACK_RELAYHOST, FALLBACK_LOGIN, env["LOCKDOWN_FALLBACK1_PASSWORD"])
    seen = {relay: json.dumps(relay.events()) + json.dumps(relay.messages())
            for relay in (standin, fallback)}
    digest = hashlib.sha256(env["LOCKDOWN_FALLBACK1_PASSWORD"].encode()).hexdigest()
    offered = [e for e in standin.events() if e.get("password_sha256") == digest]
    return leaks(seen[standin], other) + leaks(seen[fallback], primary) + offered


# down for a while (421 to every connection), and refusing this account's AUTH (535)
@pytest.mark.parametrize("refusal", ["tempfail", "reject_auth"])
def test_mail_leaves_through_the_fallback_while_the_relay_refuses_and_arrives_once(
        lab, box, standin, tmp_path, request, refusal):
    with second(lab.config) as fallback:
        env = _with_fallback(standin, fallback)
        result, _ = converge(lab, [box], env, data=FALLBACKS)
        output = result.stdout + result.stderr
        # each relay took exactly its own canary, each with its own login
        assert len(canaries(standin.messages())) == 1, output[-3000:]
        assert len(canaries(fallback.messages())) == 1, output[-3000:]
        assert f"relay canary delivered via fallback 1 {FALLBACK_RELAYHOST}" in output
        assert _logins(standin) == {env["LOCKDOWN_RELAY_LOGIN"]}
        assert _logins(fallback) == {FALLBACK_LOGIN}
        assert box.root("postconf -h smtp_fallback_relay").stdout.strip() == FALLBACK_RELAYHOST
        again, totals = converge(lab, [box], env, data=FALLBACKS)
        assert totals["success"] == 0 and totals["error"] == 0, totals
        assert "relay canary" not in again.stdout + again.stderr

        standin.set(login=env["LOCKDOWN_RELAY_LOGIN"], password=env["LOCKDOWN_RELAY_PASSWORD"],
                    mode=refusal)
        standin.clear()
        fallback.clear()
        send_mail(box, subject="while the relay refuses")
        assert wait_for(lambda: len(not_canaries(fallback.messages())) >= 1, 30), queue(box)
        wait_for(lambda: "Mail queue is empty" in queue(box), 10)
        via_fallback = not_canaries(fallback.messages())
        via_relay = not_canaries(standin.messages())
        assert len(via_fallback) == 1 and via_relay == [], (via_fallback, via_relay, queue(box))
        assert "Subject: while the relay refuses" in via_fallback[0]["data"]
        assert via_fallback[0]["tls"] is True and via_fallback[0]["login"] == FALLBACK_LOGIN

        crossed = _crossed(standin, fallback, env)
        record(attack="two relays (a relay and its fallback, each its own credentials); the "
               f"relay refuses ({refusal}) while mail is sent", where=request.node.nodeid,
               held=not crossed, outcome="each relay saw only its own login; the mail left "
               "through the fallback once" if not crossed else f"NOT held: {crossed}")
        assert crossed == []

        checks = audit_checks(lab, box, env, tmp_path, FALLBACKS)
        assert checks["postfix.relay"]["verdict"] == "FAIL", checks["postfix.relay"]
        assert checks["postfix.relay.fallback1"]["verdict"] == "PASS", checks
        assert checks["postfix.sasl_map"]["verdict"] == "PASS", checks["postfix.sasl_map"]
        assert checks["postfix.main_cf_rest"]["verdict"] == "PASS", checks["postfix.main_cf_rest"]


def test_a_refusing_fallback_fails_its_own_canary_and_nothing_leaves_through_the_relay(
        lab, box, standin):
    """The fallback's canary is forced through the fallback: when the fallback refuses AUTH,
    its canary fails naming it, and it is not quietly delivered through the relay."""
    with second(lab.config) as fallback:
        env = _with_fallback(standin, fallback)
        fallback.set(login=FALLBACK_LOGIN, password=env["LOCKDOWN_FALLBACK1_PASSWORD"],
                     mode="reject_auth")
        result = pyinfra(lab, [box], "deploys/mail.py", env=env, data=FALLBACKS)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        failed = [line for line in output.splitlines() if "relay canary not delivered" in line]
        assert len(failed) == 1, output[-3000:]
        assert f"via fallback 1 {FALLBACK_RELAYHOST}" in failed[0]
        assert "authentication failed" in failed[0].lower(), failed[0]
        assert f"relay canary delivered via {RELAYHOST}" in output
        assert len(canaries(standin.messages())) == 1  # the relay's own canary, no other
        assert canaries(fallback.messages()) == []
        assert "X-Lockdown-Canary" not in box.root(
            "for q in $(postqueue -j | sed -n 's/.*\"queue_id\": *\"\\([^\"]*\\)\".*/\\1/p');"
            " do postcat -hq $q; done").stdout
        assert env["LOCKDOWN_FALLBACK1_PASSWORD"] not in output


def test_removing_the_fallbacks_clears_them_from_postfix(lab, box, standin):
    with second(lab.config) as fallback:
        env = _with_fallback(standin, fallback)
        converge(lab, [box], env, data=FALLBACKS)
    standin.clear()
    converge(lab, [box], env)
    assert box.root("postconf -h smtp_fallback_relay sender_dependent_default_transport_maps "
                    "smtp_tls_policy_maps").stdout.split() == []
    assert box.root("postconf -M lockdown-canary/unix").stdout.strip() == ""
    assert box.root("cut -d' ' -f1 /etc/postfix/sasl_passwd").stdout.split() == [RELAYHOST]
    assert len(canaries(standin.wait_for_messages(1))) == 1
    _, totals = converge(lab, [box], env)
    assert totals["success"] == 0 and totals["error"] == 0, totals
