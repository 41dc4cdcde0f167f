"""What logwatch on this host is, has and reads: packages, lockdown's two config files, the
package's own Postfix service definition, and which mail log (a file, or only the journal) it
would find. Read as part of the one combined read (facts/host_state.py)."""
from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["LogwatchState"]

LOGWATCH_PACKAGES = ("logwatch", "libdate-manip-perl")
LOGWATCH_CONF = "/etc/logwatch/conf/logwatch.conf"
POSTFIX_SERVICE_CONF = "/etc/logwatch/conf/services/postfix.conf"
_SHARE = "/usr/share/logwatch"
# Later files override earlier ones, as logwatch reads them (default.conf, dist.conf, /etc).
STOCK_POSTFIX_CONFS = (f"{_SHARE}/default.conf/services/postfix.conf",
                       f"{_SHARE}/dist.conf/services/postfix.conf")
MAILLOG_CONFS = (f"{_SHARE}/default.conf/logfiles/maillog.conf",
                 f"{_SHARE}/dist.conf/logfiles/maillog.conf",
                 "/etc/logwatch/conf/logfiles/maillog.conf")
JOURNAL_SCRIPT = f"{_SHARE}/scripts/shared/journalctl"
LOG_DIR = "/var/log"
CRON_DAEMONS = ("/usr/sbin/cron", "/usr/sbin/anacron", "/usr/sbin/crond")

# The maillog group's effective LogFile list (an empty `LogFile =` starts it over), each one
# that exists and is not empty printed as `mail_log: PATH`. Before logwatch is installed there
# is no list to read: then /var/log/mail.log, the one Debian's dist.conf names.
_MAIL_LOGS = (
    # awk reads the readable ones itself (no cat; without any, the stock default)
    "r=; for f in " + " ".join(MAILLOG_CONFS) + "; do [ -r \"$f\" ] && r=\"$r $f\"; done; "
    "{ [ -n \"$r\" ] || echo 'LogFile = mail.log'; } | "
    "awk -F= 'tolower($1) ~ /^[ \\t]*logfile[ \\t]*$/ { v = $2; "
    "gsub(/^[ \\t\"]+|[ \\t\"]+$/, \"\", v); "
    "if (v == \"\") n = 0; else l[++n] = v } END { for (i = 1; i <= n; i++) print l[i] }' "
    "${r:--} | "
    f"while read -r f; do case \"$f\" in /*) p=\"$f\";; *) p=\"{LOG_DIR}/$f\";; esac; "
    "[ -s \"$p\" ] && echo \"mail_log: $p\"; done"
)


def _sha(label: str, path: str) -> str:
    quoted = shlex.quote(path)
    return (f"if [ -f {quoted} ]; then "
            f"h=$(sha256sum < {quoted}); echo \"{label}: ${{h%% *}}\"; "
            f"else echo '{label}: missing'; fi")


class LogwatchState(FactBase[dict[str, Any]]):
    """
    Returns logwatch's state on the host:

    .. code:: python

        {
            "packages": {"logwatch": "7.7-1", "libdate-manip-perl": "6.91-1"},  # installed ones
            "conf": "5b1c...",          # sha256 of /etc/logwatch/conf/logwatch.conf, or None
            "postfix_conf": None,        # sha256 of /etc/logwatch/conf/services/postfix.conf
            "stock_journal": False,      # the package's postfix service already reads journald
            "stock_only_service": "(?:post(?:fix|grey|fwd)|policyd-spf)(?:[-/\\\\w]*)?",
            "journal_script": True,      # scripts/shared/journalctl (the *JournalCtl filter)
            "journal": True,             # journalctl present and journald running
            "mail_logs": [],             # mail log files the stock maillog group would read
            "cron": True,                # a cron daemon runs /etc/cron.daily/00logwatch
        }
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    @override
    def command(self) -> str:
        packages = " ".join(LOGWATCH_PACKAGES)
        stock = " ".join(STOCK_POSTFIX_CONFS)
        return "; ".join((
            f"dpkg-query -W -f 'package: ${{Package}} ${{Version}} ${{db:Status-Status}}\\n' "
            f"{packages} 2>/dev/null",
            _sha("conf", LOGWATCH_CONF),
            _sha("postfix_conf", POSTFIX_SERVICE_CONF),
            # the stock service's own lines, in logwatch's reading order (only the ones we use)
            f"grep -hiE '^[[:space:]]*(\\*journalctl|\\*onlyservice|logfile)[[:space:]]*=' {stock} "
            "2>/dev/null | sed 's/^[[:space:]]*/stock: /'",
            f"[ -x {JOURNAL_SCRIPT} ] && echo 'journal_script: yes' || echo 'journal_script: no'",
            "{ command -v journalctl >/dev/null 2>&1 && [ -d /run/systemd/journal ]; } "
            "&& echo 'journal: yes' || echo 'journal: no'",
            _MAIL_LOGS,
            " || ".join(f"[ -x {d} ]" for d in CRON_DAEMONS)
            + " && echo 'cron: yes' || echo 'cron: no'",
        ))

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {"packages": {}, "conf": None, "postfix_conf": None,
                                 "stock_journal": False,
                 "stock_only_service": None, "journal_script": False, "journal": False,
                 "mail_logs": [], "cron": False}
        stock_logfiles: list[str] = []
        seen = set()
        for line in output:
            key, sep, value = line.partition(": ")
            if not sep:
                raise FactProcessError(f"LogwatchState: cannot parse line {line!r}")
            seen.add(key)
            if key == "package":
                parts = value.split()
                if len(parts) == 3 and parts[2] == "installed":
                    state["packages"][parts[0]] = parts[1]
            elif key in ("conf", "postfix_conf"):
                state[key] = None if value == "missing" else value
            elif key == "stock":
                name, _, setting = value.partition("=")
                name, setting = name.strip().lower(), _unquote(setting)
                if name == "logfile":
                    stock_logfiles = [] if not setting else stock_logfiles + [setting]
                elif name == "*journalctl":
                    state["stock_journal"] = True
                elif name == "*onlyservice":
                    state["stock_only_service"] = setting
            elif key in ("journal_script", "journal", "cron"):
                state[key] = value == "yes"
            elif key == "mail_log":
                state["mail_logs"].append(value)
            else:
                raise FactProcessError(f"LogwatchState: unexpected line {line!r}")
        if not {"conf", "postfix_conf", "journal", "cron"} <= seen:
            raise FactProcessError(f"LogwatchState: incomplete output: {output[:4]!r}")
        # A stock service reads the journal only with LogFile = none and a *JournalCtl filter.
        state["stock_journal"] = state["stock_journal"] and stock_logfiles[-1:] == ["none"]
        return state


def _unquote(text: str) -> str:
    text = text.strip()
    return re.sub(r'^"(.*)"$', r"\1", text)
