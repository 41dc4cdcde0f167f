"""Issue 14 item 1, killed at every step: the pyinfra controller gets SIGKILL right after each
operation of a run in turn (every boundary, not a sample) and between the commands of every
operation that runs several. After each kill the box is judged from outside: SSH gets in (or
the dead-man timer brings it back within its delay), no SMTP port answers beyond loopback and
nothing relays for a stranger, the relay password is in no file others can read and in no
leftover file. Then one re-run converges, the next changes nothing and a mail relays.

Where a run stands comes from pyinfra's own executor (tests/lab/breakpoints.py): a reference
run on a box of the same kind lists the operations and their commands; every kill point is
derived from that list, so a new operation in the product gets its boundaries too.

The first converge of a fresh box runs in `make test` on the lab's default image (Debian 12);
both releases, and the converge that changes relay, credentials and firewall rules of a
converged box, run in `make test-faults` (marker ``faults``)."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import SUITES
from tests.lab import fault_ledger
from tests.lab.deploy_helpers import LOGIN, converge, new_credentials
from tests.lab.faults import Controller, break_points, look_from_outside, recover, traced_run

pytestmark = [pytest.mark.lab, pytest.mark.whole_machine]  # runs alone under xdist
BATCH = 6  # boxes killed (each at its own point) and recovered together
CHECKED = ("SSH from outside; SMTP 25/465/587 v4+v6 from the prober, relay attempt, listeners; "
           "the password in files (mode, leftovers); re-run converges, no-op changes nothing, "
           "a mail relays")

# The converge that changes an already converged box: another relay port and password,
# another firewall rule in place of one lockdown added (add + prune in one operation).
BEFORE = {"firewall_allowed": json.dumps(["ssh", "443/tcp"])}
AFTER = {"firewall_allowed": json.dumps(["ssh", "http/tcp"]), "relay_port": "2525"}


def kill_everywhere(lab, standin, suite: str, env: dict, data: dict | None, label: str,
                    prepare=None, secrets: list[str] = ()) -> list[str]:
    """Kill a run of the deploy at every point on fresh boxes (``prepare``d first); returns
    the failures, after recording every kill in the fault ledger. ``secrets``: searched on
    the box besides the run's password."""
    secrets = [env["LOCKDOWN_RELAY_PASSWORD"], *secrets]
    reference = lab.up(1, suites=[suite])
    try:
        if prepare:
            prepare(reference)
        points = break_points(traced_run(lab, reference, env, data))
    finally:
        lab.remove_box(reference[0])
    assert len(points) >= 8, points  # a run that does next to nothing proves nothing
    failures = []
    for start in range(0, len(points), BATCH):
        batch = points[start:start + BATCH]
        boxes = lab.up(len(batch), suites=[suite] * len(batch))
        try:
            if prepare:
                prepare(boxes)
            failures += kill_batch(lab, standin, boxes, batch, env, data, secrets, label)
        finally:
            for box in boxes:
                lab.remove_box(box)
    return failures


def kill_batch(lab, standin, boxes, points, env, data, secrets, label) -> list[str]:
    runs = [Controller(lab, [box], where, env, data) for box, (where, _) in zip(boxes, points)]
    killed_at = {}
    try:
        for box, run, (where, description) in zip(boxes, runs, points):
            paused = run.wait_paused()
            assert paused is not None, f"{box.name}: the run ended before {where}:\n" \
                                       f"{run.output()[-3000:]}"
            run.kill(paused["pid"])
            killed_at[box.name] = time.monotonic()
    finally:
        for run in runs:
            run.close()
    with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
        seen = list(pool.map(lambda box: look_from_outside(
            lab, box, secrets, since=killed_at[box.name]), boxes))
    leaked = [run for run in runs if any(secret in run.output() for secret in secrets)]
    recovery = recover(lab, standin, boxes, env, data, subject=f"{label} kill")
    failures = []
    for box, run, outside, (where, description) in zip(boxes, runs, seen, points):
        copies = recovery.mail.get(box.name, 0)
        ok = outside.ok and recovery.converged and recovery.noop and copies == 1 \
            and run not in leaked
        fault_ledger.record(
            kind="kill", where=f"{box.suite}, {label}: SIGKILL {description}", checked=CHECKED,
            ok=ok, open_hosts=int(bool(outside.smtp_open or outside.relayed or outside.listening)),
            lockouts=int(not outside.ssh), restored_s=outside.restored_s,
            secrets_exposed=len(outside.exposed) + int(run in leaked),
            mails_lost=int(copies != 1))
        if not ok:
            failures.append(f"{box.suite} {label} {description}: {outside.problems()}; "
                            f"re-run {recovery.converged}, no-op {recovery.noop}, "
                            f"mail copies {copies}, output leaked {run in leaked}")
    if not (recovery.converged and recovery.noop):
        failures.append(f"recovery of {[b.name for b in boxes]}: {recovery.detail}")
    return failures


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("suite", [
    pytest.param(suite, marks=() if suite == SUITES[0] else pytest.mark.faults)
    for suite in SUITES])
def test_first_converge_killed_at_every_boundary(lab, standin, suite):
    env = new_credentials(standin)
    failures = kill_everywhere(lab, standin, suite, env, None, "first converge")
    assert not failures, "\n".join(failures)


@pytest.mark.faults
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("suite", SUITES)
def test_converge_changing_relay_and_rules_killed_at_every_boundary(lab, standin, suite):
    old = new_credentials(standin)

    def converged_before(boxes):
        standin.set(login=LOGIN, password=old["LOCKDOWN_RELAY_PASSWORD"])
        converge(lab, boxes, old, data=BEFORE)
        standin.set(login=LOGIN, password=new["LOCKDOWN_RELAY_PASSWORD"])

    new = new_credentials(standin)
    failures = kill_everywhere(lab, standin, suite, new, AFTER, "converge changing relay+rules",
                               prepare=converged_before, secrets=[old["LOCKDOWN_RELAY_PASSWORD"]])
    assert not failures, "\n".join(failures)
