"""The story lockdown's users start from, as lab steps (used by tests/lab/test_logwatch.py and
`make demo`): a VPS whose Postfix was installed as Debian's "Internet Site" and already relays
through the (stand-in) relay, still listening on 25; strangers try to relay through it; the
daily logwatch report, run on the box and relayed like any mail, is full of their rejections.
"""
from __future__ import annotations

import re
import shlex
import time

from .addresses import GATEWAY_V4

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
    """The box's time now, as report_command takes it."""
    return box.root("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()


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
_CONNECTIONS = re.compile(r"^\s*(\d+)\s+Connections\b", re.M)


def relay_denied_count(section: str) -> int:
    """'Relay access denied' rejections in a Postfix section's summary (4xx, 5xx, warn)."""
    return sum(int(n) for n in _RELAY_DENIED.findall(section))


def smtpd_connections(section: str) -> int:
    """smtpd connections the Postfix section counts (0 when it shows none)."""
    return sum(int(n) for n in _CONNECTIONS.findall(section))
