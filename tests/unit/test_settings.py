"""Host data validation: every bad value is refused with an error naming its key."""
import os

import pytest

from pyinfra_lockdown.settings import SettingsError, firewall_settings, relay_settings

ENV = {"MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com", "MAILGUN_SMTP_PASSWORD": "pw-123"}
BASE = {"mail_root_forward": "ops@example.com"}


def relay(environ=ENV, **data):
    return relay_settings({**BASE, **data}, environ)


def test_defaults_give_mailgun_us_587_encrypt():
    s = relay()
    assert s.relayhost == "[smtp.mailgun.org]:587"
    assert (s.tls_level, s.wrappermode, s.sender_domain) == ("encrypt", False, "mg.example.com")


def test_eu_region_and_465_sets_wrappermode():
    s = relay(mailgun_region="eu", relay_port=465)
    assert s.relayhost == "[smtp.eu.mailgun.org]:465" and s.wrappermode


def test_custom_relay_host_ipv4_and_ipv6():
    assert relay(relay_host="10.77.0.1").relayhost == "[10.77.0.1]:587"
    assert relay(relay_host="fd77::1", relay_port=2525).relayhost == "[ipv6:fd77::1]:2525"


@pytest.mark.parametrize("data, key", [
    ({"relay_provider": "sendgrid"}, "relay_provider"),
    ({"mailgun_region": "asia"}, "mailgun_region"),
    ({"relay_provider": "custom"}, "relay_host"),
    ({"relay_host": "smtp mailgun.org"}, "relay_host"),
    ({"relay_port": 0}, "relay_port"),
    ({"relay_port": 70000}, "relay_port"),
    ({"relay_port": "587x"}, "relay_port"),
    ({"relay_tls_level": "may"}, "relay_tls_level"),
    ({"relay_tls_level": "none"}, "relay_tls_level"),
    ({"relay_tls_level": "dane-ish"}, "relay_tls_level"),
    ({"mail_root_forward": None}, "mail_root_forward"),
    ({"mail_root_forward": "not an address"}, "mail_root_forward"),
    ({"apt_update": "maybe"}, "apt_update"),
    ({"relay_password": "x"}, "relay_password"),
])
def test_bad_relay_values_name_their_key(data, key):
    with pytest.raises(SettingsError) as error:
        relay(**data)
    assert error.value.key == key
    assert f"`{key}`" in str(error.value)


def test_missing_credentials_name_the_variable_and_never_a_value():
    with pytest.raises(SettingsError) as error:
        relay(environ={"MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com"})
    assert "MAILGUN_SMTP_PASSWORD missing" in str(error.value)


def test_credentials_file_must_be_private(tmp_path):
    secret = tmp_path / "mailgun.env"
    secret.write_text("MAILGUN_SMTP_LOGIN=postmaster@mg.example.org\nMAILGUN_SMTP_PASSWORD='s3 cr=t'\n")
    os.chmod(secret, 0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        relay(environ={}, relay_credentials_file=str(secret))
    os.chmod(secret, 0o600)
    s = relay(environ={}, relay_credentials_file=str(secret))
    assert (s.credentials.login, s.credentials.password) == ("postmaster@mg.example.org", "s3 cr=t")
    assert "s3 cr=t" not in repr(s) and "s3 cr=t" not in repr(s.credentials)


@pytest.mark.parametrize("data, key", [
    ({"firewall_allowed": "ssh"}, "firewall_allowed"),
    ({"firewall_default_incoming": "drop"}, "firewall_default_incoming"),
    ({"firewall_logging": "loud"}, "firewall_logging"),
    ({"firewall_prune": "everything"}, "firewall_prune"),
    ({"firewall_ipv6": 1}, "firewall_ipv6"),
])
def test_bad_firewall_values_name_their_key(data, key):
    with pytest.raises(SettingsError) as error:
        firewall_settings(data)
    assert error.value.key == key


def test_firewall_defaults():
    s = firewall_settings({})
    assert (s.allowed, s.default_incoming, s.default_outgoing, s.prune) == (
        ["ssh"], "deny", "allow", "tagged")


def test_audit_reads_relay_settings_without_credentials():
    s = relay_settings({**BASE, "mail_sender_domain": "mg.example.net"}, {},
                       require_credentials=False)
    assert s.credentials is None and s.sender_domain == "mg.example.net"
    assert relay_settings(BASE, {}, require_credentials=False).sender_domain is None
    with pytest.raises(SettingsError) as error:  # other keys are still validated
        relay_settings({**BASE, "relay_port": 0}, {}, require_credentials=False)
    assert error.value.key == "relay_port"
