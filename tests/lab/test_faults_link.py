"""Issue 14 item 2, the link drops: the box's network is cut inside its namespace for a few
seconds in the middle of a first converge, at three places: while `ufw --force enable` runs
on the box, while Postfix starts on its new configuration, and just before the dead-man
check's new SSH connection (longer than that check waits). The box is judged from outside as
after a kill (tests/lab/faults.py), one re-run converges it, the next changes nothing and a
mail relays; a run that failed names the host and says what to do."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.lab import fault_ledger
from tests.lab.deploy_helpers import new_credentials
from tests.lab.faults import (
    DEFAULT_RELEASE_IN_MAKE_TEST, Controller, cut_while, look_from_outside, recover, set_link,
)

pytestmark = [pytest.mark.lab, pytest.mark.quiet_machine]  # waits on timers: beside waiting tests only
DEADMAN_SECONDS = 30
DATA = {"firewall_deadman_seconds": str(DEADMAN_SECONDS)}
# Right after `ufw --force enable`, the end of the 1st command (the arm, then the enable) of the
# one operation that arms the dead-man switch, enables ufw, checks a new SSH connection and
# disarms.
ENABLE_COMMAND = "in:ufw enabled under a dead-man switch#1"
SHORT_CUT = 5
# Longer than the dead-man check waits for its new connection (pyinfra's connect timeout,
# 10 s, at most half the timer's delay).
LONG_CUT = 14
CHECKED = ("SSH from outside; SMTP 25/465/587 v4+v6 from the prober, relay attempt, listeners; "
           "the password in files; the operator's error; re-run converges, no-op changes "
           "nothing, a mail relays")


def cut_at_the_deadman_check(run, box) -> dict:
    paused = run.wait_paused()
    assert paused is not None, run.output()[-3000:]
    set_link(box, up=False)
    cut_at = time.monotonic()
    run.resume()
    time.sleep(LONG_CUT)
    set_link(box, up=True)
    return {"caught": True, "cut_at": cut_at}


PLACES = (  # (where, breakpoint, how the link is cut)
    (f"{SHORT_CUT} s while `ufw --force enable` runs", "none",
     lambda run, box: cut_while(box, b"ufw\0--force\0enable", SHORT_CUT)),
    (f"{SHORT_CUT} s while Postfix starts on its new configuration", "none",
     lambda run, box: cut_while(box, b"systemctl\0restart\0postfix.service", SHORT_CUT)),
    (f"{LONG_CUT} s from the ufw enable on, over the dead-man check", ENABLE_COMMAND,
     cut_at_the_deadman_check),
)


@DEFAULT_RELEASE_IN_MAKE_TEST
@pytest.mark.timeout(900)
def test_link_cut_at_three_places_of_a_first_converge(lab, standin, box):
    env = new_credentials(standin)
    secret = env["LOCKDOWN_RELAY_PASSWORD"]
    boxes = [box] + lab.up(len(PLACES) - 1, suites=[box.suite] * (len(PLACES) - 1))
    try:
        runs = [Controller(lab, [b], where, env, DATA) for b, (_, where, _) in zip(boxes, PLACES)]
        with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
            cuts = list(pool.map(lambda i: PLACES[i][2](runs[i], boxes[i]), range(len(boxes))))
        codes = [run.wait() for run in runs]
        with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
            seen = list(pool.map(lambda b, c: look_from_outside(
                lab, b, [secret], since=c["cut_at"], deadman_seconds=DEADMAN_SECONDS),
                boxes, cuts))
        recovery = recover(lab, standin, boxes, env, DATA, subject="after a link cut")
        failures = []
        for b, place, run, code, cut, outside in zip(boxes, PLACES, runs, codes, cuts, seen):
            where = place[0]
            told = code == 0 or operator_told(run.output(), b.name)
            copies = recovery.mail.get(b.name, 0)
            ok = (cut["caught"] and outside.ok and told and recovery.converged and recovery.noop
                  and copies == 1 and secret not in run.output())
            fault_ledger.record(
                kind="link-cut", where=f"{b.suite}, first converge: link cut {where} "
                f"(run {'survived' if code == 0 else 'failed, operator told'})",
                checked=CHECKED, ok=ok,
                open_hosts=int(bool(outside.smtp_open or outside.relayed or outside.listening)),
                lockouts=int(not outside.ssh), restored_s=outside.restored_s,
                secrets_exposed=len(outside.exposed) + int(secret in run.output()),
                mails_lost=int(copies != 1))
            if not ok:
                failures.append(f"{where}: cut during it {cut['caught']}, exit {code}, "
                                f"told {told}, {outside.problems()}, re-run {recovery.converged},"
                                f" no-op {recovery.noop}, mails {copies}\n{run.output()[-2500:]}")
        assert codes[2] != 0, "the dead-man check cannot pass with the link cut"
        assert not failures, "\n".join(failures) + recovery.detail
    finally:
        for extra in boxes[1:]:
            lab.remove_box(extra)


def operator_told(output: str, host: str) -> bool:
    """The failed run's error names the host and says what to do next, with no traceback."""
    errors = [line for line in output.splitlines()
              if host in line and "run the deploy again" in line]
    return bool(errors) and "Traceback" not in output
