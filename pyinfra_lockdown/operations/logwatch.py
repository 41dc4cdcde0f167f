"""A small config file lockdown owns outright (logwatch's, the mail log's rotation timer),
written only when it differs."""
import hashlib

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation

from .._typing import Commands
from ..facts.logwatch import LOGWATCH_CONF, POSTFIX_SERVICE_CONF, LogwatchState
from ..facts.postfix import LOGWATCH_MAILLOG_CONF, MAIL_LOG_ROTATE_SERVICE, MAIL_LOG_ROTATE_TIMER

# The operations; the other public names are helpers the package's deploys and audit share.
__all__ = ["conf_file"]

# Content over stdin into a temp file beside the target, then renamed: never half-written.
_WRITE_SCRIPT = (
    'set -e; d=$(dirname "$1"); mkdir -p "$d"; t=$(mktemp "$d/.lockdown.XXXXXX"); '
    "trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; chmod 644 \"$t\"; mv -f \"$t\" \"$1\""
)
STATE_KEYS = {LOGWATCH_CONF: "conf", POSTFIX_SERVICE_CONF: "postfix_conf"}
# Files whose state the caller always passes (facts.postfix.MailLogFiles).
PASSED_STATE = (MAIL_LOG_ROTATE_SERVICE, MAIL_LOG_ROTATE_TIMER, LOGWATCH_MAILLOG_CONF)


@operation()
def conf_file(path: str, content: str, current: str | None = "read") -> Commands:
    """
    Write ``path`` (root, 0644) with ``content`` unless its SHA-256 already matches.

    + path: one of the files lockdown owns (``STATE_KEYS``, ``PASSED_STATE``)
    + content: the whole file
    + current: SHA-256 of the file now (``None``: missing); read when not given
    """
    if path not in STATE_KEYS and path not in PASSED_STATE:
        raise OperationValueError(f"conf_file manages only "
                                  f"{', '.join((*STATE_KEYS, *PASSED_STATE))}, not {path!r}")
    if current == "read" and path in PASSED_STATE:
        raise OperationValueError(f"conf_file: pass current= for {path}")
    if current == "read":
        current = host.get_fact(LogwatchState)[STATE_KEYS[path]]
    text = content if content.endswith("\n") else content + "\n"
    if current == hashlib.sha256(text.encode()).hexdigest():
        host.noop(f"{path} is up to date")
        return
    yield StringCommand("sh", "-c", QuoteString(_WRITE_SCRIPT), "lockdown-conf", QuoteString(path),
                        _stdin=text)
