"""A mail log where users look (issue 26 item 4) on a box of each release without rsyslog (the
lab's image, like Debian's cloud images): with ``mail_log: file`` Postfix writes
/var/log/mail.log itself (maillog_file through postlog); the canary, the audit and logwatch read
it; a weekly timer rotates it with `postfix logrotate`; a second converge changes nothing."""
from __future__ import annotations

import pytest

from pyinfra_lockdown.facts.postfix import MAIL_LOG_ROTATE_UNIT
from tests.lab.deploy_helpers import (
    audit_checks, converge, new_credentials, send_mail, wait_for, wait_for_mail,
)
from tests.security_ledger import record

pytestmark = pytest.mark.lab
DATA = {"mail_log": "file", "logwatch": "true"}
FORGED = "FORGED1234: to=<x@lab.test>, relay=forged.example[192.0.2.1]:587, status=sent (250 forged)"


def test_postfix_writes_mail_log_which_canary_audit_and_logwatch_read_and_it_rotates(
        lab, box, standin, tmp_path):
    assert box.root("test -e /var/log/mail.log").returncode != 0  # no syslog daemon here
    env = new_credentials(standin)
    result, _ = converge(lab, [box], env, data=DATA)
    output = result.stdout + result.stderr
    assert "relay canary delivered" in output, output[-3000:]
    assert box.root("postconf -h maillog_file").stdout.strip() == "/var/log/mail.log"
    log = box.root("cat /var/log/mail.log").stdout
    assert "status=sent" in log and "X-Lockdown" not in log, log[-2000:]
    assert box.root("stat -c '%U:%G %a' /var/log/mail.log").stdout.strip() == "root:adm 640"
    _, totals = converge(lab, [box], env, data=DATA)
    assert totals["success"] == 0 and totals["error"] == 0, totals

    send_mail(box, subject="logged to the file")
    assert len(wait_for_mail(standin, 1)) == 1
    assert wait_for(lambda: box.root("grep -c 'status=sent' /var/log/mail.log").stdout.strip()
                    not in ("", "0", "1"), 10)
    checks = audit_checks(lab, box, env, tmp_path, DATA)
    assert checks["postfix.relay"]["verdict"] == "PASS", checks["postfix.relay"]
    assert checks["logwatch.report"]["value"]["source"] == "file", checks["logwatch.report"]
    report = box.root("logwatch --service postfix --range today --detail high --output stdout")
    assert "Postfix" in report.stdout and "sent" in report.stdout.lower(), report.stdout[-2000:]

    # the timer is armed; the rotation it runs moves the file aside and Postfix logs anew
    assert box.root(f"systemctl is-enabled {MAIL_LOG_ROTATE_UNIT}.timer").stdout.strip() \
        == "enabled"
    rotated = box.root(f"systemctl start {MAIL_LOG_ROTATE_UNIT}.service")
    assert rotated.returncode == 0, box.root(
        f"journalctl -q --no-pager -u {MAIL_LOG_ROTATE_UNIT}.service | tail -n 20").stdout
    assert wait_for(lambda: box.root("ls /var/log/ | grep -c '^mail\\.log\\.'").stdout.strip()
                    not in ("", "0"), 10), box.root("ls -l /var/log").stdout
    standin.clear()
    send_mail(box, subject="after the rotation")
    assert len(wait_for_mail(standin, 1)) == 1
    assert wait_for(lambda: "status=sent" in box.root("cat /var/log/mail.log").stdout, 10), \
        box.root("ls -l /var/log; cat /var/log/mail.log").stdout
    assert box.root("stat -c '%U:%G %a' /var/log/mail.log").stdout.strip() == "root:adm 640"
    _, totals = converge(lab, [box], env, data=DATA)  # the rotation is no drift
    assert totals["success"] == 0 and totals["error"] == 0, totals


def test_what_a_local_user_can_write_into_the_mail_log(lab, box, standin, request):
    """Only Postfix's own programs reach postlogd (its socket is in the postdrop-only public
    directory and Debian's postlog is not set-group-ID): a local user cannot put a
    Postfix-looking line into the file the canary and the audit then read."""
    converge(lab, [box], new_credentials(standin), data=DATA)
    box.root(f"su nobody -s /bin/sh -c \"postlog -t postfix/smtp '{FORGED}'\" </dev/null")
    log = box.root("tail -n 5 /var/log/mail.log").stdout
    forged = [line for line in log.splitlines() if "FORGED1234" in line]
    tag_kept = any(" postfix/smtp[" in line for line in forged)
    record(attack="a local user (nobody) writes a Postfix-looking status=sent line into "
           "the mail log with postlog -t postfix/smtp", where=request.node.nodeid,
           held=not tag_kept,
           outcome=f"the line is written as: {forged[0]}" if forged else "nothing written")
    assert not tag_kept, forged
    assert box.root("su nobody -s /bin/sh -c 'cat /var/log/mail.log' </dev/null").returncode != 0
