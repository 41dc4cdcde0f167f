"""What the mail deploy asks Postfix for, computed from validated settings (no host needed)."""
import re

from pyinfra_lockdown.mail import aliases_map, main_cf_settings, sasl_map_line, senders_map
from pyinfra_lockdown.settings import relay_settings

ENV = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.example.com", "LOCKDOWN_RELAY_PASSWORD": "pw-1"}
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


def _found(relayhost: str, stamp: str | None) -> dict:
    compiled = {"db": {"exists": True, "user": "root", "group": "root", "mode": 600,
                       "mtime_ns": 2}, "lmdb": {"exists": False}, "cdb": {"exists": False}}
    return {"main_cf": {"settings": {"relayhost": relayhost}},
            "sasl_map": {"exists": True, "type": "file", "user": "root", "group": "root",
                         "mode": 600, "mtime_ns": 1, "compiled": compiled, "stamp": stamp,
                         "stamp_status": "valid" if stamp else "missing"}}


def test_a_relay_switch_bridges_with_the_old_relayhosts_own_line_never_the_new_secret():
    from pyinfra_lockdown.mail import _relay_switch_bridge
    from pyinfra_lockdown.secret_stamp import new_stamp

    old = relay(relay_provider="custom", relay_host="relay.old.example")
    settings = relay()
    old_map = new_stamp(sasl_map_line(old).unmask())
    [(op, kwargs)] = _relay_switch_bridge(settings, _found(old.relayhost, old_map), "hash")
    assert kwargs["keep_line_of"] == old.relayhost  # its own line, copied on the host
    assert kwargs["content"].unmask() == sasl_map_line(settings).unmask()  # one key: the new
    assert kwargs["content"].unmask().split()[0] == "[smtp.mailgun.org]:587"


def test_another_port_of_the_same_relay_gets_the_new_credentials_in_the_bridge():
    """587 -> 2525 at the same host with a rotated password: the secret reaches only the host
    host data names; processes still sending via the old port find the new password."""
    from pyinfra_lockdown.mail import _relay_switch_bridge

    settings = relay(relay_port=2525)
    [(op, kwargs)] = _relay_switch_bridge(settings, _found("[SMTP.mailgun.org]:587", None), "hash")
    lines = kwargs["content"].unmask().splitlines()
    assert [line.split()[0] for line in lines] == ["[smtp.mailgun.org]:2525",
                                                    "[SMTP.mailgun.org]:587"]
    assert len({line.split()[1] for line in lines}) == 1 and "keep_line_of" not in kwargs


def test_a_drifted_relayhost_gets_no_bridge_when_the_map_is_current(request):
    """`postconf -e relayhost=[192.0.2.9]:25` by hand: the repair rewrites main.cf alone (the
    bridge once wrote the real credentials under the drifted key too: 7 operations)."""
    from pyinfra_lockdown.mail import _relay_switch_bridge
    from pyinfra_lockdown.secret_stamp import new_stamp
    from tests.security_ledger import record

    settings = relay()
    current = new_stamp(sasl_map_line(settings).unmask())
    assert _relay_switch_bridge(settings, _found("[192.0.2.9]:25", current), "hash") == []
    assert _relay_switch_bridge(settings, _found("[SMTP.Mailgun.org]:587", None), "hash") == []
    record(attack="relay switch: the real credentials offered to a hand-drifted relayhost "
           "([192.0.2.9]:25)", where=request.node.nodeid, held=True,
           outcome="no bridge: the map (already current) is not written; main.cf alone")


def test_the_bridge_script_copies_only_the_old_relayhosts_own_line(tmp_path):
    """The write script itself, run by sh here as on the host."""
    import os
    import subprocess

    from pyinfra_lockdown.operations.postfix import _WRITE_BRIDGE_SCRIPT

    owner = f"{os.getuid()}:{os.getgid()}"

    def bridge(old_map: str, old_key: str) -> str:
        target = tmp_path / "sasl_passwd"
        target.write_text(old_map)
        (tmp_path / "sasl_passwd.lockdown-stamp").write_text("stamp\n")
        subprocess.run(["sh", "-c", _WRITE_BRIDGE_SCRIPT, "lockdown-secret", str(target),
                        owner, old_key], input="[new.example]:465 new:NEW-secret\n",
                       text=True, check=True)
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        assert not (tmp_path / "sasl_passwd.lockdown-stamp").exists()
        return target.read_text()

    old_map = ("[smtp.mailgun.org]:587 old@mg.example:OLD-secret\n"
               "[other.example]:25 x:OTHER-secret\n")
    assert bridge(old_map, "[SMTP.mailgun.org]:587") == (
        "[new.example]:465 new:NEW-secret\n[smtp.mailgun.org]:587 old@mg.example:OLD-secret\n")
    assert bridge(old_map, "[192.0.2.9]:25") == "[new.example]:465 new:NEW-secret\n"
    assert bridge(old_map, "\\[other.example]:25") == "[new.example]:465 new:NEW-secret\n"
    assert bridge(old_map, "") == "[new.example]:465 new:NEW-secret\n"


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
