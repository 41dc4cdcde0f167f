"""The providers' own refusals of an account that may not send yet (issue 26 item 2): each
Postfix line below was captured on a lab box (tests/lab/test_providers.py,
test_provider_refusal_is_named_by_the_canary_and_the_audit, Debian 12 and 13 alike) from the
stand-in replying in the provider's documented wording. The canary's diagnosis and the audit's
postfix.relay / postfix.queue name the same cause, from the one table (relay_causes.py)."""
import copy

import pytest

from pyinfra_lockdown.canary import diagnose, parse_result
from pyinfra_lockdown.facts.audit import parse_delivery_line
from pyinfra_lockdown.relay_causes import PROVIDER_REFUSALS, relay_cause
from pyinfra_lockdown.settings import relay_settings

from tests.unit.test_audit_checks import STATE, verdicts
from tests.unit.test_canary import script_output

MAILGUN = ("A8ECE1CE382: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:2525, delay=0.09, "
           "delays=0.02/0.07/0.01/0, dsn=4.0.0, status=deferred (host 10.77.0.1[10.77.0.1] said: "
           "421 Domain sandbox5c1e2f.mailgun.org is not allowed to send: Free accounts are for "
           "test purposes only. Please upgrade or add the address to authorized recipients in "
           "Account Settings. (in reply to end of DATA command))")
SES = ("56DD11CE491: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:2465, delay=0.07, "
       "delays=0.02/0.04/0.01/0, dsn=5.0.0, status=bounced (host 10.77.0.1[10.77.0.1] said: 554 "
       "Message rejected: Email address is not verified. The following identities failed the "
       "check in region EU-WEST-1: root@ses.lab.test (in reply to end of DATA command))")
SENDGRID = ("94D5C1CE44E: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:465, delay=0.19, "
            "delays=0.03/0.14/0.01/0, dsn=5.0.0, status=bounced (host 10.77.0.1[10.77.0.1] said: "
            "550 The from address does not match a verified Sender Identity. Mail cannot be sent "
            "until this error is resolved. (in reply to end of DATA command))")
POSTMARK = ("D20AB1CE008: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:2525, delay=0.15, "
            "delays=0.03/0.1/0.01/0.02, dsn=5.7.1, status=bounced (host 10.77.0.1[10.77.0.1] "
            "said: 550 5.7.1 Sender signature not defined for From address. (in reply to end of "
            "DATA command))")
BREVO = ("5BEDD1CE215: to=<admin@lab.test>, relay=10.77.0.1[10.77.0.1]:587, delay=0.14, "
         "delays=0.03/0.09/0.02/0, dsn=5.7.1, status=bounced (host 10.77.0.1[10.77.0.1] said: 550 "
         "5.7.1 The sender is not valid: root@brevo.lab.test (in reply to MAIL FROM command))")

# provider -> (captured line, verdict, cause id, words of the diagnosis)
CASES = {
    "mailgun": (MAILGUN, "deferred", "mailgun_sandbox",
                ["sandbox domain", "Authorized Recipients", "mail_root_forward"]),
    "ses": (SES, "bounced", "ses_unverified",
            ["not a verified identity in this region", "SES sandbox", "relay_region",
             "production access"]),
    "sendgrid": (SENDGRID, "bounced", "sendgrid_sender_identity",
                 ["verified Sender Identity", "Domain Authentication", "Single Sender"]),
    "postmark": (POSTMARK, "bounced", "postmark_sender_signature",
                 ["confirmed Sender Signature", "mail_sender_domain"]),
    "brevo": (BREVO, "bounced", "brevo_sender_invalid",
              ["not a validated sender", "Senders", "mail_sender_domain"]),
}
CREDENTIALS = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com",
               "LOCKDOWN_RELAY_PASSWORD": "pw-never-shown"}


def _relay():
    return relay_settings({"mail_root_forward": "ops@example.com"}, CREDENTIALS)


@pytest.mark.parametrize("provider", sorted(CASES))
def test_the_canary_names_the_providers_refusal_and_its_fix(provider):
    line, verdict, cause_id, words = CASES[provider]
    result = parse_result(script_output(line, verdict))
    assert relay_cause(result.reason).id == cause_id
    message = diagnose(result, _relay(), 30)
    assert "\n" not in message and "fix: " in message
    for word in words + ["Postfix said: " + result.reason]:
        assert word in message, (word, message)
    assert CREDENTIALS["LOCKDOWN_RELAY_PASSWORD"] not in message


@pytest.mark.parametrize("provider", sorted(CASES))
def test_the_audit_names_it_for_mail_refused_later(provider):
    line, verdict, cause_id, words = CASES[provider]
    state = copy.deepcopy(STATE)
    state["relay_last"] = {"log": "journal",
                           **parse_delivery_line("1796116635.1 box1 postfix/smtp[9]: " + line)}
    check = verdicts(state)["postfix.relay"]
    assert check.verdict == "FAIL" and check.value["cause"] == cause_id, check
    assert words[0] in check.found
    # A 4xx refusal (Mailgun's) leaves the mail deferred: postfix.queue names it too.
    reason = state["relay_last"]["reason"]
    state["queue"] = {"source": "postqueue", "now": 1796116700, "total": 1, "deferred": 1,
                      "oldest_arrival": 1796116635, "reason": reason[:160]}
    queued = verdicts(state)["postfix.queue"]
    assert queued.value["cause"] == cause_id and words[0] in queued.found, queued


@pytest.mark.parametrize("reason, cause_id", [
    # The providers' other documented wordings of the same refusals (not provoked in the lab)
    ("host smtp.mailgun.org[1.2.3.4] said: 421 Domain sandbox0a1b.mailgun.org is not allowed to "
     "send: Sandbox subdomains are for test purposes only. Please add your own domain or add the "
     "address to authorized recipients in Account Settings. (in reply to end of DATA command)",
     "mailgun_sandbox"),
    ("host smtp.sendgrid.net[1.2.3.4] said: 403 You are not authorized to send from that email "
     "address (in reply to end of DATA command)", "sendgrid_sender_identity"),
    ("host smtp.postmarkapp.com[1.2.3.4] said: 550 The 'From' address you supplied is not a "
     "Sender Signature on your account. (in reply to end of DATA command)",
     "postmark_sender_signature"),
    # the generic sender refusal stays generic
    ("host 10.77.0.1[10.77.0.1] said: 550 5.7.1 Sender address rejected: domain not verified for "
     "this account (in reply to MAIL FROM command)", "sender_refused"),
])
def test_other_documented_wordings(reason, cause_id):
    assert relay_cause(reason).id == cause_id


def test_provider_refusals_come_before_the_generic_sender_and_recipient_causes():
    # Brevo's is a MAIL FROM reply: the generic "in reply to MAIL FROM" must not claim it.
    assert relay_cause(BREVO.split("status=bounced (", 1)[1]).id == "brevo_sender_invalid"
    assert {cause.id for _, cause in PROVIDER_REFUSALS} == {c[2] for c in CASES.values()}
