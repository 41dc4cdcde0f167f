"""Every relay preset on a real box: the stand-in behaves like that provider (its ports, its
implicit TLS, its login rule), the box converges, a mail arrives with that provider's login over
TLS 1.2+, and a second run changes nothing. Then a Mailgun -> SendGrid switch that leaves no
Mailgun credential on the box and loses no mail, and the TLS floor refusing a TLS 1.0/1.1 relay."""
import json
import secrets
import string

import pytest

from tests.lab.deploy_helpers import (
    converge, not_canaries, pyinfra, queue, report_path, send_mail, wait_for, wait_for_mail,
)

pytestmark = pytest.mark.lab
FORWARD = "admin@lab.test"  # mail_root_forward of inventories/lab.py
SEARCHED = "/etc /var /tmp /root /home /run /srv /opt /usr/local"
MODERN = ("TLSv1.2", "TLSv1.3")


def _token(alphabet=string.ascii_uppercase + string.digits, n=16) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def provider_credentials(provider: str) -> tuple[str, str]:
    """A random login/password following the provider's convention."""
    password = "pw-" + secrets.token_urlsafe(18)
    if provider == "mailgun":
        return "postmaster@mg.lab.test", password
    if provider == "ses":
        return "AKIA" + _token(), password
    if provider == "sendgrid":
        return "apikey", "SG." + secrets.token_urlsafe(24)
    if provider == "postmark":
        token = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-" \
                f"{secrets.token_hex(2)}-{secrets.token_hex(6)}"
        return token, token
    if provider == "brevo":
        return f"{secrets.token_hex(4)}001@smtp-brevo.com", "xsmtpsib-" + secrets.token_hex(24)
    raise ValueError(provider)


def use(standin, provider: str) -> dict:
    """The stand-in becomes ``provider`` with fresh credentials; returns the deploy's env."""
    login, password = provider_credentials(provider)
    standin.set(login=login, password=password, mode="normal", provider=provider)
    return {"LOCKDOWN_RELAY_LOGIN": login, "LOCKDOWN_RELAY_PASSWORD": password}


# The provider's own host name (its documentation): no relay_host override, the box looks it up
# through the lab's resolver and verifies the stand-in's certificate for it.
HOSTS = {"mailgun": "smtp.mailgun.org", "ses": "email-smtp.eu-west-1.amazonaws.com",
         "sendgrid": "smtp.sendgrid.net", "postmark": "smtp.postmarkapp.com",
         "brevo": "smtp-relay.brevo.com"}
# provider -> (host data on top of inventories/lab.py, port used, implicit TLS, sender domain)
CASES = {
    "mailgun": ({"relay_port": 2525}, 2525, False, "mg.lab.test"),
    "ses": ({"relay_region": "eu-west-1", "relay_port": 2465, "mail_sender_domain": "ses.lab.test"},
            2465, True, "ses.lab.test"),
    "sendgrid": ({"relay_port": 465, "mail_sender_domain": "sg.lab.test"}, 465, True, "sg.lab.test"),
    "postmark": ({"relay_port": 2525, "mail_sender_domain": "pm.lab.test"}, 2525, False,
                 "pm.lab.test"),
    "brevo": ({"mail_sender_domain": "brevo.lab.test"}, 587, False, "brevo.lab.test"),
}


@pytest.mark.parametrize("provider", sorted(CASES))
def test_provider_preset_relays_with_its_login_over_tls(lab, box, standin, provider):
    extra, port, implicit, sender = CASES[provider]
    env = use(standin, provider)
    data = {"relay_provider": provider, **extra}
    result, _ = converge(lab, [box], env, data=data)
    # Never shown under the new names either (Postmark's login is its token, a secret too).
    for secret in (env["LOCKDOWN_RELAY_PASSWORD"],) + ((env["LOCKDOWN_RELAY_LOGIN"],)
                                                        if provider == "postmark" else ()):
        assert secret not in result.stdout + result.stderr
    wrapper = box.root("postconf -h smtp_tls_wrappermode relayhost smtp_tls_security_level").stdout.split()
    assert wrapper == ["yes" if implicit else "no", f"[{HOSTS[provider]}]:{port}", "secure"]

    send_mail(box, to="root", subject=f"via {provider}")
    messages = wait_for_mail(standin, 1, timeout=20)
    assert len(messages) == 1, f"nothing arrived; queue:\n{queue(box)}\n{standin.events()[-5:]}"
    message = messages[0]
    assert (message["provider"], message["login"], message["port"]) == (
        provider, env["LOCKDOWN_RELAY_LOGIN"], port)
    assert message["tls"] is True and message["tls_version"] in MODERN, message
    assert (message["mail_from"], message["rcpt_tos"]) == (f"root@{sender}", [FORWARD])
    if implicit:  # TLS from the first byte: no STARTTLS on that connection
        assert not [e for e in standin.events() if e["event"] == "starttls"]

    _, totals = converge(lab, [box], env, data=data)
    assert totals["success"] == 0 and totals["error"] == 0, totals


def test_switch_from_mailgun_to_sendgrid_leaves_no_mailgun_credential_and_loses_no_mail(
        lab, box, standin):
    mailgun = use(standin, "mailgun")
    converge(lab, [box], mailgun)  # the lab inventory's defaults: Mailgun preset, port 587
    send_mail(box, subject="before the switch")
    assert len(wait_for_mail(standin, 1, timeout=20)) == 1, queue(box)

    # The account moves to SendGrid: the relay no longer takes the Mailgun login...
    sendgrid = use(standin, "sendgrid")
    standin.clear()
    send_mail(box, subject="while switching")
    assert wait_for(lambda: "authentication failed" in _mail_log(box)), _mail_log(box)
    assert not_canaries(standin.messages()) == [] and "Mail queue is empty" not in queue(box)

    # ... and the next run points the box at SendGrid; the waiting mail goes out with it.
    data = {"relay_provider": "sendgrid", "mail_sender_domain": "sg.lab.test"}
    converge(lab, [box], sendgrid, data=data)
    send_mail(box, subject="after the switch")
    messages = wait_for_mail(standin, 2, timeout=30)
    subjects = sorted(line for m in messages for line in m["data"].splitlines()
                      if line.startswith("Subject:"))
    assert subjects == ["Subject: after the switch", "Subject: while switching"], queue(box)
    assert {m["login"] for m in messages} == {"apikey"}
    assert "Mail queue is empty" in queue(box)

    # No Mailgun credential anywhere on the box: not the password, not the login (compiled
    # map included: -a reads binary files too).
    for secret in (mailgun["LOCKDOWN_RELAY_PASSWORD"], mailgun["LOCKDOWN_RELAY_LOGIN"]):
        found = box.root(f"grep -rlsaF -- '{secret}' {SEARCHED} || true").stdout.split()
        assert found == [], found
    _, totals = converge(lab, [box], sendgrid, data=data)
    assert totals["success"] == 0 and totals["error"] == 0, totals


OPENSSL_PERMISSIVE = (  # an OpenSSL that would speak TLS 1.0/1.1 if Postfix let it
    "printf '\\n[openssl_init]\\nssl_conf = lockdown_ssl\\n[lockdown_ssl]\\n"
    "system_default = lockdown_legacy\\n[lockdown_legacy]\\nCipherString = DEFAULT@SECLEVEL=0\\n"
    "MinProtocol = TLSv1\\n' >> /etc/ssl/openssl.cnf"
)


# The floor alone is tested at level encrypt: under the default secure, the box's OpenSSL also
# refuses the SHA-1 handshake signatures of TLS 1.0/1.1 ("legacy sigalg disallowed", seen on
# both releases), a second barrier that would hide whether the floor holds.
FLOOR_ONLY = {"relay_tls_level": "encrypt"}


def test_tls_floor_keeps_mail_queued_and_auth_unsent_with_an_old_tls_relay(lab, box, standin):
    env = use(standin, "mailgun")
    converge(lab, [box], env, data=FLOOR_ONLY)
    assert box.root(OPENSSL_PERMISSIVE).returncode == 0
    # Control: the box's OpenSSL itself now speaks TLS 1.1 to the stand-in's old-TLS mode, so
    # only Postfix's floor stands between the password and a TLS 1.1 session.
    standin.set(mode="old_tls")
    probe = box.root("echo QUIT | timeout 10 openssl s_client -starttls smtp -connect "
                     "10.77.0.1:587 2>&1 | grep -m1 'Protocol *:'").stdout
    assert probe.split(":")[-1].strip() in ("TLSv1", "TLSv1.1"), probe
    standin.clear()

    send_mail(box, subject="must wait for TLS 1.2")
    assert wait_for(lambda: "Cannot start TLS: handshake failure" in queue(box)), (
        queue(box) + _mail_log(box))
    assert standin.messages() == []
    assert not [e for e in standin.events() if e.get("event") == "auth"], standin.events()

    json_path = report_path()
    result = pyinfra(lab, [box], "deploys/audit.py", env=env,
                     data={**FLOOR_ONLY, "audit_json": json_path, "audit_probe": "off"})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    with open(json_path) as handle:
        checks = {c["id"]: c for c in json.load(handle)["hosts"][0]["checks"]}
    assert checks["postfix.tls_floor"]["verdict"] == "PASS"
    assert checks["postfix.tls_floor"]["value"]["smtp_tls_protocols"] == ">=TLSv1.2"
    assert checks["postfix.queue"]["value"]["cause"] == "tls_handshake"
    assert "below 1.2" in checks["postfix.queue"]["found"]

    # Control: with the floor lowered by hand, the same Postfix sends the waiting mail, AUTH
    # included, over TLS 1.1 - so it was the floor, not OpenSSL, that held it.
    assert box.root("postconf -e 'smtp_tls_mandatory_protocols = >=TLSv1' "
                    "'smtp_tls_protocols = >=TLSv1' && postfix reload").returncode == 0
    # The reload is asynchronous: an smtp process of the old configuration may take the first
    # flush and defer the mail again (for minutes). Flush until a new one has taken it.
    for _ in range(10):
        assert box.root("postqueue -f").returncode == 0
        messages = wait_for_mail(standin, 1, timeout=3)
        if messages:
            break
    assert [m["tls_version"] for m in messages] == ["TLSv1.1"], queue(box)
    # The next run restores the floor, and its canary finds the relay's old TLS.
    restored = pyinfra(lab, [box], "deploys/mail.py", env=env, data=FLOOR_ONLY)
    output = restored.stdout + restored.stderr
    assert restored.returncode != 0 and "TLS handshake with the relay failed" in output, output[-3000:]
    floor = box.root("postconf -h smtp_tls_mandatory_protocols smtp_tls_protocols").stdout.split()
    assert floor == [">=TLSv1.2", ">=TLSv1.2"]


def _mail_log(box) -> str:
    return box.root("journalctl --no-pager -q -t postfix/smtp -t postfix/qmgr").stdout


# Issue 26 item 2: each provider's own refusal of an account that may not send yet, as the
# stand-in reproduces it (lab/standin_server.py: PROFILES[...]["refusal"]): the canary names it
# with the fix, and for mail refused after the converge the audit names it too.
# provider -> (cause id in pyinfra_lockdown/relay_causes.py, words of its one-line diagnosis)
REFUSALS = {
    "mailgun": ("mailgun_sandbox", "Authorized Recipients"),
    "ses": ("ses_unverified", "not a verified identity in this region"),
    "sendgrid": ("sendgrid_sender_identity", "verified Sender Identity"),
    "postmark": ("postmark_sender_signature", "confirmed Sender Signature"),
    "brevo": ("brevo_sender_invalid", "not a validated sender"),
}
STATUS_LINES = "journalctl -q --no-pager -o cat -t postfix/smtp | grep -c ' status=' || true"


@pytest.mark.parametrize("provider", sorted(REFUSALS))
def test_provider_refusal_is_named_by_the_canary_and_the_audit(lab, box, standin, provider,
                                                                tmp_path):
    extra, _, _, _ = CASES[provider]
    cause_id, words = REFUSALS[provider]
    env = use(standin, provider)
    standin.set(mode="refuse_unverified")
    result = pyinfra(lab, [box], "deploys/mail.py", env=env,
                     data={"relay_provider": provider, **extra})
    output = result.stdout + result.stderr
    print("POSTFIX-LINES\n" + box.root("journalctl -q --no-pager -o cat -t postfix/smtp "
                                       "| grep ' status='").stdout)  # tests/unit fixtures
    assert result.returncode != 0, output[-3000:]
    lines = [line for line in output.splitlines() if "relay canary not delivered" in line]
    assert len(lines) == 1 and words in lines[0] and "fix:" in lines[0], output[-3000:]
    # Control: the stand-in took the login and refused at the provider's own stage.
    refused = [e for e in standin.events() if e["event"] == "provider_refused"]
    assert refused and [e for e in standin.events() if e.get("success") is True], standin.events()
    assert standin.messages() == []
    assert env["LOCKDOWN_RELAY_PASSWORD"] not in output

    # Mail refused later: a user's message after the converge; the audit names the cause.
    before = int(box.root(STATUS_LINES).stdout.strip() or 0)
    send_mail(box, subject="refused later")
    assert wait_for(lambda: int(box.root(STATUS_LINES).stdout.strip() or 0) > before, 30), (
        queue(box))
    report = tmp_path / "audit.json"
    pyinfra(lab, [box], "deploys/audit.py", env=env,
            data={"relay_provider": provider, **extra, "audit_json": str(report),
                  "audit_probe": "off"})
    checks = {c["id"]: c for c in json.loads(report.read_text())["hosts"][0]["checks"]}
    relay = checks["postfix.relay"]
    assert relay["verdict"] == "FAIL" and relay["value"]["cause"] == cause_id, relay
    assert words in relay["found"], relay
    if relay["value"]["status"] == "deferred":  # a 4xx refusal (Mailgun): the mail waits
        assert checks["postfix.queue"]["value"]["cause"] == cause_id, checks["postfix.queue"]


def test_ses_login_refused_names_the_region_bound_credentials(lab, box, standin):
    extra, _, _, _ = CASES["ses"]
    env = use(standin, "ses")
    wrong = {**env, "LOCKDOWN_RELAY_PASSWORD": env["LOCKDOWN_RELAY_PASSWORD"] + "-other-region"}
    result = pyinfra(lab, [box], "deploys/mail.py", env=wrong, data={"relay_provider": "ses", **extra})
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "relay canary not delivered" in line]
    assert result.returncode != 0 and len(lines) == 1, output[-3000:]
    assert "refused the login" in lines[0] and "check relay_region" in lines[0], lines[0]
    assert wrong["LOCKDOWN_RELAY_PASSWORD"] not in output
