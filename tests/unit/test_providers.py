"""Relay provider presets: each preset's host, ports, TLS mode, login rule and sender domain,
the neutral credential names, and one clear error naming the key for every bad input."""
import pytest

from pyinfra_lockdown.mail import main_cf_settings
from pyinfra_lockdown.providers import PROVIDERS, markdown_table
from pyinfra_lockdown.settings import SettingsError, relay_settings

BASE = {"mail_root_forward": "ops@example.com"}
SECRET = "s3cr3t-XYZ-never-shown"


def creds(login, password=SECRET):
    return {"LOCKDOWN_RELAY_LOGIN": login, "LOCKDOWN_RELAY_PASSWORD": password}


# One good configuration per preset: (host data, environment, relayhost, wrappermode, sender)
GOOD = {
    "mailgun": ({"relay_region": "eu"}, creds("postmaster@mg.example.com"),
                "[smtp.eu.mailgun.org]:587", False, "mg.example.com"),
    "ses": ({"relay_region": "eu-west-1", "relay_port": 2465, "mail_sender_domain": "example.com"},
            creds("AKIAIOSFODNN7EXAMPLE"),
            "[email-smtp.eu-west-1.amazonaws.com]:2465", True, "example.com"),
    "sendgrid": ({"relay_port": 2525, "mail_sender_domain": "example.com"}, creds("apikey", "SG.x"),
                 "[smtp.sendgrid.net]:2525", False, "example.com"),
    "postmark": ({"mail_sender_domain": "example.com"},
                 creds("0f0e0d0c-1111-2222-3333-444455556666", "0f0e0d0c-1111-2222-3333-444455556666"),
                 "[smtp.postmarkapp.com]:587", False, "example.com"),
    "brevo": ({"relay_port": 465, "mail_sender_domain": "example.com"},
              creds("8a1b2c001@smtp-brevo.com"), "[smtp-relay.brevo.com]:465", True, "example.com"),
}


def test_every_preset_has_a_good_case():
    assert set(GOOD) == set(PROVIDERS)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_each_preset_gives_its_host_port_tls_mode_and_sender(name):
    data, environ, relayhost, wrapper, sender = GOOD[name]
    s = relay_settings({**BASE, "relay_provider": name, **data}, environ)
    assert (s.relayhost, s.wrappermode, s.sender_domain, s.provider) == (
        relayhost, wrapper, sender, name)
    assert main_cf_settings(s)["smtp_tls_wrappermode"] == ("yes" if wrapper else "no")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_relay_host_overrides_only_the_host(name):
    data, environ, relayhost, wrapper, _ = GOOD[name]
    s = relay_settings({**BASE, "relay_provider": name, **data, "relay_host": "relay.example.net"},
                       environ)
    assert s.relayhost == "[relay.example.net]:" + relayhost.rsplit(":", 1)[1]
    assert s.wrappermode == wrapper and s.tls_level == "secure"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_presets_verify_the_relay_certificate_by_default(name):
    data, environ, _, _, _ = GOOD[name]
    settings = main_cf_settings(relay_settings({**BASE, "relay_provider": name, **data}, environ))
    assert settings["smtp_tls_security_level"] == "secure"
    assert settings["smtp_tls_CAfile"] == "/etc/ssl/certs/ca-certificates.crt"
    assert settings["smtp_tls_mandatory_ciphers"] == "high"


def test_existing_mailgun_inventories_work_unchanged():
    old = {"MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com", "MAILGUN_SMTP_PASSWORD": SECRET}
    s = relay_settings({**BASE, "mailgun_region": "eu", "relay_port": 465}, old)
    assert s.relayhost == "[smtp.eu.mailgun.org]:465" and s.wrappermode
    assert (s.credentials.login, s.credentials.password) == ("postmaster@mg.example.com", SECRET)
    assert relay_settings({**BASE, "relay_port": 2525}, old).relayhost == "[smtp.mailgun.org]:2525"


def test_custom_relay_keeps_465_automatic_and_wrappermode_settable():
    data = {**BASE, "relay_provider": "custom", "relay_host": "smtp.example.net"}
    env = creds("me@example.net")
    assert relay_settings({**data, "relay_port": 465}, env).wrappermode
    assert not relay_settings({**data, "relay_port": 587}, env).wrappermode
    assert relay_settings({**data, "relay_port": 4650, "relay_tls_wrappermode": True}, env).wrappermode
    assert not relay_settings({**data, "relay_port": 465, "relay_tls_wrappermode": "no"},
                              env).wrappermode


def test_neutral_and_old_names_agreeing_are_fine():
    env = {**creds("postmaster@mg.example.com"), "MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com"}
    assert relay_settings(BASE, env).credentials.login == "postmaster@mg.example.com"


@pytest.mark.parametrize("name", ["LOGIN", "PASSWORD"])
def test_neutral_and_old_names_disagreeing_stop_without_showing_either(name, tmp_path):
    env = {**creds("postmaster@mg.example.com"), "MAILGUN_SMTP_LOGIN": "postmaster@mg.example.com",
           "MAILGUN_SMTP_PASSWORD": SECRET}
    env[f"MAILGUN_SMTP_{name}"] += "-other"
    with pytest.raises(SettingsError) as error:
        relay_settings(BASE, env)
    message = str(error.value)
    assert f"LOCKDOWN_RELAY_{name} and MAILGUN_SMTP_{name} are both set" in message
    assert SECRET not in message and "-other" not in message
    secret = tmp_path / "relay.env"  # the same rule in the credentials file
    secret.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    secret.chmod(0o600)
    with pytest.raises(SettingsError) as error:
        relay_settings({**BASE, "relay_credentials_file": str(secret)}, {})
    assert error.value.key == "relay_credentials_file" and SECRET not in str(error.value)


# The table-driven bad inputs: (host data, environment, key named, words in the message)
BAD = [
    ({"relay_provider": "mailjet"}, None, "relay_provider",
     ["mailgun", "ses", "sendgrid", "postmark", "brevo", "custom"]),
    ({"relay_provider": "postmark", "relay_port": 465, "mail_sender_domain": "example.com"},
     creds("0f0e0d0c-1111-2222-3333-444455556666"), "relay_port", ["465", "Postmark", "no implicit"]),
    ({"relay_provider": "brevo", "relay_port": 25, "mail_sender_domain": "example.com"},
     creds("a@smtp-brevo.com"), "relay_port", ["587, 2525"]),
    ({"relay_provider": "ses", "mail_sender_domain": "example.com"}, creds("AKIAIOSFODNN7EXAMPLE"),
     "relay_region", ["required", "ses"]),
    ({"relay_provider": "ses", "relay_region": "europe", "mail_sender_domain": "example.com"},
     creds("AKIAIOSFODNN7EXAMPLE"), "relay_region", ["AWS region"]),
    ({"relay_provider": "sendgrid", "relay_region": "apac", "mail_sender_domain": "example.com"},
     creds("apikey"), "relay_region", ["not a SendGrid region", "global, eu"]),
    ({"relay_provider": "postmark", "relay_region": "bulk", "mail_sender_domain": "example.com"},
     creds("0f0e0d0c-1111-2222-3333-444455556666"), "relay_region",
     ["transactional, broadcasts"]),
    ({"relay_provider": "brevo", "relay_region": "eu", "mail_sender_domain": "example.com"},
     creds("a@smtp-brevo.com"), "relay_region", ["no regions"]),
    # well-formed, but no SES region (AWS's list): named with the region-bound credentials hint
    ({"relay_provider": "ses", "relay_region": "eu-north-7", "mail_sender_domain": "example.com"},
     creds("AKIAIOSFODNN7EXAMPLE"), "relay_region",
     ["SMTP endpoint", "eu-west-1", "only in the region they were created in"]),
    ({"relay_provider": "sendgrid", "mailgun_region": "eu", "mail_sender_domain": "example.com"},
     creds("apikey"), "mailgun_region", ["mailgun"]),
    ({"relay_host": ""}, None, "relay_host", ["empty"]),
    ({"relay_provider": "sendgrid", "mail_sender_domain": "example.com"},
     creds("postmaster@mg.example.com"), "LOCKDOWN_RELAY_LOGIN", ["SendGrid", "apikey"]),
    ({"relay_provider": "ses", "relay_region": "us-east-1", "mail_sender_domain": "example.com"},
     creds("ses-user@example.com"), "LOCKDOWN_RELAY_LOGIN", ["Amazon SES", "access key"]),
    ({"relay_provider": "postmark", "mail_sender_domain": "example.com"},
     creds("me@example.com"), "LOCKDOWN_RELAY_LOGIN", ["Postmark", "token"]),
    ({}, creds("apikey"), "LOCKDOWN_RELAY_LOGIN", ["Mailgun", "name@your-sending-domain"]),
    ({"relay_provider": "sendgrid"}, creds("apikey"), "mail_sender_domain", ["sendgrid", "SendGrid"]),
    ({"relay_provider": "postmark"}, creds("0f0e0d0c-1111-2222-3333-444455556666"),
     "mail_sender_domain", ["postmark"]),
    ({"relay_provider": "ses", "relay_region": "eu-west-1"}, creds("AKIAIOSFODNN7EXAMPLE"),
     "mail_sender_domain", ["ses"]),
    ({"relay_provider": "brevo"}, creds("a@smtp-brevo.com"), "mail_sender_domain", ["brevo"]),
    ({"relay_provider": "sendgrid", "relay_port": 465, "relay_tls_wrappermode": False,
      "mail_sender_domain": "example.com"}, creds("apikey"), "relay_tls_wrappermode", ["465"]),
]


@pytest.mark.parametrize("data, environ, key, words", BAD)
def test_bad_provider_input_names_its_key_and_never_the_secret(data, environ, key, words):
    environ = environ or creds("postmaster@mg.example.com")
    with pytest.raises(SettingsError) as error:
        relay_settings({**BASE, **data}, environ)
    message = str(error.value)
    assert error.value.key == key and f"`{key}`" in message, message
    for word in words:
        assert word in message, message
    assert SECRET not in message
    assert environ["LOCKDOWN_RELAY_LOGIN"] not in message  # Postmark's is a token, SES's a key id


def test_readme_providers_table_is_the_one_providers_generates():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    begin, end = "<!-- providers:begin -->\n", "\n<!-- providers:end -->"
    assert begin in readme and end in readme, "README lost its generated providers table"
    assert readme.split(begin, 1)[1].split(end, 1)[0] == markdown_table(), (
        "regenerate it with `python -m pyinfra_lockdown.providers`")


# Issue 26 item 5: the hosts the providers' pages name besides the default one.
@pytest.mark.parametrize("name, region, relayhost", [
    ("sendgrid", "eu", "[smtp.eu.sendgrid.net]:2525"),
    ("sendgrid", "global", "[smtp.sendgrid.net]:2525"),
    ("postmark", "broadcasts", "[smtp-broadcasts.postmarkapp.com]:587"),
    ("postmark", "transactional", "[smtp.postmarkapp.com]:587"),
    ("ses", "us-gov-west-1", "[email-smtp.us-gov-west-1.amazonaws.com]:2465"),
    ("ses", "ap-southeast-5", "[email-smtp.ap-southeast-5.amazonaws.com]:2465"),
])
def test_a_preset_option_picks_the_documented_host(name, region, relayhost):
    data, environ, _, wrapper, _ = GOOD[name]
    s = relay_settings({**BASE, "relay_provider": name, **data, "relay_region": region}, environ)
    assert s.relayhost == relayhost and s.wrappermode == wrapper


def test_every_preset_names_its_source_and_the_day_it_was_checked():
    table = markdown_table()
    for provider in PROVIDERS.values():
        assert provider.source and provider.checked == "2026-12-04"
        assert f"{provider.source} ({provider.checked})" in table
