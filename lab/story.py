"""The story lockdown's users start from, as lab steps (used by tests/lab/test_logwatch.py and
`make demo`): a VPS whose Postfix was installed as Debian's "Internet Site" and already relays
through the (stand-in) relay, still listening on 25; strangers try to relay through it; the
daily logwatch report, run on the box and relayed like any mail, is full of their rejections.
"""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Callable

from . import addresses as A
from .addresses import GATEWAY_V4
from .errors import LabError

# What Debian's postinst writes for "Internet Site": listens everywhere, delivers locally.
INTERNET_SITE = (
    "cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf && "
    "echo mail.example.net > /etc/mailname && "
    "postconf -e 'alias_maps=hash:/etc/aliases' 'alias_database=hash:/etc/aliases' "
    "'myorigin=/etc/mailname' 'mydestination=$myhostname, localhost.localdomain, localhost' "
    "'relayhost=' 'mynetworks=127.0.0.0/8 [::1]/128' 'inet_interfaces=all' "
    "'inet_protocols=all' && "
    # postinst writes /etc/aliases when it configures a site (trixie's image has none before)
    "{ [ -f /etc/aliases ] || echo 'postmaster: root' > /etc/aliases; } && "
    "newaliases && systemctl restart postfix"
)


def relaying_internet_site(login: str, password: str, relay: str = GATEWAY_V4) -> str:
    """INTERNET_SITE plus what a how-to adds to send through a relay (SASL over STARTTLS):
    the realistic "before" - mail leaves through the relay, port 25 still answers strangers."""
    line = shlex.quote(f"[{relay}]:587 {login}:{password}")
    return (
        f"{INTERNET_SITE} && umask 077 && echo {line} > /etc/postfix/sasl_passwd && "
        "postmap /etc/postfix/sasl_passwd && "
        f"postconf -e 'relayhost=[{relay}]:587' 'smtp_sasl_auth_enable=yes' "
        "'smtp_sasl_password_maps=hash:/etc/postfix/sasl_passwd' "
        "'smtp_sasl_security_options=noanonymous' 'smtp_tls_security_level=encrypt' && "
        "systemctl reload postfix"
    )


# (helo, sender, recipient): the forms relay probers use (from real logwatch reports): a
# freemail sender to a freemail victim, an empty sender, the box's own name as sender, a
# recipient with a source route, a bare IP literal as HELO.
ATTACKS = (
    ("[192.168.2.33]", "test@live.com", "x@yahoo.com"),
    ("prober.example.net", "", "victim@example.org"),
    ("WIN-3UQ1TNA4KNP", "admin@mail.example.net", "spam-target@gmail.com"),
    ("localhost", "<>", "user@[203.0.113.9]"),
)

# The report as such a user has it: logwatch reading Postfix from the journal the way a how-to
# says (by unit; written here independently of lockdown's own override, so the lab checks the
# product instead of echoing it), mailed to their own address.
HOWTO_JOURNAL_OVERRIDE = (
    "mkdir -p /etc/logwatch/conf/services && printf '%s\\n' 'LogFile =' 'LogFile = none' "
    # Debian 12 runs Postfix as postfix@-.service, Debian 13 as postfix.service
    "'*JournalCtl = \"--output=short --unit=postfix@-.service --unit=postfix.service\"' "
    "'*OnlyService = \"postfix/[-\\w]*\"' > /etc/logwatch/conf/services/postfix.conf"
)


def report_command(since: str, mailto: str | None = None) -> str:
    """logwatch's report of everything since ``since`` (``YYYY-MM-DD HH:MM:SS``, box time),
    mailed: to ``mailto``, or as its configuration says (lockdown's: root)."""
    target = f"--mailto {shlex.quote(mailto)}" if mailto else "--output mail"
    return f"logwatch --range {shlex.quote('since ' + since)} {target}"


def box_clock(box) -> str:
    """The box's time, as report_command takes it, from a second in which nothing earlier
    happened (logwatch's window starts at a whole second)."""
    return box.root("sleep 1; date '+%Y-%m-%d %H:%M:%S'").stdout.strip()


def postfix_section(report: str) -> str:
    """The Postfix section of a logwatch report ('' when it has none)."""
    lines = report.splitlines()
    start = [i for i, line in enumerate(lines) if "Postfix Begin" in line]
    end = [i for i, line in enumerate(lines) if "Postfix End" in line]
    return "\n".join(lines[start[0]:end[0] + 1]) if start and end else ""


def attack(lab, box, timeout: float = 5) -> list[dict]:
    """Every ATTACKS form against port 25 from the prober, over IPv4 and then IPv6."""
    results = []
    for address in (box.ipv4, box.ipv6):
        for helo, sender, recipient in ATTACKS:
            attempt = lab.probe.smtp_relay_attempt(address, 25, timeout=timeout, helo=helo,
                                                   sender=sender, recipient=recipient)
            results.append({"address": address, **attempt})
    return results


REPORT_SUBJECT = "Subject: Logwatch for "


def reports(messages: list[dict]) -> list[dict]:
    """The stand-in's messages that are logwatch reports."""
    return [m for m in messages if REPORT_SUBJECT in m["data"]]


def wait_for_report(standin, seen: int, timeout: float = 30) -> dict | None:
    """The next logwatch report after the ``seen`` ones the stand-in already has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = reports(standin.messages())
        if len(found) > seen:
            return found[seen]
        time.sleep(0.3)
    return None


_RELAY_DENIED = re.compile(r"^\s*(\d+)\s+(?:[45]xx|Warn) Reject relay denied\s+[\d.]+%$", re.M)
_CONNECTIONS = re.compile(r"^\s*(\d+)\s+Connections\s+[\d,]+$", re.M)


def relay_denied_count(section: str) -> int:
    """'Relay access denied' rejections in a Postfix section's summary (4xx, 5xx, warn)."""
    return sum(int(n) for n in _RELAY_DENIED.findall(section))


def smtpd_connections(section: str) -> int:
    """smtpd connections the Postfix section counts (0 when it shows none)."""
    return sum(int(n) for n in _CONNECTIONS.findall(section))


# What the deploy adds for the story: logwatch on, client addresses in the report.
LOGWATCH_DATA = {"logwatch": "true", "logwatch_detail": "med"}
BEFORE_DETAIL = "med"  # the user's report, at the same detail, for a fair comparison


@dataclass
class StoryRun:
    before_attempts: list[dict]
    before: dict | None  # the stand-in's copy of the report before the deploy
    deploy: object  # the deploy's CompletedProcess (pyinfra --json on stdout)
    after_attempts: list[dict]
    after: dict | None
    seconds: dict = field(default_factory=dict)  # how long each phase took


def run_story(lab, box, env: dict, mailto: str, data: dict | None = None,
              progress: Callable[[str], None] = lambda text: None) -> StoryRun:
    """The whole story on a fresh ``box``: noisy "before" and its report, the deploy (with
    ``env``'s relay credentials and LOGWATCH_DATA), the same attackers, the quiet report."""
    started = clock = time.monotonic()
    seconds = {}

    def lap(name):
        nonlocal clock
        seconds[name], clock = time.monotonic() - clock, time.monotonic()

    login, password = env["LOCKDOWN_RELAY_LOGIN"], env["LOCKDOWN_RELAY_PASSWORD"]
    progress(f"{box.name}: Postfix as Debian's \"Internet Site\", relaying through the relay "
             "(SASL, STARTTLS), still listening on 25; logwatch reading the journal as a "
             "how-to says")
    _must(box.root(f"{relaying_internet_site(login, password)} && {HOWTO_JOURNAL_OVERRIDE}"),
          "setting up the Internet Site box")
    _until(lambda: lab.probe.tcp_open(box.ipv4, 25), "port 25 to open")
    since = box_clock(box)
    progress(f"relay probers from {A.PROBER_V4} and {A.PROBER_V6} try {len(ATTACKS)} "
             "sender/recipient forms each")
    before_attempts = attack(lab, box)
    lap("before_attacks")
    before = _mail_and_report(lab, box, mailto, report_command(since, mailto)
                              + f" --detail {BEFORE_DETAIL}", progress)
    lap("before_report")
    progress(f"the deploy: deploys/mail.py with logwatch on ({', '.join(f'{k}={v}' for k, v in (data or LOGWATCH_DATA).items())})")
    argv = lab.pyinfra_argv(hosts=[box]) + ["-y", "--json"]
    for key, value in (data or LOGWATCH_DATA).items():
        argv += ["--data", f"{key}={value}"]
    deploy = lab.run(argv + ["deploys/mail.py"], env=env, timeout=300)
    lap("deploy")
    if deploy.returncode != 0:
        return StoryRun(before_attempts, before, deploy, [], None, seconds)
    since = box_clock(box)
    progress("the same relay probers again")
    after_attempts = attack(lab, box, timeout=1)  # refused at TCP: dropped, so keep it short
    lap("after_attacks")
    after = _mail_and_report(lab, box, "root", report_command(since), progress)
    lap("after_report")
    seconds["total"] = time.monotonic() - started
    return StoryRun(before_attempts, before, deploy, after_attempts, after, seconds)


def _mail_and_report(lab, box, mailto: str, command: str, progress) -> dict | None:
    """A day's ordinary mail (cron's), then the report; returns the report as it arrived."""
    seen_reports = len(reports(lab.standin.messages()))
    seen = len(lab.standin.messages())
    _must(box.root(f"echo 'backup finished' | mail -s 'cron: backup' {shlex.quote(mailto)}"),
          "sending cron's mail")
    _until(lambda: len(lab.standin.messages()) > seen, "cron's mail to reach the relay")
    progress(f"logwatch's report, mailed on the box: {command}")
    _must(box.root(command), "running logwatch")
    return wait_for_report(lab.standin, seen_reports)


def _must(result, what: str):
    if result.returncode != 0:
        raise LabError(f"{what} failed on the box", "read its output below",
                       detail=(result.stdout + result.stderr)[-2000:])
    return result


def _until(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(f"timed out waiting for {what}", "look at the box: python -m lab ssh")
        time.sleep(0.3)
