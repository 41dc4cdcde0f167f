"""A mail log where users look (host data ``mail_log: file``): on a host where no syslog daemon
writes /var/log/mail.log (Debian 12/13 cloud images log to the journal only), Postfix writes it
itself: ``maillog_file`` through the ``postlog`` service (``postlogd``, Postfix >= 3.4, in
Debian's master.cf already), rotated by ``postfix logrotate`` from a weekly systemd timer (no
logrotate package needed; the timer also deletes rotated files older than five weeks). Where
rsyslog or syslog-ng runs, its mail.log is where users look already: nothing changes.

Postfix then no longer logs to the journal: the canary and the audit read ``maillog_file``
(they ask ``postconf -h maillog_file``), and logwatch reads the file through its stock
``maillog`` group, which names /var/log/mail.log.
"""
from __future__ import annotations

from pyinfra.operations import server

from .facts.host_state import HostState
from .facts.postfix import (
    LOGWATCH_MAILLOG_CONF,
    MAIL_LOG,
    MAIL_LOG_ROTATE_SERVICE,
    MAIL_LOG_ROTATE_TIMER,
    MAIL_LOG_ROTATE_UNIT,
    SYSLOG_DAEMONS,
)
from .operations import logwatch as owned_files
from .operations import postfix
from .plan import if_needed
from .settings import RelaySettings

POSTLOG_ENTRY = "postlog unix-dgram n - n - 1 postlogd"
# Debian's mail.log (rsyslog's) is root:adm 0640: it names every sender and recipient. postlogd
# keeps an existing file's mode; the one it creates after a rotation is 0644 on Postfix < 3.9.
LOG_OWNER, LOG_MODE = "root:adm", "640"
KEEP_DAYS = 35
HEADER = "# Managed by lockdown (host data mail_log: file); changes here are overwritten.\n"


def writes_file(relay: RelaySettings, packages: dict | None) -> bool:
    """Whether Postfix should write the mail log itself on a host with these ``packages``."""
    return relay.mail_log == "file" and not set(SYSLOG_DAEMONS) & set(packages or {})


def mail_log_settings(relay: RelaySettings, packages: dict | None) -> dict[str, str]:
    return {"maillog_file": MAIL_LOG} if writes_file(relay, packages) else {}


def rotate_service() -> str:
    return (HEADER + "[Unit]\nDescription=Rotate Postfix's own mail log (maillog_file)\n\n"
            "[Service]\nType=oneshot\nExecStart=/usr/sbin/postfix logrotate\n"
            # postfix logrotate renames with a date suffix and compresses; it removes nothing
            f"ExecStartPost=/usr/bin/find /var/log -maxdepth 1 -name mail.log.* -mtime "
            f"+{KEEP_DAYS} -delete\n"
            # the new file, whether postlogd or touch creates it first
            f"ExecStartPost=/bin/sh -c 'touch {MAIL_LOG} && chown {LOG_OWNER} {MAIL_LOG} "
            f"&& chmod {LOG_MODE} {MAIL_LOG}'\n")


def rotate_timer() -> str:
    return (HEADER + "[Unit]\nDescription=Rotate Postfix's own mail log weekly\n\n"
            "[Timer]\nOnCalendar=weekly\nPersistent=true\n\n"
            "[Install]\nWantedBy=timers.target\n")


def logwatch_maillog_conf() -> str:
    """logwatch's maillog group for the file Postfix writes: its lines start "Dec 04 ..." (zero-
    padded day), the stock date filter wants "Dec  4 ...", so days 1-9 showed nothing. The
    group's other * filter is repeated: logwatch drops a file's * filters when a later file
    defines any."""
    return (HEADER + "# Postfix writes this file itself, with a zero-padded day of the month.\n"
            "*ExpandRepeats\n*ApplyStdDate = \"%b %d %H:%M:%S \"\n")


def mail_log_steps(relay: RelaySettings, found: HostState) -> dict:
    """The postlog service (Debian's master.cf has it; a noop there), named like configure()'s
    steps; only where Postfix writes the file."""
    if not writes_file(relay, found["packages"]):
        return {}
    return {"mail log postlog": (postfix.master_service, dict(
        name="master.cf: postlog (Postfix writes its own mail log)", service="postlog",
        service_type="unix-dgram", enabled=True, entry=POSTLOG_ENTRY, current=found["master"]))}


def log_file_step(relay: RelaySettings, found: HostState) -> None:
    """The file made root:adm 0640 (created so when missing) BEFORE Postfix opens it."""
    if not writes_file(relay, found["packages"]):
        return
    if (found.get("mail_log_files") or {}).get("log") != f"{LOG_OWNER} {LOG_MODE}":
        server.shell(name=f"{MAIL_LOG}: {LOG_OWNER} {LOG_MODE}, as Debian keeps it",
                     commands=[f"touch {MAIL_LOG} && chown {LOG_OWNER} {MAIL_LOG} "
                               f"&& chmod {LOG_MODE} {MAIL_LOG}"])


def rotation_step(relay: RelaySettings, found: HostState) -> None:
    """logwatch's date filter for the file (with logwatch on), and the weekly rotation timer:
    its two unit files, then enabled and started."""
    if not writes_file(relay, found["packages"]):
        return
    state = found.get("mail_log_files") or {}
    if relay.logwatch.enabled:
        if_needed(owned_files.conf_file, name=f"logwatch reads the date format of {MAIL_LOG}",
                  path=LOGWATCH_MAILLOG_CONF, content=logwatch_maillog_conf(),
                  current=state.get("logwatch"))
    written = [if_needed(owned_files.conf_file, name=f"{path}: rotates {MAIL_LOG}", path=path,
                         content=content, current=state.get(key))
               for path, content, key in ((MAIL_LOG_ROTATE_SERVICE, rotate_service(), "service"),
                                          (MAIL_LOG_ROTATE_TIMER, rotate_timer(), "timer"))]
    changed = [meta for meta in written if meta is not None]
    if changed or not state.get("enabled") or not state.get("active"):
        server.shell(name=f"Enable the weekly rotation of {MAIL_LOG}",
                     commands=[f"systemctl daemon-reload && systemctl enable --now "
                               f"{MAIL_LOG_ROTATE_UNIT}.timer"])
