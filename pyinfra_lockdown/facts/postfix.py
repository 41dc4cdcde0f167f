"""
Facts about Postfix as a send-only null client: main.cf, master.cf, map types, the SASL
password map, the service status and the SMTP listeners.

Every fact runs one read-only shell command that exits 0 in every normal state (Postfix
not installed, main.cf missing, nothing listening) and always prints a first status line,
so the output is never empty and ``process()`` tells the states apart. ``command()`` with
its default arguments is a plain shell string, so ``facts/host_state.py`` can concatenate
the commands and hand each section's lines to the fact's own ``process()``.

Binaries are called by absolute path (``/usr/sbin/postconf``): a non-root SSH session on
Debian/Ubuntu has no ``/usr/sbin`` in PATH, and a bare ``postconf`` would then look "not
installed". Read these facts as root (``_sudo=True``): ``postfix status`` and the 0600 SASL map's
stamp need it.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override

# The facts (and their types); the constants are the paths and markers they share.
__all__ = [
    "PostfixMainCf", "PostfixMasterServices", "PostfixMapTypes", "MapFileState",
    "SecretFileState", "PostfixStatus", "SmtpListeners", "PostfixParameters",
    "PostfixDefaults", "MailLogFiles",
]

POSTCONF = "/usr/sbin/postconf"
POSTFIX = "/usr/sbin/postfix"
MAIN_CF = "/etc/postfix/main.cf"
MASTER_PID = "/var/spool/postfix/pid/master.pid"
MASTER_CF = "/etc/postfix/master.cf"
# The files lockdown writes for Postfix (the mail deploy writes them, the state facts read them).
SASL_PASSWORD_MAP = "/etc/postfix/sasl_passwd"
ALIASES_MAP = "/etc/postfix/lockdown_aliases"
SENDERS_MAP = "/etc/postfix/lockdown_senders"
# Written only with relay_fallbacks: each fallback's TLS level, and the canary's route per relay.
TLS_POLICY_MAP = "/etc/postfix/lockdown_tls_policy"
CANARY_ROUTES_MAP = "/etc/postfix/lockdown_canary_routes"
# mail_log: file: the file Postfix writes itself (maillog_file) where no syslog daemon writes it,
# and the systemd timer that rotates it with `postfix logrotate`.
MAIL_LOG = "/var/log/mail.log"
SYSLOG_DAEMONS = ("rsyslog", "syslog-ng-core")
MAIL_LOG_ROTATE_UNIT = "lockdown-mail-log-rotate"
MAIL_LOG_ROTATE_SERVICE = f"/etc/systemd/system/{MAIL_LOG_ROTATE_UNIT}.service"
MAIL_LOG_ROTATE_TIMER = f"/etc/systemd/system/{MAIL_LOG_ROTATE_UNIT}.timer"
# logwatch's maillog group, told the date format Postfix writes (with logwatch on).
LOGWATCH_MAILLOG_CONF = "/etc/logwatch/conf/logfiles/maillog.conf"

# Suffix of the compiled map postmap writes next to the source, per database type.
COMPILED_MAP_SUFFIX = {"hash": "db", "btree": "db", "lmdb": "lmdb", "cdb": "cdb"}
COMPILED_MAP_SUFFIXES = tuple(dict.fromkeys(COMPILED_MAP_SUFFIX.values()))

# master.cf service types (master(5)).
SERVICE_TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")

SMTP_PORTS = (25, 465, 587)

# The main.cf templates a Postfix package ships; their compatibility_level is the release's own.
STOCK_MAIN_CF_TEMPLATES = ("/usr/share/postfix/main.cf.debian", "/usr/share/postfix/main.cf.dist")

NOT_INSTALLED = "postfix: not-installed"

# A run that changes Postfix's configuration notes here first what it owes Postfix ("reload"
# or "restart"); the reload's last command removes the note. A run killed in between leaves
# it, and the next run applies the change although every file already matches.
APPLY_PENDING = "/var/lib/lockdown/postfix-apply-pending"
# main.cf's real write time: lockdown backdates main.cf's mtime by 2 s (Postfix's doze, see
# operations/postfix.py COOL_MAIN_CF), so the audit's "since the last converge" reads this too.
MAIN_CF_WRITTEN = "/var/lib/lockdown/main.cf-written"
APPLY_ACTIONS = ("reload", "restart")


def normalize_value(value: str) -> str:
    """Collapse runs of whitespace to one space, as ``postconf`` itself compares values."""
    return " ".join(value.split())


def _status_line(output: list[str], fact: str, allowed: tuple[str, ...]) -> str:
    """Return the first output line, which every fact command prints as its status."""
    if not output or output[0] not in allowed:
        first = output[0] if output else "<no output>"
        raise FactProcessError(f"{fact}: unexpected status line: {first!r}")
    return output[0]


def _named_values(output: list[str], fact: str, header: str, values: list[str]) -> dict[str, str]:
    """Pair the names the first line lists (``<header>name name ...``) with ``values``."""
    if not output[0].startswith(header):
        raise FactProcessError(f"{fact}: unexpected output: {output!r}")
    names = output[0].split()[1:]
    if len(values) != len(names):
        raise FactProcessError(f"{fact}: {len(names)} names, {len(values)} values")
    return dict(zip(names, values, strict=True))


def _postfix_installed_guard(then: str) -> str:
    """Shell snippet: print the not-installed status or run ``then``."""
    return f"if [ ! -x {POSTCONF} ]; then echo '{NOT_INSTALLED}'; else {then}; fi"


def _if_main_cf(present: str = "", missing: str = "") -> str:
    """Shell snippet: print whether main.cf exists, then run ``present`` or ``missing`` (each
    empty or ending in ``; ``). Most ``postconf`` calls fail while main.cf is missing."""
    return (f"if [ -f {MAIN_CF} ]; then echo 'main.cf: present'; {present}"
            f"else echo 'main.cf: missing'; {missing}fi")


class PostfixMainCf(FactBase[dict[str, Any] | None]):
    """
    Returns the settings explicitly set in main.cf (``postconf -n``), values
    whitespace-normalized:

    .. code:: python

        {
            "installed": True,          # False: postfix not installed
            "main_cf": True,            # False: /etc/postfix/main.cf does not exist yet
            "settings": {"relayhost": "[smtp.mailgun.org]:587", "mydestination": ""},
        }

    ``postconf -n`` (and every other ``postconf`` call) exits 1 when main.cf is missing,
    which is the state a debconf "No configuration" install leaves, hence the guard.
    """

    _STATUSES = (NOT_INSTALLED, "main.cf: missing", "main.cf: present")

    @override
    def command(self) -> str:
        return _postfix_installed_guard(_if_main_cf(present=f"{POSTCONF} -n; "))

    @override
    def process(self, output: list[str]) -> dict[str, Any] | None:
        status = _status_line(output, "PostfixMainCf", self._STATUSES)
        settings: dict[str, str] = {}
        for line in output[1:]:
            key, separator, value = line.partition("=")
            if not separator or not key.strip():
                raise FactProcessError(f"PostfixMainCf: cannot parse postconf line: {line!r}")
            settings[key.strip()] = normalize_value(value)
        return {
            "installed": status != NOT_INSTALLED,
            "main_cf": status == "main.cf: present",
            "settings": settings,
        }


_CONTINUATION_WORD = re.compile(r"-|[A-Za-z_][A-Za-z0-9_.-]*=")


def _is_commented_continuation(body: str, fields: list[str]) -> bool:
    """``#  -o name=value`` / ``#  flags=R user=x argv=...``, not ``#  some prose``."""
    return body[:1].isspace() and bool(fields) and bool(_CONTINUATION_WORD.match(fields[0]))


def _parse_master_cf(lines: list[str]) -> dict[str, dict]:
    """
    Parse master.cf text into ``{"service/type": {"enabled": bool, "entry": "..."}}``.

    Follows master(5): a logical line starts with non-whitespace, a line starting with
    whitespace continues it, comment and blank lines are skipped. Commented-out entries
    (``#smtp inet ...`` followed by ``#  -o ...`` lines, the form ``postconf -M#`` writes)
    are returned with ``enabled: False``; their continuation lines are recognized by a
    first word that is an option (``-o``) or a ``name=value``, so prose comments are skipped. An
    active entry wins over commented ones with the same service/type; among commented ones
    the first wins.
    """
    entries: list[tuple[bool, list[str]]] = []

    for line in lines:
        if not line.strip():
            continue
        if line.startswith("#"):
            body = line[1:]
            fields = body.split()
            if len(fields) >= 8 and not body[:1].isspace() and fields[1] in SERVICE_TYPES:
                entries.append((False, fields))
            elif _is_commented_continuation(body, fields) and entries and not entries[-1][0]:
                entries[-1][1].extend(fields)
            continue
        if line[0].isspace():
            if entries and entries[-1][0]:
                entries[-1][1].extend(line.split())
            continue
        entries.append((True, line.split()))

    services: dict[str, dict] = {}
    for enabled, fields in entries:
        if len(fields) < 8:
            raise FactProcessError(
                f"PostfixMasterServices: master.cf entry {' '.join(fields)!r} has {len(fields)} of "
                "the 8 fields (Postfix refuses it too: `postfix check` says 'bad field count'); "
                "fix or remove that line, then run the deploy again")
        key = f"{fields[0]}/{fields[1]}"
        if key in services and (services[key]["enabled"] or not enabled):
            continue
        services[key] = {"enabled": enabled, "entry": " ".join(fields)}
    return services


# master.cf lines _parse_master_cf ignores wherever they stand, dropped on the host (they are
# ~70% of a stock master.cf, and each line read costs the controller CPU at every state read):
# blank lines, "#" alone or followed by a rule of '='s only, and "#<spaces><word>" prose whose
# first word neither starts with "-" nor holds a "=" (so never a commented entry's continuation).
MASTER_CF_IGNORED = (r"^[[:space:]]*$|^#[[:space:]]*=*[[:space:]]*$"
                     r"|^#[[:space:]]+[^-=[:space:]][^=[:space:]]*([[:space:]]|$)")


class PostfixMasterServices(FactBase[dict[str, Any]]):
    """
    Returns the master.cf services, active and commented out:

    .. code:: python

        {
            "installed": True,
            "main_cf": True,      # postconf -M/-M# fail while main.cf is missing
            "services": {
                "smtp/inet": {"enabled": False, "entry": "smtp inet n - y - - smtpd"},
                "pickup/unix": {"enabled": True, "entry": "pickup unix n - y 60 1 pickup"},
            },
        }

    Reads master.cf itself, less the lines the parser ignores anyway (``MASTER_CF_IGNORED``,
    dropped on the host): ``postconf -M`` lists only active entries (one line each,
    ``-o`` options joined) and fails while main.cf is missing; Postfix 3.7 has no option to
    list commented-out entries. ``entry`` is normalized the same way ``postconf -M`` prints
    it, apart from column alignment (single spaces).
    """

    _STATUSES = (NOT_INSTALLED, "master.cf: missing", "master.cf: present")

    @override
    def command(self) -> str:
        return _postfix_installed_guard(
            _if_main_cf() + "; "
            f"if [ -f {MASTER_CF} ]; then echo 'master.cf: present'; "
            f"grep -vE '{MASTER_CF_IGNORED}' {MASTER_CF} || true; "
            "else echo 'master.cf: missing'; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        if output[:1] == [NOT_INSTALLED]:
            return {"installed": False, "main_cf": False, "services": {}}
        main_cf = _status_line(
            output, "PostfixMasterServices", ("main.cf: present", "main.cf: missing")
        )
        master_cf = _status_line(output[1:], "PostfixMasterServices", self._STATUSES[1:])
        return {
            "installed": True,
            "main_cf": main_cf == "main.cf: present",
            "services": _parse_master_cf(output[2:]) if master_cf == "master.cf: present" else {},
        }


class PostfixMapTypes(FactBase[dict[str, Any]]):
    """
    Returns the lookup table types Postfix supports and its default database type:

    .. code:: python

        {
            "installed": True,
            "supported": ["btree", "cidr", "hash", "lmdb", ...],   # None: unknown, see below
            "default": "hash",    # effective default_database_type (main.cf wins)
        }

    ``postconf -m`` fails while main.cf is missing, so then ``supported`` is ``None`` and
    ``default`` is the built-in default (``postconf -d``), which is what applies until
    main.cf sets ``default_database_type``. On Debian, ``lmdb``/``cdb`` are listed only with
    the ``postfix-lmdb``/``postfix-cdb`` packages installed.
    """

    @override
    def command(self) -> str:
        return _postfix_installed_guard(_if_main_cf(
            present=f"echo \"default: $({POSTCONF} -h default_database_type)\"; {POSTCONF} -m; ",
            missing=f"echo \"default: $({POSTCONF} -d -h default_database_type)\"; "))

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        status = _status_line(
            output, "PostfixMapTypes", (NOT_INSTALLED, "main.cf: missing", "main.cf: present")
        )
        if status == NOT_INSTALLED:
            return {"installed": False, "supported": None, "default": None}
        if len(output) < 2 or not output[1].startswith("default:"):
            raise FactProcessError("PostfixMapTypes: missing default database type line")
        default = output[1].partition(":")[2].strip() or None
        supported = sorted(line.strip() for line in output[2:] if line.strip())
        return {
            "installed": True,
            "supported": supported if status == "main.cf: present" else None,
            "default": default,
        }


def _stat_command(path_var: str) -> str:
    """``stat`` fields parsed by ``_parse_stat``: user group octal-mode mtime-seconds %y."""
    return f"stat -c '%U %G %a %Y %y' \"{path_var}\""


def _parse_stat(fields: list[str], path: str, fact: str) -> dict:
    """
    Parse ``user group mode seconds YYYY-MM-DD HH:MM:SS.fraction zone`` into a dict with
    ``mtime_ns`` (integer nanoseconds, so two writes within the same second still compare).
    Uses the fraction of ``%y`` rather than ``%.9Y``, which older coreutils (Ubuntu 22.04's
    8.32) do not support.
    """
    if len(fields) < 7 or not fields[2].isdigit() or not fields[3].lstrip("-").isdigit():
        raise FactProcessError(f"{fact}: cannot parse stat output for {path}: {fields!r}")
    user, group, mode, seconds, _date, time_of_day = fields[:6]
    fraction = time_of_day.partition(".")[2]
    nanoseconds = int((fraction + "000000000")[:9])
    return {
        "exists": True,
        "user": user,
        "group": group,
        "mode": int(mode),
        "mtime_ns": int(seconds) * 1_000_000_000 + nanoseconds,
    }


def _compiled_maps_command(path: str) -> str:
    suffixes = " ".join(COMPILED_MAP_SUFFIXES)
    return (
        f"for s in {suffixes}; do "
        f'if [ -f "{path}.$s" ]; then echo "$s: $({_stat_command(path + ".$s")})"; '
        'else echo "$s: missing"; fi; done'
    )


def _parse_source(line: str, fact: str) -> tuple[dict, list[str]]:
    """The ``source: file|missing|other ...`` line: the state and the fields after the stat."""
    if not line.startswith("source: "):
        raise FactProcessError(f"{fact}: unexpected output: {line!r}")
    kind, *fields = line.split()[1:]
    if kind == "file":
        state = _parse_stat(fields, "source", fact)
        state["type"] = "file"
        return state, fields[7:]
    if kind in ("missing", "other"):
        return {"exists": kind == "other", "type": kind}, []
    raise FactProcessError(f"{fact}: unknown source kind {kind!r}")


def _parse_compiled(lines: list[str], fact: str) -> dict:
    compiled = {}
    for line in lines:
        suffix, _, rest = line.partition(": ")
        if suffix not in COMPILED_MAP_SUFFIXES:
            raise FactProcessError(f"{fact}: unexpected line {line!r}")
        compiled[suffix] = (
            {"exists": False} if rest == "missing" else _parse_stat(rest.split(), suffix, fact)
        )
    return compiled


def _map_state_command(path: str, on_file: str, setup: str = "") -> str:
    """The source line (``on_file`` prints it for a regular file), then the compiled maps."""
    return (
        f"p={shlex.quote(path)}; {setup}"
        'if [ -L "$p" ] || { [ -e "$p" ] && [ ! -f "$p" ]; }; then echo "source: other"; '
        f'elif [ -f "$p" ]; then {on_file}else echo "source: missing"; fi; '
        + _compiled_maps_command("$p")
    )


class MapFileState(FactBase[dict[str, Any]]):
    """
    Returns the metadata and content digest of a map source that holds no secret (the local
    aliases and senders maps), and of its compiled maps:

    .. code:: python

        {
            "exists": True,
            "type": "file",            # "missing", or "other" (directory, symlink, ...)
            "user": "root", "group": "root", "mode": 600,
            "mtime_ns": 1764163440123456789,
            "sha256": "5b1c...",        # None when the file could not be read (not root)
            "compiled": {
                "db": {"exists": True, "user": "root", "group": "root", "mode": 600,
                       "mtime_ns": 1764163441000000000},
                "lmdb": {"exists": False},
                "cdb": {"exists": False},
            },
        }

    + path: the source file, e.g. ``/etc/postfix/lockdown_aliases``

    Never read a secret map with it: a fast digest of a secret is an offline guessing oracle
    (use ``SecretFileState``).
    """

    @override
    def command(self, path: str = ALIASES_MAP) -> str:
        return _map_state_command(path, (
            'h=$(sha256sum < "$p" 2>/dev/null); '
            f'echo "source: file $({_stat_command("$p")}) ${{h%% *}}"; '))

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        state, rest = _parse_source(output[0] if output else "", "MapFileState")
        if state["type"] == "file":
            sha256 = rest[0] if rest else None
            state["sha256"] = sha256 if sha256 and re.fullmatch(r"[0-9a-f]{64}", sha256) else None
        state["compiled"] = _parse_compiled(output[1:], "MapFileState")
        return state


# What the stamp next to a secret map records of the map (line 2), compared on the host so
# the map's size (its password's length) is never printed. `%y` has nanoseconds.
STAMP_SUFFIX = ".lockdown-stamp"
STAMP_IDENTITY = "stat -c '%i %s %y'"


class SecretFileState(FactBase[dict[str, Any]]):
    """
    Returns the metadata of a secret map source (the SASL password map) and of its compiled
    maps, and the stamp lockdown wrote next to it, never the secret nor a fast digest of it:

    .. code:: python

        {
            "exists": True,
            "type": "file",            # "missing", or "other" (directory, symlink, ...)
            "user": "root", "group": "root", "mode": 600,
            "mtime_ns": 1764163440123456789,
            "stamp": "scrypt-14-8-1 <salt> <key>",  # None unless stamp_status is "valid"
            "stamp_status": "valid",   # "edited": the map changed since lockdown wrote it;
                                       # "missing": no (readable) stamp
            "compiled": {"db": {...}, "lmdb": {"exists": False}, "cdb": {"exists": False}},
        }

    + path: the source file, e.g. ``/etc/postfix/sasl_passwd``

    The stamp (``<path>.lockdown-stamp``, root 0600) holds a salted scrypt key of the content
    (``secret_stamp.py``) and the map's inode, size and mtime when lockdown wrote
    it. The host compares that identity with the map's own: only a still-valid stamp's key is
    printed, and checking a guess against it costs a deliberate scrypt.
    """

    @override
    def command(self, path: str = SASL_PASSWORD_MAP) -> str:
        return _map_state_command(path, setup=f's="$p{STAMP_SUFFIX}"; ', on_file=(
            f'echo "source: file $({_stat_command("$p")})"; '
            'if [ ! -f "$s" ] || [ ! -r "$s" ]; then echo "stamp: missing"; '
            f'elif [ "$(sed -n 2p "$s")" = "$({STAMP_IDENTITY} "$p")" ]; then '
            'echo "stamp: valid $(sed -n 1p "$s")"; else echo "stamp: edited"; fi; '))

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        state, _ = _parse_source(output[0] if output else "", "SecretFileState")
        rest = output[1:]
        if state["type"] == "file":
            if not rest or not rest[0].startswith("stamp: "):
                raise FactProcessError(f"SecretFileState: missing stamp line: {rest[:1]!r}")
            status, _, stamp = rest[0][len("stamp: "):].partition(" ")
            if status not in ("valid", "edited", "missing"):
                raise FactProcessError(f"SecretFileState: unknown stamp status {status!r}")
            state["stamp_status"] = status
            state["stamp"] = (stamp.strip() or None) if status == "valid" else None
            rest = rest[1:]
        state["compiled"] = _parse_compiled(rest, "SecretFileState")
        return state


class PostfixStatus(FactBase[dict[str, Any]]):
    """
    Returns whether Postfix is installed, running and enabled at boot:

    .. code:: python

        {
            "installed": True,
            "running": True,            # a live master owns master.pid (root only!)
            "systemd": True,            # the host runs systemd (/run/systemd/system)
            "unit_state": "enabled",    # `systemctl is-enabled postfix.service`, or None
            "enabled": True,            # unit_state is enabled/enabled-runtime/static/...
            "pending": None,            # "reload"/"restart" an earlier run noted and never did
        }

    The pid file is readable by root only: read this fact with ``_sudo=True``, or a
    running Postfix reads as ``running: False``.
    """

    _ENABLED_UNIT_STATES = (
        "enabled", "enabled-runtime", "static", "indirect", "generated", "alias",
    )

    @override
    def command(self) -> str:
        return (
            f"if [ -x {POSTFIX} ]; then echo 'postfix: installed'; "
            # What `postfix status` checks (a live master owning the pid file), 20 ms faster.
            # (read, a builtin: each process on a state read costs ~1 ms of CPU)
            f"pid=; comm=; {{ read -r pid < {MASTER_PID}; }} 2>/dev/null; "
            'case "$pid" in *[!0-9]*) pid=;; esac; '
            '[ -n "$pid" ] && { read -r comm < "/proc/$pid/comm"; } 2>/dev/null; '
            "if [ \"$comm\" = master ]; "
            "then echo 'running: yes'; else echo 'running: no'; fi; "
            f"else echo '{NOT_INSTALLED}'; fi; "
            "if [ -d /run/systemd/system ]; then echo 'systemd: yes'; else echo 'systemd: no'; fi; "
            "if command -v systemctl >/dev/null 2>&1; then "
            'echo "unit: $(systemctl is-enabled postfix.service 2>/dev/null)"; '
            "else echo 'unit: '; fi; "
            f"pending=; {{ read -r pending < {APPLY_PENDING}; }} 2>/dev/null; "
            'echo "pending: $pending"'
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        lines = dict(line.partition(": ")[::2] for line in output)
        if "postfix" not in lines or "systemd" not in lines or "unit" not in lines:
            raise FactProcessError(f"PostfixStatus: unexpected output: {output!r}")
        installed = lines["postfix"] == "installed"
        unit_state = lines["unit"].strip() or None
        # "pending:" alone when there is no note (a trailing space may be stripped)
        pending = next((line[len("pending:"):].strip() for line in output
                        if line.startswith("pending:")), "") or None
        return {
            "installed": installed,
            "running": installed and lines.get("running") == "yes",
            "systemd": lines["systemd"] == "yes",
            "unit_state": unit_state,
            "enabled": unit_state in self._ENABLED_UNIT_STATES,
            # anything else in the note (a torn write) still owes a change: the stronger one
            "pending": pending if pending in (None, "reload") else "restart",
        }


def _parse_listen_address(local: str) -> tuple[str, str | None, int]:
    """Split ss's ``Local Address:Port`` (``[::1]:25``, ``127.0.0.53%lo:53``, ``*:25``)."""
    address, _, port = local.rpartition(":")
    if not port.isdigit():
        raise FactProcessError(f"SmtpListeners: cannot parse local address {local!r}")
    address, _, interface = address.partition("%")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    return address, interface or None, int(port)


def _is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x; "*" (every address) is not."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class SmtpListeners(FactBase[list[dict[str, Any]] | None]):
    """
    Returns the TCP sockets listening on the SMTP ports 25, 465 and 587 (``ss -Hltn``):

    .. code:: python

        [
            {"address": "127.0.0.1", "port": 25, "interface": None, "loopback": True},
            {"address": "::", "port": 587, "interface": None, "loopback": False},
        ]

    ``*`` means every address (a dual-stack socket); ``interface`` is set for sockets
    bound to a device (``0.0.0.0%eth0:25``). ``None`` when ``ss`` is not installed.
    """

    @override
    @staticmethod
    def default() -> list[dict[str, Any]] | None:
        return []

    @override
    def command(self) -> str:
        return (
            "if command -v ss >/dev/null 2>&1; then echo 'ss: present'; ss -Hltn; "
            "else echo 'ss: not-installed'; fi"
        )

    @override
    def process(self, output: list[str]) -> list[dict[str, Any]] | None:
        status = _status_line(output, "SmtpListeners", ("ss: present", "ss: not-installed"))
        if status == "ss: not-installed":
            return None
        listeners = []
        for line in output[1:]:
            fields = line.split()
            if len(fields) < 5:
                raise FactProcessError(f"SmtpListeners: cannot parse ss line {line!r}")
            address, interface, port = _parse_listen_address(fields[3])
            if port in SMTP_PORTS:
                listeners.append(
                    {
                        "address": address,
                        "port": port,
                        "interface": interface,
                        "loopback": _is_loopback(address),
                    }
                )
        return listeners


class PostfixParameters(FactBase[dict[str, Any] | None]):
    """
    Returns the effective values of a few main.cf parameters, read with ONE ``postconf -h``
    (the built-in defaults, ``postconf -d -h``, while main.cf does not exist yet), and the
    ``compatibility_level`` the installed release ships in its main.cf template (Debian's
    ``main.cf.debian``, else upstream's ``main.cf.dist``; ``None`` when neither says):

    .. code:: python

        {"default_database_type": "hash", "myhostname": "web1.example.com",
         "compatibility_level": "3.6", "stock_compatibility_level": "3.9"}

    ``None`` when Postfix is not installed. ``myhostname`` is the domain unqualified local
    addresses get; ``default_database_type`` the map type ``postmap`` writes by default.
    """

    @override
    def command(self, names: tuple[str, ...] = (
            "default_database_type", "myhostname", "compatibility_level")) -> str:
        quoted = " ".join(shlex.quote(name) for name in names)
        header = shlex.quote("names: " + " ".join(names))
        templates = " ".join(STOCK_MAIN_CF_TEMPLATES)
        return _postfix_installed_guard(
            f"echo {header}; if [ -f {MAIN_CF} ]; then {POSTCONF} -h {quoted}; "
            f"else {POSTCONF} -d -h {quoted}; fi; "
            f"for t in {templates}; do [ -f \"$t\" ] && "
            "sed -n 's/^compatibility_level *= *\\([0-9.]*\\).*/stock: \\1/p' \"$t\" && break; "
            "done; true"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any] | None:
        if output[0] == NOT_INSTALLED:
            return None
        stock = [line.split(":", 1)[1].strip() for line in output[1:] if line.startswith("stock:")]
        values = [line.strip() for line in output[1:] if not line.startswith("stock:")]
        return {**_named_values(output, "PostfixParameters", "names: ", values),
                "stock_compatibility_level": stock[0] if stock else None}


class PostfixDefaults(FactBase[dict[str, str] | None]):
    """
    Returns Postfix's BUILT-IN defaults (``postconf -d -h``) of a few parameters: what this
    Postfix version itself writes, so the deploy can speak its dialect without a table of
    release numbers:

    .. code:: python

        {"mail_version": "3.7.11", "smtp_tls_mandatory_protocols": ">=TLSv1"}

    ``None`` when Postfix is not installed. Works with or without main.cf.
    """

    NAMES = ("mail_version", "smtp_tls_mandatory_protocols")

    @override
    def command(self, names: tuple[str, ...] = NAMES) -> str:
        quoted = " ".join(shlex.quote(name) for name in names)
        header = shlex.quote("defaults: " + " ".join(names))
        return _postfix_installed_guard(f"echo {header}; {POSTCONF} -d -h {quoted}")

    @override
    def process(self, output: list[str]) -> dict[str, str] | None:
        if output[0] == NOT_INSTALLED:
            return None
        values = [normalize_value(line) for line in output[1:]]
        return _named_values(output, "PostfixDefaults", "defaults: ", values)


class MailLogFiles(FactBase[dict[str, Any]]):
    """
    What lockdown writes for Postfix's own mail log (host data ``mail_log: file``): the SHA-256
    of the rotation timer's two unit files and of logwatch's maillog override (none holds a
    secret), and whether the timer is enabled and active.

    .. code:: python

        {"service": "9f2c...", "timer": None, "logwatch": None, "enabled": False,
         "active": False, "log": "root:adm 640"}   # the log's owner and mode; None: missing
    """

    @override
    def command(self) -> str:
        files = " ".join(f'"{path}"' for path in (MAIL_LOG_ROTATE_SERVICE, MAIL_LOG_ROTATE_TIMER,
                                                  LOGWATCH_MAILLOG_CONF))
        return (f"for f in {files}; do if [ -f \"$f\" ]; then "
                "h=$(sha256sum < \"$f\"); echo \"file: ${h%% *}\"; else echo 'file: -'; fi; "
                "done; "
                "echo \"enabled: "
                f"$(systemctl is-enabled {MAIL_LOG_ROTATE_UNIT}.timer 2>/dev/null)\"; "
                "echo \"active: "
                f"$(systemctl is-active {MAIL_LOG_ROTATE_UNIT}.timer 2>/dev/null)\"; "
                f"echo \"log: $(stat -c '%U:%G %a' {MAIL_LOG} 2>/dev/null || echo -)\"")

    @override
    def process(self, output: list[str]) -> dict:
        files = [line.partition(": ")[2].strip() for line in output if line.startswith("file:")]
        values = dict(line.partition(": ")[::2] for line in output if not line.startswith("file:"))
        if len(files) != 3 or not {"enabled", "active", "log"} <= set(values):
            raise FactProcessError(f"MailLogFiles: cannot parse {output!r}")
        service, timer, logwatch = (None if digest == "-" else digest for digest in files)
        return {"service": service, "timer": timer, "logwatch": logwatch,
                "enabled": values["enabled"].strip() == "enabled",
                "active": values["active"].strip() == "active",
                "log": None if values["log"].strip() == "-" else values["log"].strip()}
