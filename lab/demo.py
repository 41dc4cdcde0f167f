"""`python -m lab demo`: the story lockdown's users start from, on the local lab, narrated.

Default (`--image preinstalled`): a fresh box set up as Debian's "Internet Site" that already
relays through the (stand-in) relay and still listens on 25; relay probers from the lab's
outside addresses; logwatch's report, relayed to the stand-in, full of "Relay access denied".
Then the deploy, the same probers, the next report - printed side by side with the first,
with how each arrived. Then a second converge (no changes) and the audit.

`--image minimal` (or `standard`): a box like a new VPS (no MTA and no ufw, or Debian's
exim4): lockdown installs Postfix and ufw from the lab's package mirror, relays one mail to
the stand-in and shows how it arrived; then the same second converge and audit.
"""
from __future__ import annotations

import secrets
import subprocess
import sys
import time

from .api import Lab
from .progress import say
from .story import LOGWATCH_DATA, StoryRun, postfix_section, run_story

LOGIN = "postmaster@mg.lab.test"
FORWARD = "admin@lab.test"  # mail_root_forward of inventories/lab.py
COLUMN = 62


def run_demo(lab: Lab, flavor: str = "preinstalled") -> int:
    """``flavor``: the image of the demo's box; preinstalled tells the logwatch story, the
    others show lockdown installing everything on a box like a new VPS."""
    started = time.monotonic()
    lab.ensure_network()
    lab.ensure_image(flavor=flavor)
    lab.standin_start()
    if flavor != "preinstalled":
        return _install_demo(lab, flavor, started)
    return _story_demo(lab, started)


def _story_demo(lab: Lab, started: float) -> int:
    for old in [b for b in lab.boxes() if b.flavor == "preinstalled"]:
        # the story starts from a box as installed, not a converged one
        say(f"removing {old.name} (an earlier run's box; the story needs a fresh one)")
        lab.remove_box(old)
    box = lab.add_box(flavor="preinstalled")
    password = "demo-" + secrets.token_urlsafe(12)
    lab.standin.set(login=LOGIN, password=password, mode="normal")
    lab.standin.clear()
    env = {"LOCKDOWN_RELAY_LOGIN": LOGIN, "LOCKDOWN_RELAY_PASSWORD": password}

    say("1/4 the problem, then the deploy, then the same probers again")
    run = run_story(lab, box, env, mailto=FORWARD, progress=lambda text: say(f"    {text}"))
    if run.deploy.returncode != 0:
        _shown(run.deploy)
        return _fail("the deploy failed (output above)", "fix what it names, then re-run make demo")
    if run.before is None or run.after is None:
        return _fail("a logwatch report did not reach the stand-in",
                     f"look at the box's queue: python -m lab ssh {box.name} sudo postqueue -p")

    say("2/4 logwatch's Postfix section, as the relay received each report")
    print_before_after(run)

    base = lab.pyinfra_argv(hosts=[box]) + ["-y"]
    for key, value in LOGWATCH_DATA.items():
        base += ["--data", f"{key}={value}"]
    return _rerun_and_audit(lab, box, base, env, started,
                            f" (the story itself {run.seconds.get('total', 0):.1f}s)")


def _install_demo(lab: Lab, flavor: str, started: float) -> int:
    boxes = [b for b in lab.boxes() if b.flavor == flavor] or lab.up(1, flavor=flavor)
    box = boxes[0]
    password = "demo-" + secrets.token_urlsafe(12)
    lab.standin.set(login=LOGIN, password=password, mode="normal")
    env = {"LOCKDOWN_RELAY_LOGIN": LOGIN, "LOCKDOWN_RELAY_PASSWORD": password}
    base = lab.pyinfra_argv(hosts=[box]) + ["-y"]

    say(f"1/4 converging {box.name} ({box.ipv4}, {box.suite} {flavor} image): installing Postfix "
        "and ufw from the lab's mirror, then deploys/mail.py (credentials from env)")
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
                     f"look at the box's mail log: python -m lab ssh {box.name} "
                     "sudo journalctl -t postfix/smtp")
    message = messages[0]
    print(f"    arrived after {time.monotonic() - sent:.2f}s at the stand-in:\n"
          f"      envelope from {message['mail_from']} to {', '.join(message['rcpt_tos'])}\n"
          f"      AUTH login {message['login']}, TLS {'on' if message['tls'] else 'OFF'}, "
          f"port {message['port']}")
    return _rerun_and_audit(lab, box, base, env, started)


def _rerun_and_audit(lab: Lab, box, base: list[str], env: dict, started: float,
                     extra: str = "") -> int:
    say("3/4 second converge: expect no changes")
    _shown(lab.run(base + ["deploys/mail.py"], env=env), tail=3)

    say("4/4 audit (facts only; outside view from the lab prober)")
    audit = lab.run(base + ["deploys/audit.py"], env=env)
    print(audit.stdout, end="")
    if audit.returncode != 0:
        print(audit.stderr[-2000:], file=sys.stderr)
    say(f"demo done in {time.monotonic() - started:.1f}s{extra}; the lab keeps running: "
        f"python -m lab ssh {box.name} | python -m lab status | make lab-down")
    return audit.returncode


def print_before_after(run: StoryRun) -> None:
    """The two Postfix sections side by side, under how the probers fared and how the
    report arrived."""
    def answered(attempts):
        refused = sum(1 for a in attempts if a["connected"] and not a["accepted"])
        return (f"{refused} of {len(attempts)} answered 'Relay access denied'" if refused else
                f"{sum(1 for a in attempts if not a['connected'])} of {len(attempts)} "
                "got no TCP answer")

    def arrived(message):
        return [f"to {', '.join(message['rcpt_tos'])} via the relay,",
                f"AUTH {message['login']}, TLS {'on' if message['tls'] else 'OFF'}, "
                f"port {message['port']}"]

    left = (["BEFORE: Internet Site, port 25 open", f"probers: {answered(run.before_attempts)}"]
            + arrived(run.before) + [""] + _section_lines(run.before))
    right = (["AFTER: lockdown (logwatch: true)", f"probers: {answered(run.after_attempts)}"]
             + arrived(run.after) + [""] + _section_lines(run.after))
    print()
    for index in range(max(len(left), len(right))):
        one = left[index] if index < len(left) else ""
        other = right[index] if index < len(right) else ""
        print(f"  {one:<{COLUMN}} | {other}".rstrip())
    print()


def _section_lines(message: dict) -> list[str]:
    """The Postfix section, trimmed to the column: summary and detail, no delay table."""
    section = postfix_section(message["data"]) or " (no Postfix section)"
    lines = []
    for line in section.splitlines():
        if line.startswith(" === Delivery Delays"):
            lines.append(" (delivery delay percentiles left out)")
            break
        if line.strip():
            lines.append(line.rstrip()[:COLUMN].rstrip())
    return lines


def _shown(result: subprocess.CompletedProcess, tail: int = 0) -> int:
    lines = (result.stderr + result.stdout).splitlines()
    print("\n".join("    " + line for line in (lines[-tail:] if tail else lines)))
    return result.returncode


def _fail(what: str, next_step: str) -> int:
    print(f"demo: error: {what}\n  -> {next_step}", file=sys.stderr)
    return 1
