"""Host data validation: every bad value is refused with an error naming its key."""
import os

import pytest

from pyinfra_lockdown.settings import SettingsError, firewall_settings, relay_settings

ENV = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com", "LOCKDOWN_RELAY_PASSWORD": "pw-123"}
BASE = {"mail_root_forward": "ops@example.com"}


def relay(environ=ENV, **data):
    return relay_settings({**BASE, **data}, environ)


def test_defaults_give_mailgun_us_587_secure():
    s = relay()
    assert s.relayhost == "[smtp.mailgun.org]:587"
    assert (s.tls_level, s.wrappermode, s.sender_domain) == ("secure", False, "mg.example.com")


def test_custom_relay_verifies_by_default_and_encrypt_only_when_chosen():
    custom = {"relay_provider": "custom", "relay_host": "smarthost.corp.example"}
    assert relay(**custom).tls_level == "secure"
    assert relay(**custom, relay_tls_level="verify").tls_level == "verify"
    assert relay(**custom, relay_tls_level="encrypt").tls_level == "encrypt"


@pytest.mark.parametrize("host", ["10.77.0.1", "fd77::1"])
@pytest.mark.parametrize("level", [None, "secure", "verify"])
def test_an_ip_relay_host_cannot_be_verified_so_encrypt_must_be_chosen(host, level):
    data = {"relay_host": host, **({"relay_tls_level": level} if level else {})}
    with pytest.raises(SettingsError) as error:
        relay(**data)
    assert error.value.key == "relay_tls_level"
    assert "IP address" in str(error.value) and "encrypt" in str(error.value)


def test_eu_region_and_465_sets_wrappermode():
    s = relay(mailgun_region="eu", relay_port=465)
    assert s.relayhost == "[smtp.eu.mailgun.org]:465" and s.wrappermode


def test_custom_relay_host_ipv4_and_ipv6():
    assert relay(relay_host="10.77.0.1", relay_tls_level="encrypt").relayhost == "[10.77.0.1]:587"
    assert relay(relay_host="fd77::1", relay_port=2525,
                 relay_tls_level="encrypt").relayhost == "[ipv6:fd77::1]:2525"


@pytest.mark.parametrize("data, key", [
    ({"relay_provider": "sendgird"}, "relay_provider"),
    ({"mailgun_region": "asia"}, "mailgun_region"),
    ({"relay_region": "asia"}, "relay_region"),
    ({"relay_region": "eu", "mailgun_region": "us"}, "relay_region"),
    ({"relay_host": ""}, "relay_host"),
    ({"relay_port": 2465}, "relay_port"),  # SES's, not Mailgun's
    ({"relay_tls_wrappermode": True}, "relay_tls_wrappermode"),  # 587 is STARTTLS at Mailgun
    ({"relay_tls_wrappermode": "maybe", "relay_provider": "custom", "relay_host": "a.example"},
     "relay_tls_wrappermode"),
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
    assert error.value.key == "LOCKDOWN_RELAY_LOGIN"
    assert "LOCKDOWN_RELAY_PASSWORD (or MAILGUN_SMTP_PASSWORD) missing" in str(error.value)
    assert "postmaster@mg.example.com" not in str(error.value)


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


@pytest.mark.parametrize("data, key", [
    ({"firewall_deadman_seconds": 0}, "firewall_deadman_seconds"),
    ({"firewall_deadman_seconds": 3601}, "firewall_deadman_seconds"),
    ({"firewall_deadman_seconds": True}, "firewall_deadman_seconds"),
    ({"firewall_deadman_check_port": "ssh"}, "firewall_deadman_check_port"),
    ({"audit_noise_hours": 0}, "audit_noise_hours"),
    ({"audit_queue_max_age_minutes": "x"}, "audit_queue_max_age_minutes"),
    ({"audit_probe": "lab"}, "audit_probe"),
    ({"audit_probe_addresses": ["not an address!"]}, "audit_probe_addresses"),
])
def test_every_other_key_is_validated_in_the_same_place(data, key):
    from pyinfra_lockdown.settings import audit_settings

    with pytest.raises(SettingsError) as error:
        audit_settings({**BASE, **data}, ENV)
    assert error.value.key == key


def test_strings_from_the_command_line_are_accepted():
    # `pyinfra --data key=value` passes strings
    s = firewall_settings({"firewall_deadman_seconds": "30", "firewall_ipv6": "no",
                           "firewall_deadman_check_port": "2222"})
    assert (s.deadman_seconds, s.ipv6, s.deadman_check_port) == (30, False, 2222)


def test_a_probe_function_from_the_inventory_is_kept():
    from pyinfra_lockdown.settings import audit_settings

    def probe(addresses, ports):
        return {"via": "test", "results": [], "error": None}

    assert audit_settings({**BASE, "audit_probe": probe}, ENV).probe is probe
    assert audit_settings({**BASE, "audit_probe": "off"}, ENV).probe == "off"


def test_readme_host_data_table_is_the_one_settings_generates():
    from pathlib import Path

    from pyinfra_lockdown.settings import KEYS, markdown_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    begin, end = "<!-- host-data:begin -->\n", "\n<!-- host-data:end -->"
    assert begin in readme and end in readme, "README lost its generated host data table"
    table = readme.split(begin, 1)[1].split(end, 1)[0]
    assert table == markdown_table(), (
        "README's host data table differs from pyinfra_lockdown/settings.py: regenerate it "
        "with `python -m pyinfra_lockdown.settings`")
    assert len(table.splitlines()) == len(KEYS) + 2


def test_deploy_data_defaults_come_from_the_keys():
    from pyinfra_lockdown.settings import BY_NAME, data_defaults

    defaults = data_defaults("firewall")
    assert set(defaults) == {k for k, v in BY_NAME.items()
                             if v.section == "firewall" and v.default is not None}
    assert all(defaults[k] == BY_NAME[k].default for k in defaults)


# --- hostile input (issue 22 item 6): each a row of the security table --------------------

HOSTILE_VALUES = [
    ({"mail_sender_domain": "example.com\n"}, "mail_sender_domain",
     "a newline after a valid domain (`$` matched before it)"),
    ({"relay_port": "²"}, "relay_port", "a superscript digit (str.isdigit accepted it; int() "
     "then raised ValueError: a traceback)"),
    ({"relay_host": "::1%x]:587, [mx.attacker.example", "relay_port": 587}, "relay_host",
     "an IPv6 scope id carrying a second relay host for main.cf"),
    ({"mail_root_forward": "ops@example.com\n"}, "mail_root_forward",
     "a newline after a valid address"),
    ({"relay_host": "relay.example.com\n"}, "relay_host", "a newline after a valid host name"),
    ({"relay_canary_seconds": "٣0"}, "relay_canary_seconds", "an Arabic-Indic digit"),
    ({"logwatch_services": ["postfix\nsshd"]}, "logwatch_services", "a newline in a name"),
    ({"relay_host": "fe80::1%eth0"}, "relay_host", "an IPv6 scope id (an interface name)"),
]


@pytest.mark.parametrize("data, key, what", HOSTILE_VALUES,
                         ids=[f"{k}:{d[k]!r}" for d, k, _ in HOSTILE_VALUES])
def test_hostile_values_are_refused_naming_their_key(data, key, what, request):
    from tests.security_ledger import record

    with pytest.raises(SettingsError) as error:
        relay(**data)
    assert error.value.key == key and f"`{key}`" in str(error.value)
    record(attack=f"bad input: {key} = {data[key]!r} ({what})", where=request.node.nodeid,
           outcome=f"refused before any host: {error.value}", held=True)


def test_credentials_repr_masks_the_login_too(request):
    """Postmark's login is its server token: a repr in a traceback or a log must not show it."""
    from tests.security_ledger import record

    s = relay(environ={"LOCKDOWN_RELAY_LOGIN": "0f3a9c1e-token-as-login",
                       "LOCKDOWN_RELAY_PASSWORD": "0f3a9c1e-token-as-login"},
              relay_provider="postmark", mail_sender_domain="example.com")
    shown = repr(s.credentials) + repr(s) + str(s.credentials)
    assert "0f3a9c1e" not in shown and "login=***" in repr(s.credentials)
    record(attack="secret in a repr: Postmark's token as the relay login",
           where=request.node.nodeid, outcome=f"repr shows {s.credentials!r}", held=True)
