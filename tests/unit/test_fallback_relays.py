"""Fallback relays (relay_fallbacks): validation, what Postfix is asked for, the canary's routes
and the audit's check per relay. The lab proves delivery (tests/lab/test_fallback_relay.py)."""
from __future__ import annotations

import copy
import re

import pytest

from pyinfra_lockdown.canary import canary_script
from pyinfra_lockdown.facts.audit import RelayLastAttempt
from pyinfra_lockdown.fallback import (
    canary_routes_map,
    canary_sender,
    cleared_settings,
    tls_policy_map,
)
from pyinfra_lockdown.mail import main_cf_settings, sasl_map_line
from pyinfra_lockdown.settings import SettingsError, relay_settings

ENV = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com", "LOCKDOWN_RELAY_PASSWORD": "pw-one",
       "LOCKDOWN_FALLBACK1_LOGIN": "fallback-login", "LOCKDOWN_FALLBACK1_PASSWORD": "pw-two"}
BASE = {"mail_root_forward": "ops@example.com"}
SECOND = {"host": "relay2.example.net"}


def relay(fallbacks, environ=ENV, **data):
    return relay_settings({**BASE, **data, "relay_fallbacks": fallbacks}, environ)


def test_without_fallbacks_nothing_of_them_is_written():
    settings = main_cf_settings(relay([]))
    assert not {"smtp_fallback_relay", "smtp_tls_policy_maps",
                "sender_dependent_default_transport_maps"} & set(settings)
    assert sasl_map_line(relay([])).unmask() == \
        "[smtp.mailgun.org]:587 postmaster@mg.example.com:pw-one\n"


def test_a_fallback_is_postfixs_fallback_with_its_own_sasl_line_and_tls_level():
    settings = relay([{**SECOND, "tls_level": "verify"}])
    main = main_cf_settings(settings)
    assert main["smtp_fallback_relay"] == "[relay2.example.net]:587"
    assert main["smtp_tls_security_level"] == "secure"  # the relay's own level
    assert main["smtp_tls_policy_maps"].startswith("texthash:")
    assert "[relay2.example.net]:587 verify" in tls_policy_map(settings).splitlines()
    # one line per relay, each keyed by the nexthop Postfix looks it up with
    assert sasl_map_line(settings).unmask().splitlines() == [
        "[smtp.mailgun.org]:587 postmaster@mg.example.com:pw-one",
        "[relay2.example.net]:587 fallback-login:pw-two"]


def test_a_fallback_preset_reads_its_credentials_file(tmp_path):
    secret = tmp_path / "sendgrid.env"
    secret.write_text("LOCKDOWN_RELAY_LOGIN=apikey\nLOCKDOWN_RELAY_PASSWORD=SG.x\n")
    secret.chmod(0o600)
    settings = relay([{"provider": "sendgrid", "credentials_file": str(secret)}],
                     mail_sender_domain="example.com")
    (fallback,) = settings.fallbacks
    assert fallback.relayhost == "[smtp.sendgrid.net]:587"
    assert (fallback.credentials.login, fallback.credentials.password) == ("apikey", "SG.x")
    assert "SG.x" not in repr(settings)


@pytest.mark.parametrize("fallbacks, environ, key", [
    ([{"hots": "x.example.net"}], ENV, "relay_fallbacks[1]"),
    (["relay2.example.net"], ENV, "relay_fallbacks"),
    ([{"provider": "custom"}], ENV, "relay_fallbacks[1].host"),
    ([{**SECOND, "port": 0}], ENV, "relay_fallbacks[1].port"),
    ([{**SECOND, "port": 465}], ENV, "relay_fallbacks[1].port"),  # wrappermode differs
    ([{**SECOND, "tls_level": "may"}], ENV, "relay_fallbacks[1].tls_level"),
    ([{"host": "smtp.mailgun.org"}], ENV, "relay_fallbacks[1]"),  # the relay itself
    ([SECOND, SECOND], {**ENV, "LOCKDOWN_FALLBACK2_LOGIN": "a",
                        "LOCKDOWN_FALLBACK2_PASSWORD": "b"}, "relay_fallbacks[2]"),
    ([SECOND], {k: v for k, v in ENV.items() if "FALLBACK1_PASSWORD" not in k},
     "relay_fallbacks[1].credentials"),
    ([{"provider": "sendgrid"}], ENV, "relay_fallbacks[1].credentials"),  # not an apikey login
    ([{**SECOND, "host": "10.0.0.9"}], ENV, "relay_fallbacks[1].tls_level"),
])
def test_bad_fallbacks_name_their_key_and_never_a_secret(fallbacks, environ, key):
    with pytest.raises(SettingsError) as raised:
        relay(fallbacks, environ, mail_sender_domain="example.com")
    assert raised.value.key == key, str(raised.value)
    assert "pw-two" not in str(raised.value) and "pw-one" not in str(raised.value)


def test_the_audit_needs_no_fallback_password():
    settings = relay_settings({**BASE, "relay_fallbacks": [SECOND]}, {},
                              require_credentials=False)
    assert settings.fallbacks[0].credentials is None


def test_each_canary_is_routed_through_its_own_relay_only():
    settings = relay([SECOND])
    table = canary_routes_map(settings, r"box1\.example\.com|localhost")
    routes = {}
    for line in table.splitlines():
        if not line.startswith("#"):
            pattern, result = re.match(r"^/(.*)/\s+(\S+)$", line).groups()
            routes[pattern] = result
    def route(sender):
        return [r for p, r in routes.items() if re.fullmatch(p, sender)]
    assert route(f"{canary_sender(0)}@box1.example.com") == ["lockdown-canary:[smtp.mailgun.org]:587"]
    assert route(f"{canary_sender(1)}@localhost") == ["lockdown-canary:[relay2.example.net]:587"]
    assert route("root@box1.example.com") == []
    assert route(f"{canary_sender(1)}@attacker.example") == []
    assert "-f" in str(canary_script("abcdef12", "ops@example.com", 30, canary_sender(1)).get_raw_value())
    with pytest.raises(ValueError):
        canary_script("abcdef12", "ops@example.com", 30, "x; rm -rf /")


def test_removed_fallbacks_clear_only_what_an_earlier_run_set():
    main_cf = {"settings": {"smtp_fallback_relay": "[relay2.example.net]:587",
                            "smtp_tls_policy_maps": "", "relayhost": "[smtp.mailgun.org]:587"}}
    assert cleared_settings(relay([]), main_cf) == {"smtp_fallback_relay": ""}
    assert cleared_settings(relay([]), {"settings": {}}) == {}
    assert cleared_settings(relay([SECOND]), main_cf) == {}


def test_the_audit_checks_each_relay_from_its_own_last_attempt():
    from tests.unit.test_audit_checks import STATE, verdicts

    # a relay refusing while the fallback takes the mail logs no status= line of its own
    primary_refused = ("1796119053.3 box1 postfix/smtp[5]: 4569A: host smtp.mailgun.org"
                       "[10.77.0.1] refused to talk to me: 421 4.3.0 try again later")
    fallback_sent = ("1796119054.3 box1 postfix/smtp[6]: 4569A: to=<a@lab.test>, "
                     "relay=relay2.example.net[10.77.0.3]:587, delay=1, dsn=2.0.0, status=sent (250 Ok)")
    state = copy.deepcopy(STATE)
    state["relay_last"] = RelayLastAttempt().process(
        ["log: journal", f"line: {fallback_sent}", f"relay_line: {primary_refused}",
         f"relay_line: {fallback_sent}"])
    data = {"mail_root_forward": "admin@lab.test", "relay_fallbacks": [SECOND]}
    found = verdicts(state, data)
    assert found["postfix.relay"].verdict == "FAIL"
    assert "421" in found["postfix.relay"].found
    assert found["postfix.relay.fallback1"].verdict == "PASS"
    state["relay_last"]["relays"] = {}
    assert verdicts(state, data)["postfix.relay.fallback1"].verdict == "N/A"


def test_the_attempt_filter_keeps_the_newest_line_per_relay_and_the_newest_status_line():
    """The fact's own awk, run here on Postfix's lines (awk is the host's mawk/gawk)."""
    import subprocess

    from pyinfra_lockdown.facts.audit import _LAST_PER_RELAY

    lines = [
        "1.0 box1 postfix/smtp[5]: 4569A: to=<a@lab.test>, relay=smtp.mailgun.org[10.77.0.1]:587,"
        " delay=1, dsn=2.0.0, status=sent (250 Ok)",
        "2.0 box1 postfix/smtp[5]: connect to smtp.mailgun.org[10.77.0.1]:587: Connection refused",
        "3.0 box1 postfix/smtp[6]: 4569B: to=<a@lab.test>, relay=relay2.example.net[10.77.0.3]:587,"
        " delay=1, dsn=2.0.0, status=sent (250 Ok)",
        "4.0 box1 postfix/smtp[6]: warning: something unrelated",
    ]
    shown = subprocess.run(_LAST_PER_RELAY, shell=True, check=True,
                           input="\n".join(lines) + "\n", capture_output=True, text=True).stdout
    fact = RelayLastAttempt().process(["log: journal", *shown.splitlines()])
    assert fact["status"] == "sent" and fact["at"] == 3
    assert fact["relays"]["smtp.mailgun.org"]["status"] == "deferred"
    assert "Connection refused" in fact["relays"]["smtp.mailgun.org"]["reason"]
    assert fact["relays"]["relay2.example.net"]["status"] == "sent"
