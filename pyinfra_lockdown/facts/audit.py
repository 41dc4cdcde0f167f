"""
Facts only the audit needs: relay noise in the journal and the state of the mail queue.

Same rules as the other granular facts (see docs/design.md): one read-only command each,
exit 0 in every normal state, absence printed as a status line, counts computed on the host
(a flooded journal must not travel over SSH line by line). Read as root (``_sudo=True``):
the journal and the Postfix queue are root-only.
"""
from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override
from ..remote import script
from .postfix import MAIN_CF, MAIN_CF_WRITTEN, SMTP_PORTS

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["RelayNoise", "MailQueue", "RelayLastAttempt", "SmtpProbe"]

POSTQUEUE = "/usr/sbin/postqueue"
DEFERRED_DIR = "/var/spool/postfix/deferred"

# Postfix's own lines only: its daemons (smtpd, smtp, error, cleanup, qmgr, bounce) run as the
# postfix user, and journald takes _UID from the kernel's credentials of the sender, which no
# other local user can fake. A syslog identifier is whatever the sender says:
# `logger -t postfix/smtp ... status=sent` by any user would fake a verdict, the noise counts or
# the canary. (A mail log FILE written by rsyslog cannot tell them apart: the journal is read
# where there is one.)
POSTFIX_UID = '_UID="$(id -u postfix 2>/dev/null || echo none)"'


def postfix_journal(options: str, *identifiers: str) -> str:
    """A journalctl command for lines of these Postfix programs, written by Postfix itself."""
    return (f"journalctl -q --no-pager {options} {POSTFIX_UID} "
            + " ".join(f"-t {identifier}" for identifier in identifiers))


NOISE_KEYS = ("relay_denied", "relay_denied_since_converge", "connects",
              "connects_since_converge")

# Counts smtpd lines from `journalctl -o short-unix` (first field: epoch seconds). "Since
# converge" = at or after main.cf's last write (its mtime, or the real time lockdown kept).
# `connect from NAME[ADDR]` from loopback is local software (cron's sendmail does not connect;
# health checks may) and is not noise.
_NOISE_AWK = (
    "awk -v c=\"$conv\" '"
    "{ t = $1 + 0 } "
    "/Relay access denied/ { rd++; if (t >= c) rdn++ } "
    "match($0, / connect from [^ ]*\\[[^]]*\\]/) { "
    "a = substr($0, RSTART, RLENGTH); sub(/.*\\[/, \"\", a); sub(/\\]$/, \"\", a); "
    "if (a !~ /^(127\\.|::1$|::ffff:127\\.)/) { cn++; if (t >= c) cnn++; last = a } } "
    "END { printf \"relay_denied: %d\\nrelay_denied_since_converge: %d\\n"
    "connects: %d\\nconnects_since_converge: %d\\nlast_client: %s\\n\", "
    "rd, rdn, cn, cnn, (last == \"\" ? \"-\" : last) }'"
)


def _key_values(output: list[str], fact: str) -> dict[str, str]:
    values = {}
    for line in output:
        key, separator, value = line.partition(":")
        if not separator:
            raise FactProcessError(f"{fact}: cannot parse line {line!r}")
        values[key.strip()] = value.strip()
    return values


def _int(values: dict, key: str, fact: str) -> int | None:
    value = values.get(key)
    if value in (None, "", "-", "none"):
        return None
    try:
        return int(float(value))
    except ValueError:
        raise FactProcessError(f"{fact}: {key} is not a number: {value!r}") from None


class RelayNoise(FactBase[dict[str, Any]]):
    """
    Counts Postfix smtpd noise in the journal over the last ``hours`` hours, and since the
    last converge (the mtime of /etc/postfix/main.cf):

    .. code:: python

        {
            "journal": True,            # False: no journalctl (counts are None)
            "hours": 24,
            "now": 1764163440,          # host clock, epoch seconds
            "converged_at": 1764160000, # main.cf mtime; None when main.cf is missing
            "relay_denied": 3, "relay_denied_since_converge": 0,
            "connects": 5, "connects_since_converge": 0,   # non-loopback `connect from`
            "last_client": "203.0.113.9",                   # None when there was none
        }
    """

    @override
    def command(self, hours: int = 24) -> str:
        hours = int(hours)
        return (
            f"echo \"now: $(date +%s)\"; echo 'hours: {hours}'; "
            # the later of main.cf's mtime (backdated 2 s by lockdown) and its real write time
            f"conv=$(stat -c %Y {MAIN_CF} {MAIN_CF_WRITTEN} 2>/dev/null "
            "| awk 'NR == 1 || $1 > m {m = $1} END {if (NR) print m}'); "
            "[ -n \"$conv\" ] || conv=none; echo \"converged_at: $conv\"; "
            "[ \"$conv\" = none ] && conv=0; "
            # with maillog_file Postfix logs nothing to the journal: no count to make there
            "if [ -z \"$(postconf -h maillog_file 2>/dev/null)\" ] "
            "&& command -v journalctl >/dev/null 2>&1; then echo 'journal: yes'; "
            f"{postfix_journal(f'-o short-unix --since -{hours}h', 'postfix/smtpd')} "
            f"2>/dev/null | {_NOISE_AWK}; "
            "else echo 'journal: no'; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        values = _key_values(output, "RelayNoise")
        if values.get("journal") not in ("yes", "no"):
            raise FactProcessError(f"RelayNoise: missing journal status line: {output[:3]!r}")
        journal = values["journal"] == "yes"
        result: dict[str, Any] = {
            "journal": journal,
            "hours": _int(values, "hours", "RelayNoise"),
            "now": _int(values, "now", "RelayNoise"),
            "converged_at": _int(values, "converged_at", "RelayNoise"),
            "last_client": None,
        }
        for key in NOISE_KEYS:
            result[key] = _int(values, key, "RelayNoise") if journal else None
        if journal:
            client = values.get("last_client", "-")
            result["last_client"] = None if client in ("", "-") else client
        return result


class MailQueue(FactBase[dict[str, Any]]):
    """
    The Postfix queue: how many messages wait, how many are deferred, the oldest deferred
    one's arrival time and its delay reason (which never contains a secret):

    .. code:: python

        {
            "source": "postqueue",   # "spool" (Postfix not running: files only, no ages)
                                     # or "not-installed"
            "now": 1764163440,
            "total": 2, "deferred": 1,
            "oldest_arrival": 1764160000,   # None: no deferred mail, or unknown (spool)
            "reason": "SASL authentication failed; ...",
        }

    ``postqueue -j`` (one JSON object per message) is summarized by awk on the host. Deferred
    queue files' mtimes are Postfix's next-retry times, not ages, hence postqueue.
    """

    @override
    def command(self) -> str:
        return (
            "echo \"now: $(date +%s)\"; "
            f"if [ ! -x {POSTQUEUE} ]; then echo 'source: not-installed'; "
            f"elif out=$({POSTQUEUE} -j 2>/dev/null); then echo 'source: postqueue'; "
            "printf '%s\\n' \"$out\" | awk '"
            "NF { n++ } "
            "/\"queue_name\": *\"deferred\"/ { d++; "
            "if (match($0, /\"arrival_time\": *[0-9]+/)) { "
            "t = substr($0, RSTART, RLENGTH); sub(/.*: */, \"\", t); t += 0; "
            "if (o == \"\" || t < o) { o = t; r = \"\"; "
            "if (match($0, /\"delay_reason\": *\"[^\"]*\"/)) { "
            "r = substr($0, RSTART, RLENGTH); sub(/^\"delay_reason\": *\"/, \"\", r); "
            "sub(/\"$/, \"\", r); r = substr(r, 1, 160) } } } } "
            "END { printf \"total: %d\\ndeferred: %d\\noldest_arrival: %s\\nreason: %s\\n\", "
            "n, d, (o == \"\" ? \"none\" : o), r }'; "
            "else echo 'source: spool'; "
            f"echo \"deferred: $(find {DEFERRED_DIR} -type f 2>/dev/null | wc -l)\"; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        values = _key_values(output, "MailQueue")
        source = values.get("source")
        if source not in ("postqueue", "spool", "not-installed"):
            raise FactProcessError(f"MailQueue: unexpected source line: {output[:3]!r}")
        return {
            "source": source,
            "now": _int(values, "now", "MailQueue"),
            "total": _int(values, "total", "MailQueue"),
            "deferred": _int(values, "deferred", "MailQueue"),
            "oldest_arrival": _int(values, "oldest_arrival", "MailQueue"),
            "reason": values.get("reason") or None,
        }


class RelayLastAttempt(FactBase[dict[str, Any]]):
    """
    Postfix's last delivery attempt towards the relay in the last ``hours`` hours, from its
    own log (the journal; else ``maillog_file`` or /var/log/mail.log): the newest
    ``postfix/smtp`` or ``postfix/error`` line with a ``status=``. Postfix never logs the
    password.

    .. code:: python

        {
            "log": "journal",       # "file", or None: no log to read
            "at": 1764163440,       # epoch seconds (journal only; None from a file)
            "status": "deferred",   # sent | deferred | bounced | expired; None: no attempt
            "relay": "10.77.0.1[10.77.0.1]:587",
            "reason": "SASL authentication failed; ...",
            "relays": {"smtp.mailgun.org": {"at": ..., "status": ..., "relay": ..., "reason": ...}},
        }

    ``relays``: the newest attempt per relay host (lower case; fallback relays are audited
    each on its own), from the same lines.
    """

    @override
    def command(self, hours: int = 24) -> str:
        hours = int(hours)
        return (
            "lf=$(postconf -h maillog_file 2>/dev/null || true); "
            "if [ -z \"$lf\" ] && command -v journalctl >/dev/null 2>&1 "
            "&& [ -d /run/systemd/journal ]; then echo 'log: journal'; "
            + postfix_journal(f"-o short-unix --since -{hours}h", "postfix/smtp", "postfix/error")
            + " "
            f"2>/dev/null | {_LAST_PER_RELAY}; "
            "else [ -n \"$lf\" ] || lf=/var/log/mail.log; "
            "if [ -r \"$lf\" ]; then echo 'log: file'; "
            "grep -E 'postfix/(smtp|error)\\[' \"$lf\" "
            f"| {_LAST_PER_RELAY}; else echo 'log: none'; fi; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        values, per_relay = {}, []
        for line in output:
            key, _, value = line.partition(": ")
            if key.strip() == "relay_line":
                per_relay.append(value)
            else:
                values[key.strip()] = value
        log = values.get("log")
        if log not in ("journal", "file", "none"):
            raise FactProcessError(f"RelayLastAttempt: missing log line: {output[:2]!r}")
        epoch = log == "journal"
        relays = {}
        for line in per_relay:
            parsed = _attempt(line, epoch)
            if parsed["relay"]:
                relays[relay_host_of(parsed["relay"])] = parsed
        return {"log": None if log == "none" else log,
                **parse_delivery_line(values.get("line", ""), epoch=epoch), "relays": relays}


# A relay that fails while a fallback takes the mail leaves no status= line of its own, only
# the smtp client's word on the attempt ("host H[A] refused to talk to me: 421 ...", "connect
# to H[A]:587: Connection refused", "SASL authentication failed; server H[A] said: ..."): the
# attempt lines are those and the status= lines.
_FAILED_ATTEMPT = (r"(host|server|connect to|lost connection with|conversation with"
                   r"|verification failed for) [^ \[]+\[")
# The newest status= line (`line:`) and the newest attempt line per relay host (`relay_line:`);
# other lines are passed over (no grep before it: a process less on the audit's read).
_LAST_PER_RELAY = (
    "awk '{ if ($0 ~ / status=/) { final = $0; "
    "if (match($0, / relay=[^,[]*/)) last[tolower(substr($0, RSTART + 7, RLENGTH - 7))] = $0 } "
    f"else if (match($0, /{_FAILED_ATTEMPT}/)) {{ h = substr($0, RSTART, RLENGTH - 1); "
    "sub(/^.* /, \"\", h); last[tolower(h)] = $0 } } "
    "END { if (final != \"\") print \"line: \" final; "
    "for (r in last) print \"relay_line: \" last[r] }'"
)
_FAILED = re.compile(r"(?:^|\s)(?:[0-9A-Za-z]+: )?(?P<reason>.*?\b(?:host|server|connect to|lost "
                     r"connection with|conversation with|verification failed for) "
                     r"(?P<relay>[^\s\[]+\[[^\]]*\](?::[0-9]+)?).*)$")


def _attempt(line: str, epoch: bool) -> dict:
    """A status= line, or a failed attempt without one (status ``deferred``, its text the
    reason)."""
    parsed = parse_delivery_line(line, epoch=epoch)
    if parsed["status"] is not None:
        return parsed
    found = _FAILED.search(line.split(": ", 1)[1] if ": " in line else line)
    if not found:
        return parsed
    at = _epoch(line) if epoch else None
    reason = found["reason"].split(": ", 1)[1] if re.match(r"[0-9A-Za-z]+: ", found["reason"]) \
        else found["reason"]
    return {"at": at, "status": "deferred", "relay": found["relay"].rstrip(":"), "reason": reason}


def relay_host_of(relay_field: str) -> str:
    """``relay2.lab.test[10.77.0.3]:587`` -> ``relay2.lab.test`` (lower case)."""
    return relay_field.partition("[")[0].lower()


_DELIVERY = re.compile(r"\brelay=(?P<relay>[^,]+),.*\bstatus=(?P<status>[a-z]+)"
                       r"(?: \((?P<reason>.*)\))?")


def _epoch(line: str) -> int | None:
    """The epoch seconds a ``journalctl -o short-unix`` line starts with."""
    try:
        return int(float(line.split(None, 1)[0]))
    except (ValueError, IndexError):
        return None


def parse_delivery_line(line: str, epoch: bool = True) -> dict:
    """One Postfix delivery line -> at/status/relay/reason (all None for no line)."""
    found = _DELIVERY.search(line or "")
    if not found:
        return {"at": None, "status": None, "relay": None, "reason": None}
    return {"at": _epoch(line) if epoch else None, "status": found["status"],
            "relay": found["relay"],
            "reason": found["reason"]}


# The outside probe's connect timeout, one for all ports and addresses of all hosts (they are
# probed at once). A handshake needs one round trip; the longest terrestrial internet paths
# (e.g. South America - South-East Asia) measure ~300-350 ms, so 0.4 s still tells "dropped"
# from "far away". Not waited for: a lost SYN's retransmission (Linux: after 1 s), so on a
# lossy path a port may read filtered for one run; a GEO satellite path (>= 550 ms) is too
# slow: probe from a terrestrial VPS.
PROBE_CONNECT_TIMEOUT = 0.4

# What the probe host runs: pyinfra_lockdown/remote/probe.py.


class SmtpProbe(FactBase[list[dict[str, Any]] | None]):
    """
    From this host, which target addresses accept TCP on 25/465/587, and does an SMTP relay
    attempt succeed there? Needs python3 on the probe host.

    .. code:: python

        [{"address": "198.51.100.7", "port": 25, "open": False, "error": "TimeoutError: ...",
          "relay": None}]   # relay: {"accepted": bool, "rcpt": [code, text], "error": ...}

    + addresses: the target addresses to probe

    ``None`` when python3 is missing on the probe host.
    """

    @override
    def command(self, addresses: tuple[str, ...] | list[str] = ()) -> str:
        import shlex

        quoted = " ".join(shlex.quote(str(a)) for a in addresses)
        ports = ",".join(str(p) for p in SMTP_PORTS)
        return (
            "if command -v python3 >/dev/null 2>&1; then echo 'python3: yes'; "
            f"python3 -c {shlex.quote(script('probe.py'))} "
            f"{PROBE_CONNECT_TIMEOUT} {ports} {quoted}; "
            "else echo 'python3: missing'; fi"
        )

    @override
    def process(self, output: list[str]) -> list[dict[str, Any]] | None:
        return probe_results(output, "SmtpProbe")


def probe_results(output: list[str], fact: str) -> list[dict[str, Any]] | None:
    """remote/probe.py's JSON lines after the python3 line; ``None`` without python3."""
    import json

    if not output or output[0] not in ("python3: yes", "python3: missing"):
        raise FactProcessError(f"{fact}: unexpected output {output[:1]!r}")
    if output[0] == "python3: missing":
        return None
    try:
        return [json.loads(line) for line in output[1:]]
    except ValueError as error:
        raise FactProcessError(f"{fact}: {error}") from None
