"""
Operations for a send-only Postfix null client: main.cf settings, master.cf services, the
SASL password map (secret source file + compiled map) and reload/start.

Every operation takes explicit arguments (never ``host.data``) and an optional
``current=``: the matching slice of the deploy's one combined state read. When it is
``None`` the operation reads its own granular fact from ``facts.postfix``. A ``current``
saying Postfix is not installed is not trusted either: the package may be installed by an
earlier operation of the same deploy, so the fact is read again (at execute time that read
sees the installed package; at prepare time the operation assumes everything must change).

Secrets travel only as ``HiddenValue``/``str`` in ``content`` and as stdin of the write
command: they never appear in a command string, an operation name or a noop message.
Always give these operations an explicit ``name=``.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from pyinfra import host
from pyinfra.api import (
    FactBase,
    HiddenValue,
    OperationError,
    OperationValueError,
    QuoteString,
    StringCommand,
    operation,
)

from .. import secret_stamp
from .._typing import Commands, Current
from ..facts.postfix import (
    APPLY_ACTIONS,
    APPLY_PENDING,
    COMPILED_MAP_SUFFIX,
    MAIN_CF,
    MAIN_CF_WRITTEN,
    SERVICE_TYPES,
    STAMP_IDENTITY,
    STAMP_SUFFIX,
    MapFileState,
    PostfixMainCf,
    PostfixMapTypes,
    PostfixMasterServices,
    PostfixStatus,
    SecretFileState,
    normalize_value,
)
from ..secret_stamp import new_stamp, stamp_matches

# The operations; the other public names are helpers the package's deploys and audit share.
__all__ = [
    "main_cf", "master_service", "map_file", "sasl_password_map", "note_pending", "reload",
    "running",
]

# Parameters a `postfix reload` does not apply: Postfix must be stopped and started
# (maillog_file: master itself logs through postlogd only after a start).
RESTART_REQUIRED_SETTINGS = frozenset({"inet_interfaces", "inet_protocols", "maillog_file"})

# `postfix check`, and on failure the same check again on a pseudo-terminal: Postfix before
# 3.8 writes its messages to stderr only when stderr is a terminal (otherwise only to syslog),
# so without this the host would fail with no reason shown. The first run's exit status counts.
POSTFIX_CHECK = (
    "postfix check || { rc=$?; script -qec 'postfix check' /dev/null </dev/null 2>&1 "
    "|| echo \"postfix check failed (exit $rc); if no reason is shown above, see the mail log\"; "
    "exit $rc; }"
)

# Every Postfix program re-reads main.cf in 300 ms dozes while its mtime is within the last
# second or so (dict_load_file_xt in src/util/dict.c: "read the file again if it is hot", a
# guard against a writer changing it in mid-read): after a `postconf -e` every postmap,
# postfix check, start and sendmail of the same converge waited ~2 s. postconf -e replaces
# main.cf atomically (a temp file renamed over it) and has exited when this runs, so the
# content is final; only the mtime is set 2 s back, out of the doze window (mtime < now - 1).
# The real write time is kept first (MAIN_CF_WRITTEN), for the audit's "since the last converge".
COOL_MAIN_CF = (f"mkdir -p {os.path.dirname(MAIN_CF_WRITTEN)} "
                f"&& touch -r {MAIN_CF} {MAIN_CF_WRITTEN} "
                f'&& touch -m -d "@$(( $(date +%s) - 2 ))" {MAIN_CF}')

# `postfix start` runs `postfix-script check-fatal` and `check-warn` (what `postfix check`
# runs) unless $queue_directory/quick-start exists (Postfix's own flag, left by quick-stop).
# reload() and running() have just run POSTFIX_CHECK on the same files, so a start right
# after it skips the repeat (~0.8 s on a fresh box); the flag is removed whatever happens.
QUICK_START = '"$(postconf -h queue_directory)/quick-start"'


def _after_check(start: str) -> str:
    """``start`` (a command starting Postfix) without its own repeat of POSTFIX_CHECK."""
    return f"q={QUICK_START}; touch \"$q\" && {start}; rc=$?; rm -f \"$q\"; exit $rc"


def _chained(commands: list[str]) -> str:
    """Shell commands as ONE remote command, each only after the one before succeeded (as
    pyinfra runs an operation's commands); one with its own ``;`` or ``exit`` runs in a
    subshell, so its exit status is what the chain sees."""
    return " && ".join(f"( {command} )" if ";" in command or "||" in command else command
                       for command in commands)


SECRET_OWNER = ("root", "root")
SECRET_MODE = 600

_PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_.:\[\]-]+")

# Writes stdin to $1 atomically: a private temp file in the same directory, owned by $2,
# mode 600, then renamed over the target. The content is never part of the command.
_WRITE_SECRET_SCRIPT = (
    "set -e; umask 077; "
    't=$(mktemp "$(dirname "$1")/.lockdown-secret.XXXXXX"); '
    "trap 'rm -f \"$t\"' EXIT; "
    'cat > "$t"; chown "$2" "$t"; chmod 600 "$t"; mv -f "$t" "$1"'
)

# The same for a secret map, whose stdin starts with one line more: the stamp
# (``secret_stamp.new_stamp``), written root-only to $1.lockdown-stamp after the map, with
# the map's identity on its second line. `read` and `printf` are shell builtins, so the
# stamp is in no process's command line either. Killed between the two renames, the old
# stamp no longer matches the new map: the next run rewrites both.
_WRITE_STAMPED_SECRET_SCRIPT = (
    "set -e; umask 077; "
    't=$(mktemp "$(dirname "$1")/.lockdown-secret.XXXXXX"); '
    's=$(mktemp "$(dirname "$1")/.lockdown-stamp.XXXXXX"); '
    "trap 'rm -f \"$t\" \"$s\"' EXIT; "
    "IFS= read -r stamp; "
    'cat > "$t"; chown "$2" "$t"; chmod 600 "$t"; mv -f "$t" "$1"; '
    f"printf '%s\\n' \"$stamp\" > \"$s\"; {STAMP_IDENTITY} \"$1\" >> \"$s\"; "
    f'chown "$2" "$s"; mv -f "$s" "$1{STAMP_SUFFIX}"'
)


# A relay switch's bridge map: the NEW relayhost's line from stdin, plus the map's current line
# for the OLD relayhost ($3, the key main.cf names until the reload), copied here on the host:
# the old relay keeps its own credentials (its secret never travels to the controller), and a
# relayhost the map has no line for (one that lockdown did not write) gets none. The key is
# compared like Postfix compares it (case-folded); ENVIRON, not awk -v, so a backslash in a
# value read from the host is not an escape. The stamp is removed first: the map is not the
# final content, so any later run rewrites it (the final write comes after the reload).
_WRITE_BRIDGE_SCRIPT = (
    "set -e; umask 077; "
    't=$(mktemp "$(dirname "$1")/.lockdown-secret.XXXXXX"); '
    "trap 'rm -f \"$t\"' EXIT; "
    'cat > "$t"; '
    "if [ -f \"$1\" ]; then LOCKDOWN_OLD_KEY=\"$3\" awk "
    "'tolower($1) == tolower(ENVIRON[\"LOCKDOWN_OLD_KEY\"]) { print; exit }' \"$1\" >> \"$t\"; fi; "
    'chown "$2" "$t"; chmod 600 "$t"; '
    f'rm -f "$1{STAMP_SUFFIX}"; mv -f "$t" "$1"'
)


def _installed_or_reread(current: Current, fact_cls: type[FactBase[Any]]) -> dict[str, Any]:
    """Use ``current`` unless it is missing or says Postfix is not installed; then read."""
    if current is None or not current["installed"]:
        read: dict[str, Any] = host.get_fact(fact_cls)
        return read
    return current


def _comparable(value: str) -> str:
    """Normalize a main.cf value for comparison: whitespace runs, and spaces around commas."""
    return re.sub(r"\s*,\s*", ", ", normalize_value(value))


def _differs(existing: dict[str, str], key: str, value: str) -> bool:
    """Whether main.cf parameter ``key`` is unset in ``existing`` or has another value."""
    return key not in existing or _comparable(existing[key]) != _comparable(value)


def _check_parameter_name(key: str) -> None:
    if not isinstance(key, str) or not _PARAMETER_NAME.fullmatch(key):
        raise OperationValueError(f"invalid main.cf parameter name: {key!r}")


def _check_single_line(what: str, value: str) -> None:
    if not isinstance(value, str):
        raise OperationValueError(f"{what} must be a string, got {type(value).__name__}")
    if "\n" in value or "\r" in value:
        raise OperationValueError(f"{what} must be a single line")


def _with_main_cf(command: StringCommand, exists: bool) -> StringCommand:
    """``command`` (a postconf), first creating an empty root-owned 0644 main.cf unless one
    exists (postconf needs it): one remote command either way."""
    if exists:
        return command
    return StringCommand("[ -e", MAIN_CF, "] || install -o root -g root -m 644 /dev/null",
                         MAIN_CF, "&&", command)


def _one_command(commands: list[StringCommand]) -> list[StringCommand]:
    """``commands`` as ONE remote command (``&&``: each runs only if the one before it
    succeeded, as pyinfra runs an operation's commands), keeping the first one's connector
    arguments (the secret maps' stdin). Each remote command is an SSH channel and a sudo."""
    if len(commands) < 2:
        return commands
    bits: list[object] = [commands[0]]
    for command in commands[1:]:
        bits += ["&&", command]
    return [StringCommand(*bits, **commands[0].connector_arguments)]


def settings_requiring_restart(settings: dict[str, str], current: dict | None) -> list[str]:
    """
    Keys of ``settings`` that differ from ``current`` (a ``PostfixMainCf`` value) and only
    take effect after a stop/start, not a reload (``inet_interfaces``, ``inet_protocols``).
    Use it to pass ``restart=`` to ``reload``.
    """
    existing = (current or {}).get("settings") or {}
    return sorted(
        key
        for key, value in settings.items()
        if key in RESTART_REQUIRED_SETTINGS and _differs(existing, key, value)
    )


@operation()
def main_cf(settings: dict[str, str], current: Current = None) -> Commands:
    """
    Set main.cf parameters with ``postconf``, changing only what differs.

    + settings: parameter name -> value, e.g. ``{"relayhost": "[smtp.mailgun.org]:587"}``
    + current: a ``facts.postfix.PostfixMainCf`` value; read from the host when ``None``

    All differing parameters are written with one ``postconf -e``; values are compared
    whitespace-normalized (``a,b`` equals ``a, b``). A missing main.cf is created empty,
    root 0644, first: ``postconf -e`` fails without one.

    **Example:**

    .. code:: python

        postfix.main_cf(
            name="Configure Postfix as a Mailgun null client",
            settings={"relayhost": "[smtp.mailgun.org]:587", "inet_interfaces": "loopback-only"},
        )
    """
    for key, value in settings.items():
        _check_parameter_name(key)
        _check_single_line(f"main.cf value of {key}", value)

    current = _installed_or_reread(current, PostfixMainCf)
    existing = current["settings"] if current["main_cf"] else {}

    to_set = {key: value for key, value in settings.items() if _differs(existing, key, value)}

    if not to_set:
        host.noop(f"main.cf has all {len(settings)} settings")
        return

    yield _with_main_cf(StringCommand(
        "postconf", "-e", *(QuoteString(f"{key}={value}") for key, value in to_set.items()),
        "&&", COOL_MAIN_CF,
    ), exists=current["main_cf"])


def _normalized_entry(service: str, service_type: str, entry: str) -> str:
    _check_single_line("entry", entry)
    fields = entry.split()
    if len(fields) < 8 or fields[:2] != [service, service_type]:
        raise OperationValueError(
            f"entry must be a full master.cf line starting with '{service} {service_type}' "
            f"and 8 or more fields, got {entry!r}"
        )
    return " ".join(fields)


@operation()
def master_service(
    service: str,
    service_type: str,
    enabled: bool,
    entry: str | None = None,
    current: Current = None,
) -> Commands:
    """
    Enable or disable (comment out) a master.cf service.

    + service: service name, e.g. ``smtp``
    + service_type: ``inet``, ``unix``, ``unix-dgram``, ``fifo`` or ``pass``
    + enabled: whether the service should be active
    + entry: the full master.cf line to write when enabling, e.g.
      ``"smtp inet n - y - - smtpd"``; defaults to the commented-out entry, if any
    + current: a ``facts.postfix.PostfixMasterServices`` value; read when ``None``

    Disabling runs ``postconf -M# service/type`` (comments out the entry and its
    ``-o`` lines); enabling runs ``postconf -M service/type='<entry>'``, which appends
    a new active line and leaves the commented one in place.

    **Example:**

    .. code:: python

        postfix.master_service(
            name="Disable the inbound SMTP listener",
            service="smtp", service_type="inet", enabled=False,
        )
    """
    if not isinstance(service, str) or not _SERVICE_NAME.fullmatch(service):
        raise OperationValueError(f"invalid master.cf service name: {service!r}")
    if service_type not in SERVICE_TYPES:
        raise OperationValueError(
            f"invalid master.cf service type {service_type!r}, "
            f"use one of {', '.join(SERVICE_TYPES)}"
        )
    wanted_entry = _normalized_entry(service, service_type, entry) if entry is not None else None
    key = f"{service}/{service_type}"

    current = _installed_or_reread(current, PostfixMasterServices)
    existing: dict[str, Any] | None = (current["services"].get(key) if current["installed"]
                                       else None)
    is_enabled = bool(existing and existing["enabled"])

    if not enabled:
        if current["installed"] and not is_enabled:
            host.noop(f"master.cf service {key} is {'disabled' if existing else 'not defined'}")
            return
        # Not installed yet (prepare time): the package's master.cf will have it enabled.
        command = StringCommand("postconf", "-M#", QuoteString(key))
    else:
        if wanted_entry is None and existing:
            wanted_entry = normalize_value(existing["entry"])
        if wanted_entry is None:
            if not current["installed"]:
                host.noop(f"postfix is not installed yet, cannot tell how to enable {key}")
                return
            raise OperationValueError(f"master.cf has no entry for {key}: pass entry=")
        if (existing is not None and is_enabled
                and normalize_value(existing["entry"]) == wanted_entry):
            host.noop(f"master.cf service {key} is enabled")
            return
        command = StringCommand("postconf", "-M", QuoteString(f"{key}={wanted_entry}"))

    yield _with_main_cf(command, exists=current["main_cf"])


def _secret_text(content: HiddenValue | str) -> str:
    """The raw secret, newline-terminated (pyinfra's stdin writer appends one anyway)."""
    raw = content.unmask() if isinstance(content, HiddenValue) else content
    if not isinstance(raw, str):
        raise OperationValueError("content must be a str or a HiddenValue holding a str")
    return raw if raw.endswith("\n") else raw + "\n"


def prefetch_secret_stamp(content: HiddenValue | str) -> None:
    """Start the stamp key of ``content`` before the state read comes back (``secret_stamp``)."""
    secret_stamp.prefetch(_secret_text(content))


def _check_path(path: str) -> None:
    _check_single_line("path", path)
    if not path.startswith("/") or path.endswith("/"):
        raise OperationValueError(f"path must be an absolute file path, got {path!r}")


def _owner_mode_commands(path: str, state: dict) -> list[StringCommand]:
    """chown/chmod only what differs from root:root 600."""
    commands = []
    if (state["user"], state["group"]) != SECRET_OWNER:
        commands.append(StringCommand("chown", ":".join(SECRET_OWNER), QuoteString(path)))
    if state["mode"] != SECRET_MODE:
        commands.append(StringCommand("chmod", str(SECRET_MODE), QuoteString(path)))
    return commands


def _write_command(script: str, path: str, stdin: str, *extra: str) -> StringCommand:
    """The content goes on stdin, never on a pseudo-terminal: with ``_get_pty=True`` (in the
    inventory, for a ``requiretty`` sudoers, or on the call) the terminal echoes what it is
    given, so the SASL line came back as the command's output (-vv shows it; a failure too)."""
    return StringCommand(
        "sh", "-c", QuoteString(script), "lockdown-secret", QuoteString(path),
        ":".join(SECRET_OWNER), *(QuoteString(arg) for arg in extra), _stdin=stdin,
        _get_pty=False,
    )


def _map_file_commands(path: str, raw: str, state: dict) -> tuple[list[StringCommand], bool]:
    """The commands ``map_file`` yields, and whether the content differs (by SHA-256)."""
    if state["type"] == "other":
        raise OperationValueError(f"{path} exists and is not a regular file")
    digest = hashlib.sha256(raw.encode()).hexdigest()
    if state["type"] == "file" and state.get("sha256") == digest:
        return _owner_mode_commands(path, state), False
    return [_write_command(_WRITE_SECRET_SCRIPT, path, raw)], True


def secret_map_current(state: dict, content: HiddenValue | str) -> bool:
    """Whether the secret map described by ``state`` (a ``SecretFileState``) holds ``content``
    and nothing else: its stamp is valid (untouched since lockdown wrote it) and made from it."""
    return state["type"] == "file" and stamp_matches(state.get("stamp"), _secret_text(content))


def _secret_map_commands(path: str, raw: str, state: dict,
                         keep_line_of: str | None = None) -> tuple[list[StringCommand], bool]:
    """
    The commands writing a secret map, and whether the content differs: current when the
    stamp is valid (the map untouched since lockdown wrote it) and made from ``raw``.
    ``keep_line_of``: also keep the map's line for that key (a bridge, ``_WRITE_BRIDGE_SCRIPT``).
    """
    if state["type"] == "other":
        raise OperationValueError(f"{path} exists and is not a regular file")
    if keep_line_of is not None:
        return [_write_command(_WRITE_BRIDGE_SCRIPT, path, raw, keep_line_of)], True
    if secret_map_current(state, raw):
        return _owner_mode_commands(path, state), False
    return [_write_command(_WRITE_STAMPED_SECRET_SCRIPT, path, new_stamp(raw) + "\n" + raw)], True


@operation()
def map_file(path: str, content: HiddenValue | str, current: Current = None) -> Commands:
    """
    Write a Postfix map source (root:root 0600) without its content appearing in a command.

    + path: absolute path of the file, e.g. ``/etc/postfix/sasl_passwd``
    + content: the file content, preferably a ``HiddenValue``; a newline is appended if
      missing
    + current: a ``facts.postfix.MapFileState`` value for ``path``; read when ``None``

    For maps that hold no secret (it compares by SHA-256, which the state read prints; a
    secret goes through ``sasl_password_map``). The content goes over stdin to ``sh -c``
    which, with ``umask 077``, writes a temp file in the same directory, chowns and chmods
    it, then ``mv -f``s it over ``path``. When the SHA-256 already matches only a wrong owner
    or mode is fixed; otherwise it is a noop.

    **Example:**

    .. code:: python

        postfix.map_file(
            name="Write the Mailgun SASL password map",
            path="/etc/postfix/sasl_passwd",
            content=HiddenValue(f"[smtp.mailgun.org]:587 {login}:{password}"),
        )
    """
    _check_path(path)
    raw = _secret_text(content)
    if current is None:
        current = host.get_fact(MapFileState, path=path)
    commands, _ = _map_file_commands(path, raw, current)
    if not commands:
        host.noop(f"map source {path} is up to date")
    yield from _one_command(commands)


def _compiled_map_suffix(db_type: str) -> str:
    if db_type not in COMPILED_MAP_SUFFIX:
        raise OperationValueError(
            f"unsupported map type {db_type!r}, use one of {', '.join(COMPILED_MAP_SUFFIX)}"
        )
    return COMPILED_MAP_SUFFIX[db_type]


def _compile_map_commands(
    path: str, db_type: str, source_changed: bool, state: dict, source_private: bool
) -> list[StringCommand]:
    """
    postmap when the compiled map is missing, older than the source or the source changed;
    and the compiled map made root:root 0600 where it is (or will be) otherwise. postmap keeps
    an existing compiled map's owner and mode, so those are fixed BEFORE it writes the new
    content there (a 0644 map from an older run must not receive the new secret); a new one
    gets the source's owner and mode, fixed after when the source is not private.
    ``source_private``: the source is root 0600 by the time postmap runs.
    """
    suffix = _compiled_map_suffix(db_type)
    compiled = state["compiled"].get(suffix, {"exists": False})
    stale = (
        source_changed
        or not compiled["exists"]
        or compiled["mtime_ns"] < (state.get("mtime_ns") or 0)
    )
    postmap = [StringCommand("postmap", QuoteString(f"{db_type}:{path}"))] if stale else []
    if compiled["exists"]:
        return _owner_mode_commands(f"{path}.{suffix}", compiled) + postmap
    if source_private or state["type"] != "file":
        return postmap  # postmap copies the root 0600 source's owner and mode
    return postmap + _owner_mode_commands(f"{path}.{suffix}", state)


@operation()
def sasl_password_map(path: str, content: HiddenValue | str, db_type: str | None,
                      keep_line_of: str | None = None, current: Current = None) -> Commands:
    """
    Write the SASL password map source (root 0600, content via stdin only) and compile it.

    + path: the source file, e.g. ``/etc/postfix/sasl_passwd``
    + content: ``"[smtp.mailgun.org]:587 login:password"``, preferably a ``HiddenValue``
    + db_type: map type for ``postmap`` (``PostfixMapTypes``' ``default``); ``None`` asks
      Postfix when the operation runs (Postfix is installed earlier in the same deploy)
    + keep_line_of: during a relayhost change, the key main.cf names until the reload: the
      map's current line for it is kept (copied on the host), so the old relay keeps its own
      credentials; the map is then always written, without a stamp (not the final content)
    + current: a ``facts.postfix.SecretFileState`` value for ``path``; read when ``None``

    Writes like ``map_file``, but decides "is the map current?" from the stamp next to it
    (``secret_stamp.py``: a salted scrypt key, rewritten with the map; a map
    edited by hand since is rewritten), never from a digest of the secret. Then compiles the
    map with ``postmap``, forced when the content changed, so the deploy calls one operation
    (and the host runs one remote command).

    **Example:**

    .. code:: python

        postfix.sasl_password_map(
            name="Mailgun SASL password map",
            path="/etc/postfix/sasl_passwd",
            content=HiddenValue(f"[smtp.mailgun.org]:587 {login}:{password}"),
            db_type=map_types["default"],
        )
    """
    _check_path(path)
    if db_type is None:
        db_type = host.get_fact(PostfixMapTypes)["default"]
        if db_type is None:
            raise OperationError("postfix is not installed: cannot tell its map type")
    _compiled_map_suffix(db_type)
    raw = _secret_text(content)
    if keep_line_of is not None:
        _check_single_line("keep_line_of", keep_line_of)
    if current is None:
        current = host.get_fact(SecretFileState, path=path)

    commands, content_changed = _secret_map_commands(path, raw, current, keep_line_of)
    commands += _compile_map_commands(path, db_type, content_changed, current, source_private=True)
    if not commands:
        host.noop(f"SASL password map {path} and its {db_type} map are up to date")
    yield from _one_command(commands)


def _start_commands(status: dict) -> list[str]:
    """
    Enable at boot and start, right after POSTFIX_CHECK. Under systemd this is a restart:
    Debian's postfix.service is a RemainAfterExit oneshot, which `systemctl start` leaves
    alone while master is dead.
    """
    if not status["systemd"]:
        return [] if status["running"] else [_after_check("postfix start")]
    if status["unit_state"] == "masked":
        raise OperationError("postfix.service is masked: unmask it first")
    commands = []
    if not status["enabled"]:
        commands.append("systemctl enable postfix.service")
    if not status["running"]:
        commands.append(_after_check("systemctl restart postfix.service"))
    return commands


@operation()
def note_pending(action: str, current: Current = None) -> Commands:
    """
    Note on the host that Postfix owes a ``reload`` or a ``restart``, BEFORE the run changes
    its configuration. ``reload`` removes the note as its last command, so a run killed (or
    cut off) between a change and the reload leaves it, and the next run applies the change
    although every file already matches. A noted ``restart`` is never weakened to a reload.

    + action: ``reload`` or ``restart``
    + current: a ``facts.postfix.PostfixStatus`` value (its ``pending``); read when ``None``
    """
    if action not in APPLY_ACTIONS:
        raise OperationValueError(f"action: {action!r} is not one of {', '.join(APPLY_ACTIONS)}")
    if current is None:
        current = host.get_fact(PostfixStatus)
    noted = current.get("pending")
    if noted == action or noted == "restart":
        host.noop(f"Postfix already owes a {noted}")
        return
    directory = APPLY_PENDING.rsplit("/", 1)[0]
    yield StringCommand("mkdir", "-p", directory, "&&", "echo", action, ">", APPLY_PENDING)


@operation()
def reload(restart: bool = False, flush: bool = False, current: Current = None) -> Commands:
    """
    Check the configuration with ``postfix check``, then apply it: reload a running
    Postfix (restart with ``restart=True``), or enable and start a stopped one.

    + restart: stop and start instead of reload; needed when ``inet_interfaces`` or
      ``inet_protocols`` changed (see ``settings_requiring_restart``)
    + flush: then ``postqueue -f``: deferred mail is retried at once (new relay credentials)
    + current: a ``facts.postfix.PostfixStatus`` value; read when ``None``

    One remote command, each step only after the one before it succeeded: a failing
    ``postfix check`` fails the host with Postfix's own message before anything touches the
    running Postfix. Meant to be called with ``_if=any_changed(...)``. Its last step removes
    the note of ``note_pending``: only a reload that ran clears it.

    **Example:**

    .. code:: python

        postfix.reload(
            name="Check and reload Postfix",
            restart=bool(settings_requiring_restart(settings, state["main_cf"])),
            _if=any_changed(main, smtp_listener, sasl_map),
        )
    """
    current = _installed_or_reread(current, PostfixStatus)
    if not current["running"]:
        apply = _start_commands(current)
    elif current["systemd"]:
        apply = [_after_check("systemctl restart postfix.service") if restart
                 else "systemctl reload postfix.service"]
    else:
        apply = [_after_check("postfix stop && postfix start") if restart else "postfix reload"]
    yield _chained([POSTFIX_CHECK, *apply, f"rm -f {APPLY_PENDING}",
                    *(["postqueue -f"] if flush else [])])


@operation()
def running(current: Current = None) -> Commands:
    """
    Make sure Postfix runs and is enabled at boot; ``postfix check`` runs before a start.

    + current: a ``facts.postfix.PostfixStatus`` value; read when ``None``
    """
    current = _installed_or_reread(current, PostfixStatus)
    commands = _start_commands(current)
    if not commands:
        host.noop("postfix is running" + (" and enabled" if current["systemd"] else ""))
        return
    yield _chained([POSTFIX_CHECK, *commands] if not current["running"] else commands)
