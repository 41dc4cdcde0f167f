"""logwatch: host data, what lockdown writes, where the Postfix section reads (decided from the
host's LogwatchState captured on lab boxes), and the audit's logwatch.report check."""
import copy
import json
from pathlib import Path

import pytest

from pyinfra_lockdown.audit_checks import FAIL, PASS, expected_state, host_checks
from pyinfra_lockdown.logwatch import (
    DEBIAN_ONLY_SERVICE, PACKAGES, logwatch_conf, postfix_override, postfix_source,
    wanted_packages,
)
from pyinfra_lockdown.settings import (
    LogwatchSettings, SettingsError, audit_settings, logwatch_settings,
)

FACTS = Path(__file__).parent / "facts"
STATES = {p.stem: json.loads(p.read_text())["fact"]
          for p in (FACTS / "logwatch.LogwatchState").glob("*.json")}
AUDIT_STATE = json.loads((FACTS / "audit.converged_state.json").read_text())
# The fixtures were captured on boxes converged with relay_host 10.77.0.1 at level encrypt
# (an IP cannot be verified against a certificate, so that level is chosen explicitly).
DATA = {"relay_host": "10.77.0.1", "relay_tls_level": "encrypt", "mail_root_forward": "admin@lab.test",
        "apt_update": False}


def test_off_by_default_and_bad_values_name_their_key():
    assert logwatch_settings({}) == LogwatchSettings(enabled=False, detail="low", services=("All",))
    assert logwatch_settings({"logwatch": "yes", "logwatch_detail": "Med",
                              "logwatch_services": "postfix, sshd"}) == LogwatchSettings(
        enabled=True, detail="med", services=("postfix", "sshd"))
    for key, value in (("logwatch", "maybe"), ("logwatch_detail", "loud"),
                       ("logwatch_detail", 11), ("logwatch_services", []),
                       ("logwatch_services", ["postfix; rm -rf /"])):
        with pytest.raises(SettingsError, match=f"`{key}`"):
            logwatch_settings({key: value})


def test_conf_mails_root_at_the_declared_detail_and_keeps_debians_service_list():
    text = logwatch_conf(LogwatchSettings(enabled=True, detail="med"))
    assert {"Output = mail", "MailTo = root", "Detail = Med"} <= set(text.splitlines())
    assert "\nService" not in text  # Debian's own list (All, less zz-network, ...) stays
    listed = logwatch_conf(LogwatchSettings(enabled=True, detail="7", services=("postfix", "-zz-disk_space")))
    assert listed.splitlines()[-3:] == ["Service =", 'Service = "postfix"', 'Service = "-zz-disk_space"']
    assert "Detail = 7" in listed


@pytest.mark.parametrize("case", ["debian12_converged_journal_override",
                                  "debian13_converged_journal_override",
                                  "debian13_fresh_image_unconfigured"])
def test_journal_only_boxes_get_the_override_with_the_packages_own_selector(case):
    state = STATES[case]
    assert postfix_source(state) == "journal-override"
    override = postfix_override(state)
    assert "LogFile = none" in override and "SYSLOG_FACILITY=2" in override
    assert f'*OnlyService = "{state["stock_only_service"]}"' in override


def test_a_mail_log_file_keeps_logwatchs_own_reading():
    assert postfix_source(STATES["debian13_rsyslog_mail_log"]) == "file"
    assert postfix_override(STATES["debian13_rsyslog_mail_log"]) is None


def test_a_package_that_reads_the_journal_itself_needs_nothing():
    state = {**STATES["debian13_fresh_image_unconfigured"], "stock_journal": True}
    assert postfix_source(state) == "journal" and postfix_override(state) is None


def test_before_the_install_debians_selector_is_assumed_and_checked_next_run():
    state = STATES["debian13_not_installed"]
    assert postfix_source(state) == "journal-override"
    assert f'*OnlyService = "{DEBIAN_ONLY_SERVICE}"' in postfix_override(state)
    assert wanted_packages(state) == ["logwatch", "libdate-manip-perl"]  # cron is there
    assert wanted_packages({**state, "cron": False}) == PACKAGES  # logwatch's, and cron


def test_no_log_and_no_journal_reading_is_none():
    assert postfix_source({**STATES["debian13_fresh_image_unconfigured"], "journal": False}) == "none"


def test_off_touches_nothing(monkeypatch):
    import pyinfra_lockdown.logwatch as module

    called = []
    monkeypatch.setattr(module, "if_needed", lambda op, **kwargs: called.append(kwargs["name"]))
    module.logwatch_step(LogwatchSettings(), STATES["debian13_fresh_image_unconfigured"], True)
    assert called == []
    module.logwatch_step(LogwatchSettings(enabled=True), STATES["debian13_fresh_image_unconfigured"], True)
    assert len(called) == 3  # packages, logwatch.conf, the journal override


def test_no_readable_log_stops_before_any_change_naming_the_key(monkeypatch):
    import pyinfra_lockdown.logwatch as module

    monkeypatch.setattr(module, "if_needed", lambda op, **kwargs: pytest.fail("changed"))
    with pytest.raises(SettingsError, match="`logwatch`.*no mail log file"):
        module.logwatch_step(LogwatchSettings(enabled=True),
                             {**STATES["debian13_fresh_image_unconfigured"], "journal": False}, True)


def _audit(state, **data):
    checks = host_checks(expected_state(audit_settings({**DATA, **data}, {})), state)
    return {c.id: c for c in checks}


def test_audit_checks_logwatch_only_when_it_is_on():
    state = {**AUDIT_STATE, "logwatch": STATES["debian12_converged_journal_override"]}
    assert "logwatch.report" not in _audit(state)
    check = _audit(state, logwatch=True, logwatch_detail="med")["logwatch.report"]
    assert check.verdict == PASS, check
    assert check.value["source"] == "journal-override" and check.value["version"] == "7.7-1"


def test_audit_names_each_logwatch_drift():
    on = {"logwatch": True, "logwatch_detail": "med"}
    good = STATES["debian13_converged_journal_override"]
    for change, words in ((lambda s: s.update(conf="0" * 64), "logwatch.conf differs"),
                          (lambda s: s.update(postfix_conf=None), "journal override is missing"),
                          (lambda s: s["packages"].pop("logwatch"), "not installed: logwatch"),
                          (lambda s: s.update(cron=False), "no cron daemon"),
                          (lambda s: s.update(journal=False), "Postfix section is empty")):
        state = copy.deepcopy(good)
        change(state)
        check = _audit({**AUDIT_STATE, "logwatch": state}, **on)["logwatch.report"]
        assert check.verdict == FAIL and words in check.found, (words, check)
    other_detail = _audit({**AUDIT_STATE, "logwatch": good}, logwatch=True)["logwatch.report"]
    assert other_detail.verdict == FAIL  # the box has detail med, host data says low
