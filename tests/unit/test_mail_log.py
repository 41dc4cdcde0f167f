"""mail_log: file (issue 26 item 4): where Postfix writes its own log, what lockdown writes for
it, and the state it reads. The lab proves it on both releases (tests/lab/test_mail_log_file.py)."""
from __future__ import annotations

import re

import pytest

from pyinfra_lockdown.facts.postfix import MailLogFiles
from pyinfra_lockdown.mail import main_cf_settings
from pyinfra_lockdown.mail_log import (
    logwatch_maillog_conf,
    mail_log_settings,
    rotate_service,
    rotate_timer,
    writes_file,
)
from pyinfra_lockdown.operations.postfix import settings_requiring_restart
from pyinfra_lockdown.settings import SettingsError, relay_settings

ENV = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com", "LOCKDOWN_RELAY_PASSWORD": "pw"}
BASE = {"mail_root_forward": "ops@example.com"}


def relay(**data):
    return relay_settings({**BASE, **data}, ENV)


def test_the_journal_stays_the_default_and_nothing_is_written_for_it():
    assert relay().mail_log == "journal"
    assert mail_log_settings(relay(), {"postfix": "3.7"}) == {}
    assert "maillog_file" not in main_cf_settings(relay())


@pytest.mark.parametrize("packages, wanted", [
    ({"postfix": "3.7.11"}, True),
    ({"postfix": "3.7.11", "rsyslog": "8.2302"}, False),  # rsyslog's mail.log is there
    ({"postfix": "3.10", "syslog-ng-core": "4.8"}, False),
])
def test_postfix_writes_the_file_only_where_no_syslog_daemon_does(packages, wanted):
    assert writes_file(relay(mail_log="file"), packages) is wanted
    assert mail_log_settings(relay(mail_log="file"), packages) == (
        {"maillog_file": "/var/log/mail.log"} if wanted else {})


def test_a_bad_value_names_the_key():
    with pytest.raises(SettingsError) as raised:
        relay(mail_log="syslog")
    assert raised.value.key == "mail_log"


def test_switching_to_the_file_restarts_postfix():
    assert settings_requiring_restart({"maillog_file": "/var/log/mail.log"},
                                      {"settings": {}}) == ["maillog_file"]


def test_rotation_is_postfixs_own_weekly_and_keeps_debians_mode():
    service, timer = rotate_service(), rotate_timer()
    assert "ExecStart=/usr/sbin/postfix logrotate\n" in service
    assert "chown root:adm /var/log/mail.log" in service and "chmod 640" in service
    assert re.search(r"-mtime \+35 -delete", service)
    assert "OnCalendar=weekly\n" in timer and "WantedBy=timers.target" in timer


def test_logwatchs_date_filter_accepts_postlogds_zero_padded_day():
    conf = logwatch_maillog_conf()
    assert '*ApplyStdDate = "%b %d %H:%M:%S "' in conf and "*ExpandRepeats" in conf


def test_the_state_read_parses_the_files_the_timer_and_the_logs_mode():
    fact = MailLogFiles()
    assert "systemctl is-enabled lockdown-mail-log-rotate.timer" in fact.command()
    digest = "a" * 64
    assert fact.process([f"file: {digest}", "file: -", "file: -", "enabled: enabled",
                         "active: inactive", "log: root:adm 640"]) == {
        "service": digest, "timer": None, "logwatch": None, "enabled": True, "active": False,
        "log": "root:adm 640"}
    assert fact.process(["file: -", "file: -", "file: -", "enabled: ", "active: ",
                         "log: -"])["log"] is None
