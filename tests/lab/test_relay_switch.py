"""A relay switch never hands one provider's secret to another (issue 22 item 3), on real boxes
with two stand-ins: the lab's (the old relay, smtp.mailgun.org at 10.77.0.1) and a second one (the new relay or a
relayhost written by hand: relay2.lab.test at 10.77.0.3, lab.standin.second)."""
from __future__ import annotations

import hashlib
import json
import secrets

import pytest

from lab.relay_names import SECOND_RELAY_NAME
from lab.standin import second
from tests.lab.deploy_helpers import (
    canaries, converge, new_credentials, not_canaries, queue, wait_for,
)
from tests.lab.secret_forms import leaks, needles
from tests.security_ledger import record

pytestmark = pytest.mark.lab
NEW_LOGIN = "postmaster@mg2.lab.test"
# Both by name, certified by the lab CA: the switch verifies each relay as production does.
OLD_RELAYHOST, NEW_RELAYHOST = "[smtp.mailgun.org]:587", f"[{SECOND_RELAY_NAME}]:587"
SASL_FILES = "/etc/postfix/sasl_passwd /etc/postfix/sasl_passwd.*"
# One message every 50 ms for as long as /run/lockdown-test-mail-go exists; the count in a file.
MAIL_LOOP = ("i=0; while [ -e /run/lockdown-test-mail-go ]; do i=$((i+1)); "
             "echo body | mail -s \"switch $i\" root || exit 1; "
             "echo $i > /run/lockdown-test-mails; "
             "sleep 0.05; done")


def _subjects(messages: list[dict]) -> list[str]:
    found = []
    for message in not_canaries(messages):
        for line in message["data"].splitlines():
            if line.startswith("Subject: switch "):
                found.append(line[len("Subject: "):])
    return found


def _seen(relay) -> str:
    """Everything a relay saw: its events (every AUTH line) and messages, as text."""
    return json.dumps(relay.events()) + json.dumps(relay.messages())


def _offered(relay, login: str, password: str) -> list[dict]:
    """The AUTH attempts at ``relay`` that carried this login or this password."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return [e for e in relay.events() if e["event"] == "auth_result"
            and (e.get("login") == login or e.get("password_sha256") == digest)]


def test_a_relay_switch_keeps_each_secret_with_its_relay_and_delivers_every_mail_once(
        lab, box, standin, request):
    old_env = new_credentials(standin)
    converge(lab, [box], old_env)
    with second(lab.config) as new_relay:
        new_password = "pw-" + secrets.token_urlsafe(18)
        new_relay.set(login=NEW_LOGIN, password=new_password, mode="normal")
        new_env = {"LOCKDOWN_RELAY_LOGIN": NEW_LOGIN, "LOCKDOWN_RELAY_PASSWORD": new_password}
        standin.clear()
        assert box.root("touch /run/lockdown-test-mail-go && systemd-run --quiet "
                        f"--unit=lockdown-test-mail -- sh -c '{MAIL_LOOP}'").returncode == 0
        try:
            assert wait_for(lambda: box.root("cat /run/lockdown-test-mails").returncode == 0, 10)
            converge(lab, [box], new_env, data={"relay_host": SECOND_RELAY_NAME})
        finally:
            box.root("rm -f /run/lockdown-test-mail-go")
        assert wait_for(lambda: box.root("systemctl is-active lockdown-test-mail").stdout.strip()
                        != "active", 10)
        sent = int(box.root("cat /run/lockdown-test-mails").stdout)
        wanted = sorted(f"switch {i}" for i in range(1, sent + 1))
        arrived = lambda: sorted(_subjects(standin.messages()) + _subjects(new_relay.messages()))
        wait_for(lambda: len(arrived()) >= sent, 60)
        got = arrived()
        new_secret = needles(NEW_RELAYHOST, NEW_LOGIN, new_password)
        old_secret = needles(OLD_RELAYHOST, old_env["LOCKDOWN_RELAY_LOGIN"],
                             old_env["LOCKDOWN_RELAY_PASSWORD"])
        to_old = leaks(_seen(standin), new_secret) + _offered(standin, NEW_LOGIN, new_password)
        to_new = leaks(_seen(new_relay), old_secret) + _offered(
            new_relay, old_env["LOCKDOWN_RELAY_LOGIN"], old_env["LOCKDOWN_RELAY_PASSWORD"])
        keys = box.root("cut -d' ' -f1 /etc/postfix/sasl_passwd").stdout.split()
        held = not to_old and not to_new and got == wanted
        record(attack="relay switch (Mailgun-like old relay -> a second relay, new credentials) "
               f"while mail is submitted ({sent} messages during the converge)",
               where=request.node.nodeid, held=held,
               outcome=f"old relay saw no form of the new secret, new relay none of the old; "
                       f"{len(_subjects(standin.messages()))} via the old relay, "
                       f"{len(_subjects(new_relay.messages()))} via the new, each once"
               if held else f"NOT held: new secret at the old relay {to_old}, old at the new "
                            f"{to_new}, {len(got)} of {sent} arrived ({len(set(got))} distinct)")
        assert to_old == [] and to_new == []
        assert got == wanted, (f"{len(got)} arrived, {len(set(got))} distinct, {sent} sent; "
                               f"queue:\n{queue(box)}")
        assert keys == [NEW_RELAYHOST]  # the bridge is gone once main.cf names the new relay
        assert len(canaries(new_relay.messages())) == 1
        assert sent >= 10  # mail really was submitted during the switch


def test_a_hand_drifted_relayhost_gets_no_secret_and_only_main_cf_is_rewritten(
        lab, box, standin, request):
    """`postconf -e relayhost=...` by hand names a relay lockdown never wrote: the repair
    rewrites main.cf (and reloads), never the SASL map; the drifted relay sees no AUTH."""
    env = new_credentials(standin)
    converge(lab, [box], env)
    with second(lab.config) as drifted:
        drifted.set(login="someone@attacker.test", password="not-lockdowns", mode="normal")
        before = box.root(f"stat -c '%n %i %s %Y' {SASL_FILES}").stdout
        assert box.root(f"postconf -e 'relayhost = {NEW_RELAYHOST}'").returncode == 0
        result, _ = converge(lab, [box], env)
        after = box.root(f"stat -c '%n %i %s %Y' {SASL_FILES}").stdout
        relayhost = box.root("postconf -h relayhost").stdout.strip()
        changed = sorted(_changed_operations(json.loads(result.stdout)))
        auths = [e for e in drifted.events() if e["event"] in ("auth", "auth_result")]
        leaked = leaks(_seen(drifted), needles(NEW_RELAYHOST, env["LOCKDOWN_RELAY_LOGIN"],
                                               env["LOCKDOWN_RELAY_PASSWORD"]))
        held = before == after and not auths and not leaked
        record(attack=f"relay switch by hand: postconf -e relayhost={NEW_RELAYHOST} "
               "(a relay lockdown never wrote), then a converge", where=request.node.nodeid,
               held=held, outcome=f"the SASL map untouched; operations that changed: "
               f"{', '.join(changed)}; the drifted relay saw no AUTH" if held else
               f"NOT held: map {'rewritten' if before != after else 'kept'}, {len(auths)} AUTH "
               f"events, leaked {leaked}")
        assert relayhost == OLD_RELAYHOST
        assert before == after, (before, after)
        assert auths == [] and leaked == []
        assert not any("credential" in name.lower() or "sasl" in name.lower()
                       for name in changed), changed


def _changed_operations(report: dict) -> list[str]:
    """Names of the operations that changed something, from pyinfra's --json output."""
    names = []
    for op in (report.get("results") or {}).get("operations", []) or []:
        if op.get("changed") or op.get("success"):
            names.append(op.get("name") or op.get("names") or "?")
    return names
