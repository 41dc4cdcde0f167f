"""The relay canary: after a converge changed the relay path, prove one message leaves.

One remote command (``canary_script``) submits a small message through the local Postfix
(``sendmail -t``, a ``X-Lockdown-Canary: <id>`` header and a Message-ID carrying the id),
finds its queue id in Postfix's own log (the journal, or ``maillog_file``/``/var/log/mail.log``
where that is what the host has), follows that queue id until Postfix logs ``status=sent``,
a deferral or a bounce, or the time limit passes; a canary still queued then is removed
(``postsuper -d`` of that queue id only, found by its header). It prints machine-readable
``lockdown-canary key=value`` lines. ``parse_result`` reads them and ``diagnose`` (pure) turns
the relay's last word into one message naming the cause and the fix.

Nothing secret is part of the command or its output: the recipient, the id and Postfix's log
lines (Postfix never logs the SASL password).
"""
from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from pyinfra import logger
from pyinfra.api import Host, State, StringCommand

from . import remote
from .fallback import canary_sender, relay_label
from .relay_causes import relay_cause
from .settings import FallbackRelay, RelaySettings

PREFIX = "lockdown-canary"
# SES SMTP credentials are bound to one region (docs.aws.amazon.com, smtp-credentials)
SES_REGION_HINT = (" (Amazon SES: SMTP credentials work only in the region they were created in; "
                   "check relay_region)")



def new_id() -> str:
    return secrets.token_hex(6)


def canary_script(canary_id: str, recipient: str, seconds: int,
                  sender: str = "root") -> StringCommand:
    """The one shell command that submits and follows the canary (nothing secret in it).
    ``sender``: the envelope sender, which picks the route (``fallback.canary_sender``)."""
    if not re.fullmatch(r"[0-9a-f]{6,32}", canary_id):
        raise ValueError(f"bad canary id {canary_id!r}")
    if not re.fullmatch(r"[a-z0-9-]+", sender):
        raise ValueError(f"bad canary sender {sender!r}")
    args = " ".join(shlex.quote(str(a)) for a in (canary_id, recipient, int(seconds), sender))
    script = remote.script("canary.sh")
    return StringCommand(f"sh -c {shlex.quote(script)} lockdown-canary {args}")


@dataclass(frozen=True)
class CanaryResult:
    result: str  # sent | deferred | bounced | expired | timeout | submit-failed | unknown
    queue_id: str | None = None
    line: str = ""  # "<rcpt>, relay=..., status=... (reason)"
    last: str = ""  # the last log line about the canary when no verdict came
    removed: tuple[str, ...] = ()
    log: str = ""

    @property
    def reason(self) -> str:
        """Postfix's reason: the parenthesis after status=..., else the last line it logged."""
        match = re.search(r"status=[a-z]+ \((.*)\)\s*$", self.line)
        if match:
            return match.group(1)
        if self.line:
            return self.line
        # qmgr's "from=<...>, size=..., nrcpt=1 (queue active)" says nothing about the relay
        return "" if self.last.startswith(("from=", "message-id=")) else self.last


def parse_result(lines: Iterable[str]) -> CanaryResult:
    values: dict[str, str] = {}
    removed = []
    for line in lines:
        head, _, rest = str(line).strip().partition(" ")
        if head != PREFIX:
            continue
        key, _, value = rest.partition("=")
        if key == "removed":
            removed.append(value)
        else:
            values.setdefault(key, value)
    queue_id = values.get("queue_id")
    return CanaryResult(result=values.get("result", "unknown"),
                        queue_id=None if queue_id in (None, "unknown") else queue_id,
                        line=values.get("line", ""), last=values.get("last", ""),
                        removed=tuple(removed), log=values.get("log", ""))


def diagnose(result: CanaryResult, relay: RelaySettings | FallbackRelay, seconds: int,
             label: str | None = None) -> str:
    """One line: what went wrong with the canary, from Postfix's own words, and the fix.
    ``label``: how to name the relay (default: its relayhost)."""
    reason = result.reason
    where = f"via {label or relay.relayhost}"
    queued = f" (queue id {result.queue_id}, removed from the queue)" if result.removed else ""
    if result.result == "submit-failed":
        return ("relay canary: the local Postfix refused the message (sendmail failed); "
                "run `postfix check` and read the mail log")
    cause = relay_cause(reason)
    if cause is not None:
        what, fix = cause.text(port=relay.port, mailgun=relay.provider == "mailgun")
        if cause.id == "auth_failed" and relay.provider == "ses":
            fix += SES_REGION_HINT
        return (f"relay canary not delivered {where}: {what}{queued}; fix: {fix}. "
                f"Postfix said: {reason}")
    if result.result == "timeout":
        said = f" Postfix last said: {reason}" if reason else ""
        return (f"relay canary not delivered {where}: no answer from the relay within {seconds} s"
                f"{queued}; fix: the network may filter port {relay.port} (try relay_port "
                f"2525), or raise relay_canary_seconds.{said}")
    return (f"relay canary not delivered {where}: {result.result}{queued}; Postfix said: "
            f"{reason or 'nothing about it'}")


def run(state: State, host: Host, relay: RelaySettings, recipient: str, seconds: int) -> bool:
    """python.call body: one canary per relay (the relay, then each fallback, each forced
    through its own relay), one remote command each; False (the host fails) with one message
    per relay that did not take its canary."""
    if not relay.fallbacks:
        return _one(state, host, relay, recipient, seconds, "root", relay.relayhost)
    results = [_one(state, host, one, recipient, seconds, canary_sender(index),
                    relay_label(index, one)) for index, one in enumerate(relay.all_relays)]
    return all(results)


def _one(state: State, host: Host, relay: RelaySettings | FallbackRelay, recipient: str,
         seconds: int,
         sender: str, label: str) -> bool:
    canary_id = new_id()
    ok, output = host.run_shell_command(
        canary_script(canary_id, recipient, seconds, sender),
        print_output=state.print_output, print_input=state.print_input, _sudo=True,
        _timeout=seconds + 60,
    )
    result = parse_result(line.line for line in output if line.buffer_name == "stdout")
    if ok and result.result == "sent":
        host.log_styled(f"relay canary delivered via {label} "
                        f"(queue id {result.queue_id})", fg="green", log_func=logger.info)
        return True
    host.log_styled(diagnose(result, relay, seconds, label), fg="red", log_func=logger.error)
    return False
