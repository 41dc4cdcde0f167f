"""Optional logwatch (host data ``logwatch: True``): its daily report is root's mail, so it
leaves through the relay to ``mail_root_forward`` like cron's, and its Postfix section reads
the systemd journal where the host keeps no mail log file.

A step of ``mail_relay()`` rather than a deploy of its own: the report only arrives through
what mail_relay sets up (root's alias, the relay), the key lives with the relay's in host data,
and a user's deploy file needs no new call. With ``logwatch`` off nothing here runs.

Where the Postfix section reads, decided from what the host has (``facts.logwatch``), never
from a version table: Debian's logwatch (7.7 in Debian 12, 7.12 in Debian 13) reads Postfix
from the `maillog` log group only (Debian's dist.conf: /var/log/mail.log, written by rsyslog),
and both ship the shared ``journalctl`` filter. So: a mail log file exists -> logwatch's stock
reading; the package's own service already reads the journal -> nothing to add; else an
override in /etc/logwatch/conf/services/postfix.conf reads journald's mail facility, keeping
the package's own ``*OnlyService`` selector (logwatch drops a file's ``*`` filters when a
later file defines any, so the override repeats it).
"""
from __future__ import annotations

from .facts.logwatch import LOGWATCH_CONF, LOGWATCH_PACKAGES, POSTFIX_SERVICE_CONF
from .operations import logwatch as logwatch_ops
from .operations import packages
from .plan import if_needed
from .settings import LogwatchSettings, SettingsError

# logwatch, and Date::Manip (its Recommends, which a plain `apt install logwatch` brings): range
# expressions such as --range 'since 24 hours ago' need it, as when comparing with the audit.
CRON_PACKAGE = "cron"  # only when the host has no cron daemon at all (00logwatch is a cron job)
PACKAGES = [*LOGWATCH_PACKAGES, CRON_PACKAGE]  # all it may install (what the lab's mirror carries)
MAIL_TO = "root"  # root's mail: lockdown's alias map sends it to mail_root_forward
JOURNAL_SELECTOR = "--output=short SYSLOG_FACILITY=2"  # syslog-style lines, mail facility
# The package's own Postfix selector in Debian 12 and 13, used only before it is installed.
DEBIAN_ONLY_SERVICE = "(?:post(?:fix|grey|fwd)|policyd-spf)(?:[-/\\w]*)?"
DETAIL_WORDS = {"low": "Low", "med": "Med", "high": "High"}
HEADER = "# Managed by lockdown (host data logwatch*); changes here are overwritten.\n"


def logwatch_conf(settings: LogwatchSettings) -> str:
    """/etc/logwatch/conf/logwatch.conf: only what lockdown sets; the rest is Debian's."""
    lines = [HEADER.rstrip("\n"),
             "# The report is root's mail: it leaves through the relay to mail_root_forward.",
             "Output = mail", "Format = text", f"MailTo = {MAIL_TO}",
             f"Detail = {DETAIL_WORDS.get(settings.detail, settings.detail)}"]
    if list(settings.services) == ["All"]:
        lines.append("# Service: Debian's default (All, less zz-network, zz-sys, eximstats)")
    else:
        lines.append("Service =")  # an empty value starts logwatch's list over
        lines += [f'Service = "{service}"' for service in settings.services]
    return "\n".join(lines) + "\n"


def postfix_source(state: dict) -> str:
    """Where logwatch's Postfix section reads on this host (``state``: the LogwatchState):
    ``file`` (a mail log file exists), ``journal`` (the package reads it itself),
    ``journal-override`` (lockdown's override), or ``none`` (nothing it can read)."""
    if state.get("mail_logs"):
        return "file"
    if state.get("stock_journal"):
        return "journal"
    # Before the install its files cannot be read: Debian's package (12 and 13) ships the
    # filter; the next run's read checks that against the installed files.
    script = state.get("journal_script") or "logwatch" not in (state.get("packages") or {})
    if state.get("journal") and script:
        return "journal-override"
    return "none"


def postfix_override(state: dict) -> str | None:
    """The override file's content, or None when logwatch's own reading is right here."""
    if postfix_source(state) != "journal-override":
        return None
    only_service = state.get("stock_only_service") or DEBIAN_ONLY_SERVICE
    return (
        HEADER
        + "# No mail log file here: Postfix logs only to the journal, so read journald's mail\n"
          "# facility as syslog-style lines (the package's own *OnlyService repeated: logwatch\n"
          "# drops earlier * filters once a later file defines one).\n"
          "LogFile =\nLogFile = none\n"
          f'*JournalCtl = "{JOURNAL_SELECTOR}"\n'
          f'*OnlyService = "{only_service}"\n'
    )


def wanted_packages(state: dict) -> list[str]:
    """logwatch's packages, plus cron when no cron daemon would run the daily report."""
    return list(LOGWATCH_PACKAGES) + ([] if state.get("cron") else [CRON_PACKAGE])


def logwatch_step(settings: LogwatchSettings, state: dict | None, apt_update: bool) -> None:
    """Install and configure logwatch where ``settings.enabled``; nothing at all otherwise.
    ``state``: the ``logwatch`` section of the combined read."""
    if not settings.enabled:
        return
    state = state or {}
    if postfix_source(state) == "none":
        raise SettingsError("logwatch", "this host keeps no mail log file and its logwatch "
                            "cannot read the journal (no journald, or no "
                            "scripts/shared/journalctl)", "Install rsyslog (it writes "
                            "/var/log/mail.log), or set logwatch: false")
    if_needed(packages.installed, name="Install logwatch", packages=wanted_packages(state),
              update=apt_update, current=state.get("packages") or {})
    if_needed(logwatch_ops.conf_file,
              name=f"logwatch: report to {MAIL_TO} (mail_root_forward), detail {settings.detail}",
              path=LOGWATCH_CONF, content=logwatch_conf(settings), current=state.get("conf"))
    # Never removed once written: it stays right if the host later gains a mail log file
    # (the journal still has every line), and a file of the user's is not lockdown's to delete.
    override = postfix_override(state)
    if override is not None:
        if_needed(logwatch_ops.conf_file, name="logwatch: Postfix section reads the journal",
                  path=POSTFIX_SERVICE_CONF, content=override, current=state.get("postfix_conf"))
