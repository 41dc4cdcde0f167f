"""Issue 14 item 4, reboots. A box rebooted between the ufw enable and the dead-man disarm
comes back with SSH reachable: at once when the rules let SSH in, and within the dead-man
delay when they do not (a rule the lockout guard cannot see shuts SSH out: the case the switch
exists for, and a reboot must not cancel it). A box rebooted after a converge comes back
converged: the audit passes, the no-op run changes nothing, mail relays."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.lab import fault_ledger
from tests.lab.deploy_helpers import converge, new_credentials, pyinfra
from tests.lab.faults import DEFAULT_RELEASE_IN_MAKE_TEST, Controller, look_from_outside, recover

pytestmark = [pytest.mark.lab, pytest.mark.quiet_machine]  # waits on timers: beside waiting tests only
DEADMAN_SECONDS = 30
DATA = {"firewall_deadman_seconds": str(DEADMAN_SECONDS)}
# Right after `ufw --force enable`, the end of the 1st command (the arm, then the enable) of the
# one operation that arms the dead-man switch, enables ufw, checks a new SSH connection and
# disarms.
ENABLE_COMMAND = "in:ufw enabled under a dead-man switch#1"
# SSH over IPv4 from the lab shut out (comment-less: lockdown's tagged pruning keeps it)
SSH_FROM_THE_LAB = "from 10.77.0.0/24 to any port 22 proto tcp"
CHECKED = ("SSH from outside after the boot (or via the dead-man timer, timed); SMTP from "
           "the prober, listeners, the password in files; re-run converges, no-op changes "
           "nothing, a mail relays")


def reboot_between_enable_and_disarm(lab, box, env, shut_out: bool) -> float:
    """Stop the run right after `ufw enable`, (shut SSH out,) lose the controller, reboot."""
    run = Controller(lab, [box], ENABLE_COMMAND, env, DATA)
    paused = run.wait_paused()
    assert paused is not None, run.output()[-3000:]
    if shut_out:
        assert box.root(f"ufw insert 1 deny {SSH_FROM_THE_LAB}").returncode == 0
    run.kill(paused["pid"])
    run.close()
    rebooted_at = time.monotonic()
    lab.restart_box(box, timeout=180, ssh=not shut_out)
    return rebooted_at


@DEFAULT_RELEASE_IN_MAKE_TEST
@pytest.mark.timeout(900)
def test_reboot_between_the_ufw_enable_and_the_deadman_disarm(lab, standin, box):
    env = new_credentials(standin)
    secret = env["LOCKDOWN_RELAY_PASSWORD"]
    locked = lab.add_box(suite=box.suite)
    boxes, shut_out = [box, locked], [False, True]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            since = list(pool.map(lambda b, s: reboot_between_enable_and_disarm(lab, b, env, s),
                                  boxes, shut_out))
        with ThreadPoolExecutor(max_workers=2) as pool:
            seen = list(pool.map(lambda b, t: look_from_outside(
                lab, b, [secret], since=t, deadman_seconds=DEADMAN_SECONDS + 30), boxes, since))
        # The operator removes what shut SSH out, then runs the deploy again.
        assert locked.root(f"ufw delete deny {SSH_FROM_THE_LAB}").returncode == 0
        recovery = recover(lab, standin, boxes, env, DATA, subject="after a reboot")
        for b, out, s in zip(boxes, seen, shut_out):
            copies = recovery.mail.get(b.name, 0)
            fault_ledger.record(
                kind="reboot", where=f"{b.suite}, first converge: rebooted between the ufw "
                f"enable and the dead-man disarm{', SSH shut out by a rule' if s else ''}",
                checked=CHECKED, ok=out.ok and recovery.converged and recovery.noop and copies == 1,
                open_hosts=int(bool(out.smtp_open or out.relayed or out.listening)),
                lockouts=int(not out.ssh), restored_s=out.restored_s,
                secrets_exposed=len(out.exposed), mails_lost=int(copies != 1))
        assert seen[0].ok and seen[0].restored_s is None, seen[0]
        assert seen[1].ok and seen[1].restored_s is not None, seen[1]
        assert recovery.converged and recovery.noop, recovery.detail
        assert recovery.mail == {b.name: 1 for b in boxes}, recovery.mail
    finally:
        lab.remove_box(locked)


@DEFAULT_RELEASE_IN_MAKE_TEST
@pytest.mark.timeout(900)
def test_reboot_after_a_converge_comes_back_converged(lab, standin, box):
    env = new_credentials(standin)
    converge(lab, [box], env)
    lab.restart_box(box, timeout=180)
    seen = look_from_outside(lab, box, [env["LOCKDOWN_RELAY_PASSWORD"]])
    audit = pyinfra(lab, [box], "deploys/audit.py", env=env)
    _, totals = converge(lab, [box], env)
    recovery = recover(lab, standin, [box], env, subject="after a reboot")
    ok = seen.ok and audit.returncode == 0 and totals["success"] == 0 and recovery.mail == {
        box.name: 1}
    fault_ledger.record(
        kind="reboot", where=f"{box.suite}: rebooted after a converge",
        checked="SSH, SMTP, secrets from outside; the audit passes; the no-op run changes "
                "nothing; a mail relays", ok=ok,
        open_hosts=int(bool(seen.smtp_open or seen.relayed or seen.listening)),
        lockouts=int(not seen.ssh), secrets_exposed=len(seen.exposed),
        mails_lost=int(recovery.mail != {box.name: 1}))
    assert seen.ok, seen
    assert audit.returncode == 0, audit.stderr[-4000:]
    assert totals["success"] == 0 and totals["error"] == 0, totals
    assert recovery.mail == {box.name: 1}, recovery
