"""The relay canary on real boxes (issue 17): after a relay change one message must leave, or
the host fails with one line naming the cause; no canary is left queued; a converged host
sends none."""
import json

import pytest

from pyinfra_lockdown.facts.audit import RelayLastAttempt

from tests.lab.deploy_helpers import (
    canaries, converge, new_credentials, pyinfra, queue, send_mail, wait_for,
)

pytestmark = pytest.mark.lab
FORWARD = "admin@lab.test"  # mail_root_forward of inventories/lab.py


def _failed_converge(lab, box, env, data=None):
    result = pyinfra(lab, [box], "deploys/mail.py", env=env, data=data)
    output = result.stdout + result.stderr
    print(output[-3000:])
    # the real Postfix lines (tests/unit/test_canary.py is built from them)
    print("POSTFIX-LINES\n" + box.root("journalctl -q --no-pager -o cat -t postfix/smtp "
                                       "-t postfix/error -t postfix/qmgr | tail -n 8").stdout)
    assert result.returncode != 0, output[-3000:]
    lines = [line for line in output.splitlines() if "relay canary not delivered" in line]
    assert len(lines) == 1, output[-3000:]
    return lines[0], output


def _relay_check(lab, box, env, tmp_path) -> dict:
    """The audit's postfix.relay check (and the raw fact output, for the unit fixtures)."""
    print("RELAY-LAST\n" + box.root(RelayLastAttempt().command(hours=24)).stdout)  # fixtures
    report = tmp_path / "audit.json"
    result = pyinfra(lab, [box], "deploys/audit.py", env=env,
                     data={"audit_json": str(report), "audit_probe": "off"})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    checks = {c["id"]: c for c in json.loads(report.read_text())["hosts"][0]["checks"]}
    return checks["postfix.relay"]


def _no_canary_queued(box) -> bool:
    listing = box.root("for q in $(postqueue -j | sed -n 's/.*\"queue_id\": *\"\\([^\"]*\\)\".*/\\1/p');"
                       " do postcat -hq $q; done").stdout
    return "X-Lockdown-Canary" not in listing


def test_first_converge_sends_a_canary_and_a_second_run_none(lab, box, standin, tmp_path):
    env = new_credentials(standin)
    result, totals = converge(lab, [box], env)
    assert "relay canary delivered" in result.stdout + result.stderr
    sent = canaries(standin.messages())
    assert len(sent) == 1, standin.messages()
    assert sent[0]["rcpt_tos"] == [FORWARD] and sent[0]["tls"] is True
    assert "Subject: lockdown relay check" in sent[0]["data"]
    assert env["LOCKDOWN_RELAY_PASSWORD"] not in result.stdout + result.stderr
    assert "Mail queue is empty" in queue(box)

    standin.clear()
    again, totals = converge(lab, [box], env)
    assert totals["success"] == 0 and totals["error"] == 0, totals
    assert "relay canary" not in again.stdout + again.stderr
    assert standin.messages() == []
    check = _relay_check(lab, box, env, tmp_path)
    assert check["verdict"] == "PASS" and check["value"]["status"] == "sent", check


def test_credential_rotation_sends_a_canary(lab, box, standin):
    converge(lab, [box], new_credentials(standin))
    standin.clear()
    rotated = new_credentials(standin)
    converge(lab, [box], rotated)
    assert len(canaries(standin.wait_for_messages(1))) == 1


def test_canary_off_sends_nothing(lab, box, standin):
    converge(lab, [box], new_credentials(standin), data={"relay_canary": "false"})
    assert standin.messages() == []


def test_wrong_password_fails_with_the_cause_and_leaves_no_canary(lab, box, standin, tmp_path):
    env = new_credentials(standin)
    wrong = {**env, "LOCKDOWN_RELAY_PASSWORD": env["LOCKDOWN_RELAY_PASSWORD"] + "-old"}
    line, output = _failed_converge(lab, box, wrong)
    assert "refused the login" in line and "relay_region" in line, line
    assert wrong["LOCKDOWN_RELAY_PASSWORD"] not in output
    assert standin.messages() == []
    assert _no_canary_queued(box), queue(box)
    check = _relay_check(lab, box, wrong, tmp_path)  # the audit names the same cause
    assert check["verdict"] == "FAIL" and check["value"]["cause"] == "auth_failed", check


def test_no_starttls_fails_with_the_cause(lab, box, standin):
    standin.set(mode="no_starttls")
    line, _ = _failed_converge(lab, box, _env_keeping_mode(standin))
    assert "no STARTTLS" in line, line
    assert not [e for e in standin.events() if e.get("event") == "auth"]
    assert _no_canary_queued(box), queue(box)


def _env_keeping_mode(standin):
    """Credentials the stand-in accepts, keeping its current mode (new_credentials resets it)."""
    mode = standin.control()["mode"]
    env = new_credentials(standin)
    standin.set(mode=mode)
    return env


def test_relay_down_fails_with_the_cause_and_other_mail_stays_queued(lab, box, standin):
    env = new_credentials(standin)
    converge(lab, [box], env)
    lab.standin_stop()
    try:
        send_mail(box, subject="queued while the relay is down")
        assert wait_for(lambda: "Mail queue is empty" not in queue(box))
        rotated = new_credentials(standin)
        line, _ = _failed_converge(lab, box, rotated)
        assert "refused the connection" in line and "2525" in line, line
        assert _no_canary_queued(box), queue(box)
        assert "Mail queue is empty" not in queue(box)  # the user's mail was not touched
    finally:
        lab.standin_start()


def test_relay_with_old_tls_fails_with_a_tls_cause(lab, box, standin):
    standin.set(mode="old_tls")
    line, _ = _failed_converge(lab, box, _env_keeping_mode(standin))
    assert "TLS" in line and "no STARTTLS" not in line, line
    assert standin.messages() == []
    assert _no_canary_queued(box), queue(box)


def test_filtered_port_times_out_with_the_cause_and_leaves_no_canary(lab, box, standin):
    env = new_credentials(standin)
    converge(lab, [box], env)
    # the network drops 587 (as some providers' networks do); ufw's own chains are untouched
    # (both families: smtp.mailgun.org resolves to the stand-in's IPv4 and IPv6 addresses)
    assert box.root("iptables -I OUTPUT -p tcp --dport 587 -j DROP && "
                    "ip6tables -I OUTPUT -p tcp --dport 587 -j DROP").returncode == 0
    line, _ = _failed_converge(lab, box, new_credentials(standin),
                               data={"relay_canary_seconds": 5})
    assert "within 5 s" in line and "2525" in line, line
    assert _no_canary_queued(box), queue(box)


def test_sender_refused_by_the_relay_names_mail_sender_domain(lab, box, standin):
    standin.set(mode="reject_sender")
    line, _ = _failed_converge(lab, box, _env_keeping_mode(standin))
    assert "refused the sender" in line and "mail_sender_domain" in line, line
    assert canaries(standin.messages()) == []
    assert _no_canary_queued(box), queue(box)


def test_unknown_relay_host_names_dns(lab, box, standin):
    # the lab's resolver answers only the relays' names: any other is NXDOMAIN at once
    line, _ = _failed_converge(lab, box, new_credentials(standin),
                               data={"relay_host": "relay.lab.invalid"})
    assert "host name was not found" in line, line
    assert _no_canary_queued(box), queue(box)
