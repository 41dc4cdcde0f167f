"""The story users start from (issue 16), on a box of each release: Postfix installed as
Debian's "Internet Site" and already relaying through the relay, relay probers at port 25,
and the daily logwatch report full of "Relay access denied" - then the deploy, and the next
report, relayed the same way, quiet. Both reports are read as the stand-in received them."""
import json

import pytest

from lab.standin_server import DEFAULT_CONTROL
from lab.story import (
    ATTACKS, postfix_section, relay_denied_count, run_story, smtpd_connections,
)
from lab.addresses import PROBER_V4, PROBER_V6
from tests.conftest import SUITES
from pyinfra_lockdown.facts.logwatch import LOGWATCH_CONF, POSTFIX_SERVICE_CONF
from tests.lab.deploy_helpers import LOGIN, converge, new_credentials, report_path, ssh_testinfra_host

pytestmark = pytest.mark.lab
FORWARD = "admin@lab.test"  # mail_root_forward of inventories/lab.py
AUDIT_HOURS = 1


@pytest.fixture(scope="module", params=SUITES)
def story(lab, request):
    """The whole sequence, once per release; the tests below read what it left."""
    box = lab.add_box(suite=request.param)
    lab.standin.clear()
    env = new_credentials(lab.standin)
    try:
        run = run_story(lab, box, env, mailto=FORWARD)
        assert run.deploy.returncode == 0, run.deploy.stderr[-4000:]
        yield box, env, run
    finally:
        lab.standin.set(**DEFAULT_CONTROL)
        lab.remove_box(box)


def _arrived_like_roots_mail(message):
    assert message is not None, "no logwatch report reached the stand-in"
    assert message["rcpt_tos"] == [FORWARD]
    assert message["login"] == LOGIN and message["tls"] is True and message["port"] == 587


def test_before_the_report_lists_every_relay_probe_in_its_postfix_section(story):
    box, _, run = story
    attempts = run.before_attempts
    assert len(attempts) == 2 * len(ATTACKS)
    for attempt in attempts:  # answered on 25, refused as Postfix refuses strangers
        assert attempt["connected"] and not attempt["accepted"], attempt
        assert "Relay access denied" in attempt["rcpt"][1], attempt
    _arrived_like_roots_mail(run.before)
    section = postfix_section(run.before["data"])
    assert relay_denied_count(section) == len(attempts), section
    assert smtpd_connections(section) == len(attempts), section
    assert PROBER_V4 in section and PROBER_V6 in section, section  # detail med: the clients


def test_after_the_deploy_the_same_probers_get_no_answer_and_the_report_is_quiet(story):
    box, _, run = story
    for attempt in run.after_attempts:
        assert not attempt["connected"], attempt
    _arrived_like_roots_mail(run.after)  # MailTo root -> alias -> mail_root_forward
    section = postfix_section(run.after["data"])
    assert section, "the report has no Postfix section: it read no Postfix log"
    assert "Sent via SMTP" in section, section  # it reads the journal: cron's mail is there
    assert relay_denied_count(section) == 0 and "Reject" not in section, section
    assert smtpd_connections(section) == 0, section


DATA = {"logwatch": "true", "logwatch_detail": "med", "audit_noise_hours": AUDIT_HOURS}


def test_logwatch_is_configured_and_a_second_converge_changes_nothing(lab, story, tmp_path):
    box, env, _ = story
    host = ssh_testinfra_host(lab, box, tmp_path)
    assert host.package("logwatch").is_installed and host.package("libdate-manip-perl").is_installed
    conf, journal = host.file(LOGWATCH_CONF), host.file(POSTFIX_SERVICE_CONF)
    for line in ("Output = mail", "MailTo = root", "Detail = Med"):
        assert conf.contains(f"^{line}$"), (line, conf.content_string)
    assert journal.contains("^LogFile = none$") and journal.contains("SYSLOG_FACILITY=2")
    before = [(f.sha256sum, f.mtime) for f in (conf, journal)]

    _, totals = converge(lab, [box], env, data=DATA)
    assert totals["success"] == 0 and totals["error"] == 0, totals
    assert [(host.file(f.path).sha256sum, host.file(f.path).mtime) for f in (conf, journal)] == before


def test_the_audits_noise_counts_equal_the_reports_over_the_same_window(lab, story):
    box, env, _ = story
    json_path = report_path()
    argv = lab.pyinfra_argv(hosts=[box]) + ["-y", "deploys/audit.py", "--data", f"audit_json={json_path}"]
    for key, value in DATA.items():
        argv += ["--data", f"{key}={value}"]
    audited = lab.run(argv, env=env, timeout=300)
    with open(json_path) as handle:
        checks = {c["id"]: c for c in json.load(handle)["hosts"][0]["checks"]}
    assert audited.returncode == 0, {k: c for k, c in checks.items() if c["verdict"] != "PASS"}
    assert checks["logwatch.report"]["value"]["source"] == "journal-override"

    # The same window for both: the audit's last AUDIT_HOURS hours, logwatch's "since" then.
    report = box.root(f"logwatch --service postfix --range 'since {AUDIT_HOURS} hours ago' "
                      "--detail med --output stdout")
    section = postfix_section(report.stdout)
    denied, connects = checks["noise.relay_denied"]["value"], checks["noise.smtpd_connects"]["value"]
    assert denied["in_window"] == relay_denied_count(section) == 2 * len(ATTACKS), section
    # the probers, and the connect that saw 25 open before them: the same count in both
    assert connects["in_window"] == smtpd_connections(section) >= 2 * len(ATTACKS), section
    # and since the converge both say none (the quiet report's window starts after it)
    assert denied["since_converge"] == 0 and connects["since_converge"] == 0
