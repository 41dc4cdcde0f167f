"""Issue 14 item 3, mail while the deploy runs: a few hundred messages are submitted on a
converged box while a converge changes the relay (port 587 -> 2525), the credentials and the
master.cf listener (an smtp/inet listener re-enabled by hand is turned off again), and the
relay stand-in refuses every connection (421) from before the first message until the
converge's first change, then accepts only the new credentials. Every message arrives exactly
once (counted by its Message-ID), none bounces, none is left in the queue."""
from __future__ import annotations

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.lab import fault_ledger
from tests.lab.deploy_helpers import LOGIN, converge, new_credentials, queue, wait_for
from tests.lab.faults import DEFAULT_RELEASE_IN_MAKE_TEST, Controller, smtp_listeners

pytestmark = [pytest.mark.lab, pytest.mark.whole_machine]  # runs alone under xdist
MESSAGES = 300
CHANGED = {"relay_port": "2525"}


def submit(box, token: str, count: int) -> None:
    """``count`` messages through the box's sendmail, each with its own Message-ID."""
    script = (
        'i=0; while [ "$i" -lt "$1" ]; do i=$((i+1)); '
        'printf "To: admin@lab.test\\nSubject: load %s\\nMessage-ID: <load-%s-%s@lab.test>\\n\\n'
        'message %s\\n" "$i" "$2" "$i" "$i" | /usr/sbin/sendmail -t -i || exit 1; '
        "sleep 0.02; done")
    result = box.root(["sh", "-c", script, "sh", str(count), token], timeout=600)
    assert result.returncode == 0, result.stderr


def bounces(box, standin) -> int:
    """Bounces the box's Postfix logged, plus non-delivery reports that reached the relay."""
    logged = box.root("journalctl -q --no-pager | grep -c 'status=bounced'").stdout.strip()
    reports = [m for m in standin.messages() if m["mail_from"] in ("", "<>")]
    return int(logged or 0) + len(reports)


@DEFAULT_RELEASE_IN_MAKE_TEST
@pytest.mark.timeout(900)
def test_mail_under_load_while_a_converge_changes_relay_credentials_and_listener(
        lab, standin, box):
    old = new_credentials(standin)
    converge(lab, [box], old)
    enabled = box.root("postconf -M smtp/inet='smtp inet n - y - - smtpd' && postfix reload")
    assert enabled.returncode == 0 and smtp_listeners(box) == [] and \
        "127.0.0.1:25" in box.root("ss -Htln").stdout, "the hand-made listener is not up"
    new = new_credentials(standin)
    standin.set(login=LOGIN, password=new["LOCKDOWN_RELAY_PASSWORD"], mode="tempfail")
    standin.clear()
    token = secrets.token_hex(4)

    with ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(submit, box, token, MESSAGES)
        # the first messages meet the refusing relay before the converge starts
        assert wait_for(lambda: any(e["event"] == "tempfail" for e in standin.events()), 60), \
            f"the relay refused nothing before the converge; queue:\n{queue(box)}"
        run = Controller(lab, [box], "after:Note the reload", new, CHANGED)
        assert run.wait_paused() is not None, run.output()[-3000:]
        standin.set(login=LOGIN, password=new["LOCKDOWN_RELAY_PASSWORD"], mode="normal")
        run.resume()
        code = run.wait()
        load.result()
    assert code == 0, run.output()[-4000:]

    ids = f"Message-ID: <load-{token}-"
    wait_for(lambda: sum(ids in m["data"] for m in standin.messages()) >= MESSAGES, 120)
    arrived = Counter(line for m in standin.messages() for line in m["data"].splitlines()
                      if line.startswith(ids))
    once = sum(1 for i in range(1, MESSAGES + 1) if arrived[f"{ids}{i}@lab.test>"] == 1)
    bounced, left = bounces(box, standin), queue(box)
    refused = sum(e["event"] == "tempfail" for e in standin.events())
    listener_off = "127.0.0.1:25" not in box.root("ss -Htln").stdout
    ok = once == MESSAGES and bounced == 0 and "Mail queue is empty" in left and listener_off \
        and refused > 0
    fault_ledger.record(
        kind="relay-outage",
        where=f"{box.suite}: {MESSAGES} messages submitted while a converge changed relay port, "
              f"credentials and master.cf listener; relay refused (421) {refused} connections "
              f"until the first change",
        checked="each Message-ID arrived exactly once, no bounce, queue empty, listener off",
        ok=ok, mails_lost=MESSAGES - once + bounced)
    assert refused > 0, "the relay never refused: the outage did not happen"
    why = box.root("journalctl -q --no-pager -t postfix/smtp | grep -v 'status=sent' | tail -n 8")
    assert once == MESSAGES, (f"{MESSAGES - once} messages not arrived exactly once: "
                              f"{[k for k, n in arrived.items() if n != 1][:10]}", why.stdout)
    assert bounced == 0 and "Mail queue is empty" in left, (bounced, left[-2000:])
    assert listener_off
