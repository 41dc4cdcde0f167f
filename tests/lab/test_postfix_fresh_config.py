"""Postfix uses the config a converge just wrote, at once, every time (issue 15 item 3).

A converge no longer waits for Postfix's "hot main.cf" doze: operations/postfix.py sets
main.cf's mtime 2 s back right after `postconf -e` (COOL_MAIN_CF) and lets the start skip its
repeat of `postfix check` (quick-start). Neither may leave Postfix on a stale config. Proof,
on 20 consecutive fresh boxes (both releases, booted in parallel batches): a mail sent right
after the first converge (no canary before it) leaves with that converge's relay and
credentials, and after an immediate second converge to another port and password, the next
mail leaves with those.
"""
import secrets

import pytest

from tests.conftest import SUITES
from tests.lab.deploy_helpers import LOGIN, converge, queue, send_mail, wait_for_mail

pytestmark = [pytest.mark.lab, pytest.mark.whole_machine]  # runs alone under xdist
BOXES = 20
BATCH = 10  # booted and converged together: one pyinfra run per batch and phase
NO_CANARY = {"relay_canary": "false"}  # the test's mail is the first to leave


def _credentials(standin) -> dict:
    password = "pw-" + secrets.token_urlsafe(18)
    standin.set(login=LOGIN, password=password, mode="normal")
    return {"LOCKDOWN_RELAY_LOGIN": LOGIN, "LOCKDOWN_RELAY_PASSWORD": password}


def _mail_right_after(lab, standin, boxes, env, data, port, phase) -> None:
    """Converge ``boxes``, then at once one mail from each: every mail must reach the
    stand-in over TLS on ``port``, authenticated (the stand-in accepts only ``env``'s password)."""
    standin.clear()
    converge(lab, boxes, env, data=data)
    for box in boxes:
        send_mail(box, subject=f"{phase} {box.name}")
    messages = wait_for_mail(standin, len(boxes), timeout=60)
    by_subject = {line.split(" ", 1)[1]: m for m in messages
                  for line in m["data"].splitlines() if line.startswith("Subject: ")}
    missing = [box.name for box in boxes if f"{phase} {box.name}" not in by_subject]
    assert not missing, f"{phase}: no mail from {missing}; queue of {missing[0]}:\n" \
        + queue(next(b for b in boxes if b.name == missing[0]))
    for box in boxes:
        message = by_subject[f"{phase} {box.name}"]
        assert (message["login"], message["port"], message["tls"]) == (LOGIN, port, True), \
            (box.name, phase, message)


def test_mail_right_after_a_converge_leaves_with_the_config_it_wrote(lab, standin):
    for first in range(0, BOXES, BATCH):
        boxes = lab.up(BATCH, suites=[SUITES[i % len(SUITES)] for i in range(BATCH)])
        try:
            _mail_right_after(lab, standin, boxes, _credentials(standin), NO_CANARY, 587, "first")
            # a hot reload: relayhost, wrapper mode and the SASL map change, Postfix is running
            _mail_right_after(lab, standin, boxes, _credentials(standin),
                              {**NO_CANARY, "relay_port": 465}, 465, "changed")
        finally:
            for box in boxes:
                lab.remove_box(box)
