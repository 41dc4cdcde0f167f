"""The relay canary's result parsing and its one-line diagnosis, from Postfix log lines captured
on lab boxes (tests/lab/test_canary.py provokes each of these; postfix 3.7 and 3.10 log alike)."""
import pytest

from pyinfra_lockdown.audit_checks import queue_cause
from pyinfra_lockdown.canary import CanaryResult, canary_script, diagnose, parse_result
from pyinfra_lockdown.relay_causes import relay_cause
from pyinfra_lockdown.settings import relay_settings

ENV = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com", "LOCKDOWN_RELAY_PASSWORD": "pw-secret-1"}

# postfix/smtp lines as the journal shows them (-o cat), captured on lab boxes
SENT = ("3A13017C9C4: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:587, delay=0.1, "
        "delays=0.02/0.07/0.01/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as LAB)")
AUTH = ("8025517C7A4: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:587, delay=0.09, "
        "delays=0.01/0.07/0.01/0, dsn=4.7.8, status=deferred (SASL authentication failed; "
        "server 10.77.0.1[10.77.0.1] said: 535 5.7.8 Authentication credentials invalid)")
NO_STARTTLS = ("452FB17CC82: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:587, delay=0.09, "
               "delays=0.02/0.07/0.01/0, dsn=4.7.4, status=deferred (TLS is required, but was "
               "not offered by host 10.77.0.1[10.77.0.1])")
HANDSHAKE = ("6A1D317C841: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:587, delay=0.09, "
             "delays=0.02/0.07/0.01/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake "
             "failure)")
REFUSED = ("6BAD317C764: to=<admin@lab.test>, relay=none, delay=0.01, delays=0.01/0/0/0, "
           "dsn=4.4.1, status=deferred (connect to 10.77.0.1[10.77.0.1]:587: Connection refused)")
SENDER = ("7CCAD17C8F9: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:587, delay=0.1, "
          "delays=0.01/0.08/0.01/0, dsn=5.7.1, status=bounced (host 10.77.0.1[10.77.0.1] said: "
          "550 5.7.1 Sender address rejected: domain not verified for this account (in reply to "
          "MAIL FROM command))")
NOT_FOUND = ("7625217C82C: to=<admin@lab.test>, relay=none, delay=0.1, delays=0.02/0.08/0/0, "
             "dsn=4.4.3, status=deferred (Host or domain name not found. Name service error for "
             "name=relay.lab.invalid type=AAAA: Host not found, try again)")
QUEUE_ACTIVE = "from=<root@box3.localdomain>, size=433, nrcpt=1 (queue active)"


def script_output(line: str, result: str, removed: bool = True, last: str = "") -> list[str]:
    """What canary_script prints for a log ``line`` (it strips the part up to ': to=')."""
    qid = (line or "ABCDEF123").split(":")[0]
    out = ["lockdown-canary log=journal", f"lockdown-canary queue_id={qid}",
           f"lockdown-canary result={result}"]
    if line:
        out.append("lockdown-canary line=" + line.split(": to=", 1)[1])
    if last:
        out.append("lockdown-canary last=" + last)
    if removed:
        out.append(f"lockdown-canary removed={qid}")
    return out


def relay(**data):
    return relay_settings({"mail_root_forward": "ops@example.com", **data}, ENV)


def test_parse_a_sent_canary():
    result = parse_result(["noise", *script_output(SENT, "sent", removed=False)])
    assert result == CanaryResult(result="sent", queue_id="3A13017C9C4", line=SENT.split(": to=")[1],
                                  log="journal")
    assert result.reason == "250 2.0.0 Ok: queued as LAB"


# Captured on lab boxes (bookworm and trixie alike) with an impostor on the path: the stand-in
# answering for smtp.mailgun.org with a certificate from a CA the box does not trust.
NOT_VERIFIED = ("F051C190645: to=<admin@lab.test>, orig_to=<root>, "
                "relay=smtp.mailgun.org[fd77::1]:587, delay=0.01, delays=0/0/0.01/0, dsn=4.7.5, "
                "status=deferred (Server certificate not verified)")
VERIFY_WARNING = ("certificate verification failed for smtp.mailgun.org[fd77::1]:587: untrusted "
                  "issuer /CN=impostor CA (trusted by no box)")


@pytest.mark.parametrize("line, cause_id, words", [
    (AUTH, "auth_failed", ["refused the login", "LOCKDOWN_RELAY_PASSWORD", "relay_region",
                           "US and EU"]),
    (NO_STARTTLS, "no_starttls", ["no STARTTLS", "relay_port"]),
    (HANDSHAKE, "tls_handshake", ["TLS handshake", "TLS 1.2"]),
    (REFUSED, "refused", ["refused the connection on port 587", "2525"]),
    (SENDER, "sender_refused", ["refused the sender", "mail_sender_domain"]),
    (NOT_FOUND, "host_not_found", ["host name was not found", "relay_host"]),
    (NOT_VERIFIED, "tls_verify", ["certificate failed verification", "no AUTH was sent",
                                  "update-ca-certificates"]),
])
def test_each_captured_deferral_gets_its_cause_and_fix(line, cause_id, words):
    result = parse_result(script_output(line, "deferred"))
    message = diagnose(result, relay(), 30)
    assert relay_cause(result.reason).id == cause_id
    assert "\n" not in message and message.startswith("relay canary not delivered via "
                                                      "[smtp.mailgun.org]:587: ")
    for word in words + ["removed from the queue", "Postfix said: " + result.reason]:
        assert word in message, (word, message)
    assert ENV["LOCKDOWN_RELAY_PASSWORD"] not in message


def test_ses_login_refused_names_the_region_bound_credentials():
    ses = relay_settings({"mail_root_forward": "ops@example.com", "relay_provider": "ses",
                          "relay_region": "eu-west-1", "mail_sender_domain": "example.com"},
                         {"LOCKDOWN_RELAY_LOGIN": "AKIAIOSFODNN7EXAMPLE",
                          "LOCKDOWN_RELAY_PASSWORD": "pw-secret-1"})
    message = diagnose(parse_result(script_output(AUTH, "deferred")), ses, 30)
    assert "refused the login" in message and "created in; check relay_region" in message
    assert "US and EU" not in message and "pw-secret-1" not in message
    assert "created in" not in diagnose(parse_result(script_output(AUTH, "deferred")), relay(), 30)


def test_region_hint_only_for_mailgun():
    custom = relay(relay_provider="custom", relay_host="smtp.example.net")
    message = diagnose(parse_result(script_output(AUTH, "deferred")), custom, 30)
    assert "refused the login" in message and "relay_region" not in message


@pytest.mark.parametrize("reason, cause_id", [
    # Postfix's wording for causes the lab does not provoke (its timeout test gives no line)
    ("host smtp.mailgun.org[34.1.2.3] said: 554 5.7.1 sender denied (in reply to MAIL FROM "
     "command)", "sender_refused"),
    ("connect to smtp.mailgun.org[34.1.2.3]:587: Connection timed out", "timed_out"),
    ("connect to smtp.mailgun.org[34.1.2.3]:587: Network is unreachable", "no_route"),
    ("delivery temporarily suspended: connect to 10.77.0.1[10.77.0.1]:587: Connection refused",
     "refused"),
    ("Server certificate not verified", "tls_verify"),
    (VERIFY_WARNING, "tls_verify"),
    ("something Postfix never said", None),
])
def test_other_postfix_reasons(reason, cause_id):
    cause = relay_cause(reason)
    assert (cause.id if cause else None) == cause_id


def test_timeout_without_a_verdict_says_so_and_hides_qmgr_noise():
    result = parse_result(script_output("", "timeout", last=QUEUE_ACTIVE))
    assert result.result == "timeout" and result.reason == ""
    message = diagnose(result, relay(), 5)
    assert "no answer from the relay within 5 s" in message and "2525" in message
    assert "queue active" not in message and "removed from the queue" in message


def test_timeout_with_a_connect_line_names_that_cause():
    result = parse_result(script_output("", "timeout", last="connect to smtp.mailgun.org"
                                        "[34.1.2.3]:587: Connection timed out"))
    assert "timed out" in diagnose(result, relay(), 30) and "2525" in diagnose(result, relay(), 30)


def test_audit_and_canary_share_the_table():
    assert queue_cause("Cannot start TLS: handshake failure")[0] == "tls_handshake"
    assert "below 1.2" in queue_cause("Cannot start TLS: handshake failure")[1]
    assert queue_cause("SASL authentication failed; server x said: 535")[0] == "auth_failed"
    assert queue_cause(None) == (None, None)


def test_the_command_carries_no_secret_and_a_checked_id():
    command = str(canary_script("0123abcd4567", "ops@example.com", 30))
    assert "ops@example.com" in command and "X-Lockdown-Canary" in command
    assert ENV["LOCKDOWN_RELAY_PASSWORD"] not in command and "postsuper -d" in command
    with pytest.raises(ValueError):
        canary_script("x; rm -rf /", "ops@example.com", 30)


def test_canary_keys_are_validated_in_settings():
    from pyinfra_lockdown.settings import SettingsError

    assert relay().canary is True and relay().canary_seconds == 30
    assert relay().canary_recipient == "ops@example.com"
    assert relay(relay_canary_to="canary@example.com").canary_recipient == "canary@example.com"
    assert relay(relay_canary="false").canary is False
    for key, bad in (("relay_canary", "maybe"), ("relay_canary_seconds", 0),
                     ("relay_canary_to", "not-an-address")):
        with pytest.raises(SettingsError, match=f"`{key}`"):
            relay(**{key: bad})


# --- the audit's view: the relay's last word (facts.audit.RelayLastAttempt, postfix.relay) ----

def test_last_delivery_line_parsed_from_the_journal():
    from pyinfra_lockdown.facts.audit import parse_delivery_line

    parsed = parse_delivery_line("1796116635.123456 box1 postfix/smtp[812]: " + AUTH)
    assert parsed == {"at": 1796116635, "status": "deferred", "relay": "10.77.0.1[10.77.0.1]:587",
                      "reason": "SASL authentication failed; server 10.77.0.1[10.77.0.1] said: "
                                "535 5.7.8 Authentication credentials invalid"}
    assert parse_delivery_line("")["status"] is None


def _relay_verdict(relay_last):
    import copy

    from tests.unit.test_audit_checks import STATE, verdicts

    state = copy.deepcopy(STATE)
    state["relay_last"] = relay_last
    return verdicts(state)["postfix.relay"]


def test_audit_relay_check_passes_on_sent_and_fails_naming_the_cause():
    from pyinfra_lockdown.facts.audit import parse_delivery_line

    sent = {"log": "journal", **parse_delivery_line("1796116635.1 box1 postfix/smtp[9]: " + SENT)}
    assert _relay_verdict(sent).verdict == "PASS"
    failed = _relay_verdict({"log": "journal",
                             **parse_delivery_line("1796116635.1 box1 postfix/smtp[9]: " + REFUSED)})
    assert failed.verdict == "FAIL" and failed.value["cause"] == "refused"
    assert "Connection refused" in failed.found and "2525" in failed.found
    assert _relay_verdict({"log": "journal", **parse_delivery_line("")}).verdict == "N/A"
    assert _relay_verdict({"log": None, **parse_delivery_line("")}).verdict == "N/A"


def test_the_canary_reads_only_lines_postfix_wrote(request):
    """`logger -t postfix/smtp '<qid>: to=<...> status=sent'` by any local user (the canary's id
    is in its command line, visible in ps) must not pass a canary that never left: the journal
    is read for the postfix uid (journald's _UID comes from the kernel), not by identifier alone.
    tests/lab/test_audit.py::test_spoofed_postfix_log_lines_move_no_verdict shows the same
    selection on real boxes."""
    from tests.security_ledger import record

    script = str(canary_script("0123abcd", "ops@example.com", 30))
    journal_reads = [line for line in script.splitlines() if "journalctl -q" in line]
    assert journal_reads and all('_UID="$pu"' in line for line in journal_reads)
    assert "pu=$(id -u postfix 2>/dev/null || echo none)" in script
    record(attack="spoofed journal lines faking the relay canary's status=sent",
           where=request.node.nodeid, held=True,
           outcome="the canary reads the journal for _UID=<postfix> only")
