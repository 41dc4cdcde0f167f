"""`python -m lab demo`: the main job on the local lab, end to end, narrated.

Boots a box (or reuses the first running one of the image asked for), converges it with
deploys/mail.py, relays one mail to the Mailgun stand-in and shows how it arrived, then runs
the audit. The default box is of the minimal image (no MTA, no ufw): a newcomer sees lockdown
install Postfix and ufw from the lab's package mirror, as on a new VPS; `--image preinstalled`
shows only the configuration.
"""
from __future__ import annotations

import secrets
import subprocess
import sys
import time

from .api import Lab
from .progress import say

LOGIN = "postmaster@mg.lab.test"


def run_demo(lab: Lab, flavor: str = "minimal") -> int:
    """``flavor``: the image of a new box (default minimal: lockdown installs everything)."""
    started = time.monotonic()
    lab.ensure_network()
    lab.ensure_image(flavor=flavor)
    lab.standin_start()
    boxes = [b for b in lab.boxes() if b.flavor == flavor] or lab.up(1, flavor=flavor)
    box = boxes[0]
    password = "demo-" + secrets.token_urlsafe(12)
    lab.standin.set(login=LOGIN, password=password, mode="normal")
    env = {"MAILGUN_SMTP_LOGIN": LOGIN, "MAILGUN_SMTP_PASSWORD": password}
    base = lab.pyinfra_argv(hosts=[box]) + ["-y"]

    what = ("installing Postfix and ufw from the lab's mirror, then " if flavor != "preinstalled"
            else "")
    say(f"1/4 converging {box.name} ({box.ipv4}, {box.suite} {flavor} image): {what}"
        "deploys/mail.py (credentials from env)")
    if _shown(lab.run(base + ["deploys/mail.py"], env=env)) != 0:
        return _fail("the deploy failed (output above)", "fix what it names, then re-run make demo")

    say(f"2/4 sending a mail to root on {box.name}; waiting for the Mailgun stand-in")
    lab.standin.clear()
    subject = f"lockdown demo {time.strftime('%H:%M:%S')}"
    sent = time.monotonic()
    # sendmail, not mail(1): a minimal box has no mailx, Postfix brings sendmail.
    box.root(f"printf 'Subject: {subject}\\n\\ncron would say this\\n' | /usr/sbin/sendmail root")
    messages = lab.standin.wait_for_messages(1, timeout=30)
    if not messages:
        queue = box.root("postqueue -p").stdout
        return _fail(f"no mail arrived within 30 s; queue on the box:\n{queue}",
                     f"look at the box's mail log: python -m lab ssh {box.name} sudo journalctl -t postfix/smtp")
    message = messages[0]
    print(f"    arrived after {time.monotonic() - sent:.2f}s at the stand-in:\n"
          f"      envelope from {message['mail_from']} to {', '.join(message['rcpt_tos'])}\n"
          f"      AUTH login {message['login']}, TLS {'on' if message['tls'] else 'OFF'}, "
          f"port {message['port']}")

    say("3/4 second converge: expect no changes")
    _shown(lab.run(base + ["deploys/mail.py"], env=env), tail=3)

    say("4/4 audit (facts only; outside view from the lab prober)")
    audit = lab.run(base + ["deploys/audit.py"], env=env)
    print(audit.stdout, end="")
    if audit.returncode != 0:
        print(audit.stderr[-2000:], file=sys.stderr)
    say(f"demo done in {time.monotonic() - started:.1f}s; the lab keeps running: "
        f"python -m lab ssh {box.name} | python -m lab status | make lab-down")
    return audit.returncode


def _shown(result: subprocess.CompletedProcess, tail: int = 0) -> int:
    lines = (result.stderr + result.stdout).splitlines()
    print("\n".join("    " + line for line in (lines[-tail:] if tail else lines)))
    return result.returncode


def _fail(what: str, next_step: str) -> int:
    print(f"demo: error: {what}\n  -> {next_step}", file=sys.stderr)
    return 1
