"""Old names still work and warn once per run with the new name (issue 27 item 5)."""
import os
import re
from pathlib import Path

import pytest

from pyinfra_lockdown import renamed
from pyinfra_lockdown.settings import BY_NAME, LEGACY_ENV, read_credentials, relay_settings

REPO = Path(__file__).resolve().parents[2]
BASE = {"mail_root_forward": "ops@example.com"}
NEW_ENV = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com", "LOCKDOWN_RELAY_PASSWORD": "pw-1"}
OLD_ENV = {"MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com", "MAILGUN_SMTP_PASSWORD": "pw-1"}


@pytest.fixture(autouse=True)
def warnings_seen(monkeypatch) -> list[str]:
    """Each test is a new run: nothing warned yet; what would be logged is collected."""
    seen: list[str] = []
    monkeypatch.setattr(renamed, "_warned", set())
    monkeypatch.setattr(renamed, "emit", seen.append)
    return seen


def test_an_old_host_data_key_warns_once_for_every_host_of_the_run(warnings_seen):
    for _ in range(3):  # three hosts with the same group data
        settings = relay_settings({**BASE, "mailgun_region": "eu"}, NEW_ENV)
        assert settings.host == "smtp.eu.mailgun.org"  # the old key still works
    assert len(warnings_seen) == 1
    assert "mailgun_region" in warnings_seen[0] and "use relay_region" in warnings_seen[0]


def test_old_environment_names_warn_once_each_with_the_new_name(warnings_seen):
    for _ in range(2):
        assert read_credentials(BASE, OLD_ENV).login == "postmaster@mg.example.com"
    assert len(warnings_seen) == 2
    for old, new in renamed.RENAMED_ENV.items():
        [line] = [w for w in warnings_seen if f" {old} " in w]
        assert f"use {new}" in line and "in the environment" in line
    assert "pw-1" not in "".join(warnings_seen)  # names only, never a value


def test_old_names_in_the_credentials_file_warn_naming_the_file(tmp_path, warnings_seen):
    secret = tmp_path / "relay.env"
    secret.write_text("".join(f"{k}={v}\n" for k, v in OLD_ENV.items()))
    os.chmod(secret, 0o600)
    assert read_credentials({**BASE, "relay_credentials_file": str(secret)}, {}).password == "pw-1"
    assert len(warnings_seen) == 2 and all(str(secret) in w for w in warnings_seen)


def test_the_new_names_warn_nothing(warnings_seen):
    relay_settings({**BASE, "relay_region": "eu"}, NEW_ENV)
    assert warnings_seen == []


def test_the_rename_tables_agree_with_settings_and_the_changelog():
    assert renamed.RENAMED_ENV == {old: new for new, old in LEGACY_ENV.items()}
    assert all(new in BY_NAME and old in BY_NAME for old, new in renamed.RENAMED_KEYS.items())
    notes = re.search(r"### Upgrade notes.*?(?=\n## |\Z)",
                      (REPO / "CHANGELOG.md").read_text(), re.S).group(0)
    for old, new in {**renamed.RENAMED_KEYS, **renamed.RENAMED_ENV}.items():
        assert f"`{old}`" in notes and f"`{new}`" in notes, old
