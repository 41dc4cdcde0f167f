"""What the mail deploy asks Postfix for, computed from validated settings (no host needed)."""
import re

from pyinfra_lockdown.mail import aliases_map, main_cf_settings, sasl_map_line, senders_map
from pyinfra_lockdown.settings import relay_settings

ENV = {"MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com", "MAILGUN_SMTP_PASSWORD": "pw-1"}
BASE = {"mail_root_forward": "ops@example.com"}


def relay(**data):
    return relay_settings({**BASE, **data}, ENV)


def _regexp_rules(table: str):
    """Parse a Postfix regexp table into (compiled pattern, result) pairs."""
    rules = []
    for line in table.splitlines():
        if line and not line.startswith("#"):
            pattern, result = re.match(r"^/(.*)/\s+(\S+)$", line).groups()
            rules.append((re.compile(pattern), result))
    return rules


def _rewrite(table: str, address: str):
    for pattern, result in _regexp_rules(table):
        match = pattern.match(address)
        if match:
            return re.sub(r"\$\{(\d+)\}", lambda m: match.group(int(m[1])), result)
    return None


def test_null_client_settings_require_tls_and_keep_auth_inside_it():
    settings = main_cf_settings(relay())
    assert settings["relayhost"] == "[smtp.mailgun.org]:587"
    assert settings["smtp_tls_security_level"] == "secure"  # certificate checked, name matched
    assert settings["smtp_tls_mandatory_ciphers"] == "high"
    assert settings["smtp_tls_wrappermode"] == "no"
    assert "noplaintext" in settings["smtp_sasl_security_options"]
    assert settings["inet_interfaces"] == "loopback-only"
    assert settings["mydestination"] == ""
    assert "reject_unauth_destination" in settings["smtpd_relay_restrictions"]
    assert "static:" not in " ".join(settings.values())


def test_port_465_turns_on_wrappermode():
    assert main_cf_settings(relay(relay_port=465))["smtp_tls_wrappermode"] == "yes"


def test_local_recipients_go_to_the_person_and_strangers_are_untouched():
    table = aliases_map(relay(), "web1.example.com")
    assert _rewrite(table, "root@web1.example.com") == "ops@example.com"
    assert _rewrite(table, "www-data@localhost") == "ops@example.com"
    assert _rewrite(table, "customer@example.org") is None
    assert _rewrite(table, "root@web1xexample.com") is None  # dots are escaped


def test_local_senders_leave_in_the_relay_domain():
    table = senders_map(relay(), "web1.example.com")
    assert _rewrite(table, "root@web1.example.com") == "root@mg.example.com"
    assert _rewrite(table, "app@example.org") is None


def test_sasl_map_key_is_the_relayhost_and_the_line_is_masked():
    line = sasl_map_line(relay(relay_port=2525))
    assert line.unmask() == "[smtp.mailgun.org]:2525 postmaster@mg.example.com:pw-1\n"
    assert "pw-1" not in str(line) and "pw-1" not in repr(line)


def test_while_the_relayhost_changes_the_map_also_keys_the_old_one():
    settings = relay(relay_port=465)
    both = sasl_map_line(settings, also_for="[smtp.mailgun.org]:587").unmask().splitlines()
    assert [line.split()[0] for line in both] == [settings.relayhost, "[smtp.mailgun.org]:587"]
    assert len({line.split()[1] for line in both}) == 1  # the new credentials for both keys
    assert sasl_map_line(settings, also_for=settings.relayhost).unmask() == \
        sasl_map_line(settings).unmask()


def test_tls_floor_speaks_the_hosts_postfix_dialect():
    from pyinfra_lockdown.mail import tls_floor_settings

    new = {"mail_version": "3.7.11", "smtp_tls_mandatory_protocols": ">=TLSv1"}  # real box
    old = {"mail_version": "3.5.25", "smtp_tls_mandatory_protocols": "!SSLv2, !SSLv3"}
    floor = tls_floor_settings(new)
    assert floor == {"smtp_tls_mandatory_protocols": ">=TLSv1.2", "smtp_tls_protocols": ">=TLSv1.2"}
    assert set(tls_floor_settings(old).values()) == {"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"}
    # Postfix not installed yet: the spelling every version reads, kept by later runs
    first = tls_floor_settings(None)
    assert set(first.values()) == {"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"}
    assert tls_floor_settings(new, first) == first
    # a weaker value already there is replaced, on either dialect
    assert tls_floor_settings(new, {"smtp_tls_protocols": ">=TLSv1"}) == floor
    assert tls_floor_settings(old, {"smtp_tls_protocols": ">=TLSv1.2"})["smtp_tls_protocols"] == (
        "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1")  # Postfix < 3.6 cannot read ranges
