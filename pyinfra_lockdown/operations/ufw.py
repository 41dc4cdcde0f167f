"""
Operations for the ufw firewall.

Each operation takes explicit arguments (never ``host.data``) and an optional ``current``: the
``facts.ufw.UfwConfig`` value from the deploy's combined state read. When ``current`` is None
the operation reads ``UfwConfig`` itself (so it also works alone, e.g. from the CLI, and
re-reads at execute time when ufw was not installed yet). When ufw is not installed the
state is unknown: operations then yield their command unconditionally (all are idempotent in
ufw) and never delete anything.

None of these operations ever runs ``ufw reset``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pyinfra import host
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationValueError

from .._typing import Commands, Current
from ..facts.ufw import (
    DEADMAN_ARMED_FILE,
    DEADMAN_BOOT_UNIT,
    DEADMAN_DIR,
    DEADMAN_FIRED_FILE,
    DEADMAN_UNIT,
    UfwConfig,
    ufw_active,
)
from ..ufw_rules import (
    LOG_LEVELS,
    POLICIES,
    POLICY_DIRECTIONS,
    PRUNE_MODES,
    family_twin_key,
    identity,
    is_tagged,
    normalize_rule,
    rule_arguments,
)

# The operations; the other public names are helpers the package's deploys and audit share.
__all__ = ["default_policy", "logging", "ipv6", "enable", "enable_under_deadman", "rules"]

UFW_DEFAULTS_FILE = "/etc/default/ufw"
UFW_BIN = "/usr/sbin/ufw"
DEADMAN_UNIT_DIR = "/etc/systemd/system"


@operation()
def default_policy(direction: str, policy: str, current: Current = None) -> Commands:
    """
    Set ufw's default policy for one direction (``ufw default POLICY DIRECTION``).

    + direction: ``incoming``, ``outgoing`` or ``routed``
    + policy: ``allow``, ``deny`` or ``reject``
    + current: the UfwConfig value, read from the host when None
    """
    _require_choice("direction", direction, POLICY_DIRECTIONS)
    _require_choice("policy", policy, POLICIES)
    config = _read_config(current)

    if config and config["defaults"].get(direction) == policy:
        host.noop(f"ufw default {direction} policy is {policy}")
        return
    yield StringCommand("ufw", "default", policy, direction)


@operation()
def logging(level: str, current: Current = None) -> Commands:
    """
    Set ufw's logging level (``ufw logging LEVEL``).

    + level: ``off``, ``low``, ``medium``, ``high`` or ``full``
    + current: the UfwConfig value, read from the host when None
    """
    _require_choice("level", level, LOG_LEVELS)
    config = _read_config(current)

    if config and config["logging"] == level:
        host.noop(f"ufw logging is {level}")
        return
    yield StringCommand("ufw", "logging", level)


@operation()
def ipv6(enabled: bool, current: Current = None) -> Commands:
    """
    Turn ufw's IPv6 handling on or off (``IPV6=`` in ``/etc/default/ufw``).

    With ``IPV6=no`` ufw drops ALL IPv6 traffic except loopback once enabled, so check the
    SSH session's family first (``ufw_rules.lockout_reason``). When ufw is active the change
    only takes effect on reload, so ``ufw reload`` follows the edit (in the same command).

    + enabled: whether ufw should manage (and filter) IPv6
    + current: the UfwConfig value, read from the host when None
    """
    if not isinstance(enabled, bool):
        raise OperationValueError(f"enabled: {enabled!r} must be True or False")
    config = _read_config(current)
    value = "yes" if enabled else "no"

    if config and config["ipv6"] == enabled:
        host.noop(f"ufw IPV6 is {value}")
        return
    if config and config["ipv6"] is None:
        edit = StringCommand("sh", "-c", QuoteString(f"echo IPV6={value} >> {UFW_DEFAULTS_FILE}"))
    else:
        expression = QuoteString(f"s/^IPV6=.*/IPV6={value}/")
        edit = StringCommand("sed", "-i", expression, UFW_DEFAULTS_FILE)
    # One command: a run killed between the edit and the reload would leave the file saying
    # what the running firewall does not do, and the next run would see nothing to change.
    yield StringCommand(edit, "&&", "ufw", "reload") if config and config["enabled"] else edit


@operation()
def enable(current: Current = None) -> Commands:
    """
    Make ufw's firewall the one running: ``ufw --force enable`` when ufw.conf does not say
    enabled; when it does but the kernel runs something else (rules flushed, chains or their
    jumps gone: ``UfwConfig``'s ``kernel_problems``), remove what is left of ufw's chains and
    ``ufw reload`` (ufw itself re-adds the jumps from INPUT/OUTPUT/FORWARD only when its chains
    are missing, so a reload alone leaves flushed jumps flushed).

    Enabling applies the default policies immediately: allow SSH first (see
    ``ufw_rules.lockout_reason``).

    + current: the UfwConfig value, read from the host when None
    """
    config = _read_config(current)

    if ufw_active(config):
        host.noop("ufw is enabled and its rules are loaded in the kernel")
        return
    yield _activate_command(config)


def _activate_command(config: dict[str, Any] | None) -> StringCommand:
    if config and config["enabled"]:
        return StringCommand("sh", "-c", QuoteString(RELOAD_INTO_KERNEL))
    return StringCommand("ufw", "--force", "enable")


# ufw's chains out of the kernel (jumps from the built-in chains first, then the chains, IPv4
# and IPv6), then ufw loads everything again: one command, so no kill can leave it halfway.
RELOAD_INTO_KERNEL = (
    "for t in iptables ip6tables; do for b in INPUT OUTPUT FORWARD; do "
    "$t -S $b 2>/dev/null | grep -E -- '-j ufw6?-' | cut -d' ' -f2- | "
    "while read -r rule; do $t -D $rule; done; done; "
    "chains=$($t -S 2>/dev/null | awk '$1 == \"-N\" && $2 ~ /^ufw6?-/ {print $2}'); "
    "for c in $chains; do $t -F $c; done; for c in $chains; do $t -X $c; done; done; "
    f"{UFW_BIN} reload"
)


@operation()
def enable_under_deadman(seconds: int, check: Callable[..., Any],
                         check_kwargs: dict[str, Any] | None = None,
                         current: Current = None) -> Commands:
    """
    Enable ufw (or reload it into the kernel, see ``enable``) under a dead-man switch, as ONE
    operation so that the time from arming to disarming is this host's own enable and check,
    whatever the fleet size (pyinfra runs each operation on every host before the next).

    1. arm: a transient timer (``systemd-run --on-active``: no unit file, no daemon-reload)
       that runs ``ufw --force disable`` in ``seconds``, plus the marker
       ``/var/lib/lockdown/ufw-deadman-armed``; a boot unit, installed once and enabled
       without a reload, starts the same timer at boot while that marker exists, so a
       reboot before the disarm does not cancel the switch;
    2. the enable, in the same remote command as the arm, run only once it is armed;
    3. ``check`` (a ``python.call``-style function: a NEW SSH connection gets in; False fails
       the host and leaves the timer armed);
    4. disarm: stop the timer, then verify that it did not fire and that ufw is active (the
       host fails with the reason otherwise), and only then remove the marker.

    Needed when ufw is not active, or when an earlier switch was left armed, pending or fired
    (it is armed again: the delay counts from now, this run's check decides).

    + seconds: delay before ufw is disabled again (>= 1; settings require more, see there)
    + check: function(state, host, **check_kwargs) -> bool, run between enable and disarm
    + check_kwargs: its keyword arguments
    + current: the UfwConfig value, read from the host when None
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise OperationValueError(f"seconds: {seconds!r} must be a whole number >= 1")
    config = _read_config(current)

    if not deadman_needed(config):
        host.noop("ufw is enabled and no dead-man switch is left: nothing to guard")
        return
    arm = StringCommand("sh", "-c", QuoteString(_deadman_arm_script(seconds)))
    # The arm and the enable are one remote command: the enable runs only once it is armed.
    yield arm if ufw_active(config) else StringCommand(arm, "&&", _activate_command(config))
    yield FunctionCommand(check, (), dict(check_kwargs or {}))
    yield StringCommand("sh", "-c", QuoteString(DEADMAN_DISARM_SCRIPT))


DEADMAN_SERVICE_COMMAND = f"/bin/sh -c 'touch {DEADMAN_FIRED_FILE}; exec {UFW_BIN} --force disable'"
# systemd-run's arguments for the timer (the delay follows): the service it fires writes the
# "fired" file first, so the disarm and the audit can tell a fired switch from a cancelled one.
DEADMAN_RUN = (f"systemd-run --quiet --unit={DEADMAN_UNIT} --timer-property=AccuracySec=1s "
               "--property=Type=oneshot")
# At boot, only while the marker (``DELAY=<seconds>s``) exists: the same timer again, counted
# from the boot. Written with printf: no single quote, no percent sign in it.
DEADMAN_BOOT_UNIT_TEXT = (
    "[Unit]\\nDescription=lockdown: ufw dead-man switch armed before a reboot\\n"
    f"ConditionPathExists={DEADMAN_ARMED_FILE}\\nAfter=ufw.service\\n"
    f"[Service]\\nType=oneshot\\nEnvironmentFile={DEADMAN_ARMED_FILE}\\n"
    f"ExecStart=/usr/bin/{DEADMAN_RUN} --on-active=${{DELAY}} /bin/sh -c "
    f"\"touch {DEADMAN_FIRED_FILE}; exec {UFW_BIN} --force disable\"\\n"
    "[Install]\\nWantedBy=multi-user.target\\n"
)
LEGACY_UNIT_FILES = (f"{DEADMAN_UNIT_DIR}/{DEADMAN_UNIT}.timer "
                     f"{DEADMAN_UNIT_DIR}/{DEADMAN_UNIT}.service")


def _deadman_arm_script(seconds: int) -> str:
    """One command: replace a pending timer, install the boot unit once, write the marker,
    start the transient timer. No daemon-reload unless an older lockdown's unit files are
    there (removed once)."""
    boot_unit = f"{DEADMAN_UNIT_DIR}/{DEADMAN_BOOT_UNIT}"
    units = f"{DEADMAN_UNIT}.timer {DEADMAN_UNIT}.service"
    return (
        f"if [ -e {DEADMAN_UNIT_DIR}/{DEADMAN_UNIT}.timer ]; then "
        f"systemctl disable --now {DEADMAN_UNIT}.timer 2>/dev/null; rm -f {LEGACY_UNIT_FILES}; "
        "systemctl daemon-reload; fi; "
        f"systemctl stop {units} 2>/dev/null; systemctl reset-failed {units} 2>/dev/null; "
        f"set -e; mkdir -p {DEADMAN_DIR}; "
        f"printf '{DEADMAN_BOOT_UNIT_TEXT}' > {boot_unit}.tmp; "
        f"if cmp -s {boot_unit}.tmp {boot_unit}; then rm -f {boot_unit}.tmp; "
        f"else mv -f {boot_unit}.tmp {boot_unit}; fi; "
        f"systemctl --no-reload --quiet enable {DEADMAN_BOOT_UNIT}; "
        f"rm -f {DEADMAN_FIRED_FILE}; echo DELAY={seconds}s > {DEADMAN_ARMED_FILE}; "
        f"{DEADMAN_RUN} --on-active={seconds}s {DEADMAN_SERVICE_COMMAND}"
    )


DEADMAN_DISARM_SCRIPT = (
    f"systemctl stop {DEADMAN_UNIT}.timer 2>/dev/null; i=0; "
    # a firing caught in the middle: let it finish, then look at what it did
    f'while [ "$(systemctl is-active {DEADMAN_UNIT}.service 2>/dev/null)" = activating ] '
    '&& [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; '
    f"if [ -e {DEADMAN_FIRED_FILE} ]; then "
    "echo 'lockdown: the dead-man timer FIRED before it was cancelled: it ran "
    "`ufw --force disable`, the firewall is OFF. This host took longer than "
    "firewall_deadman_seconds from the arm to the disarm; run the deploy again (with a longer "
    "delay if it was slow)' >&2; exit 1; fi; "
    "if ! grep -q -i '^ENABLED=yes' /etc/ufw/ufw.conf || "
    "! iptables -S INPUT 2>/dev/null | grep -q -x -- '-A INPUT -j ufw-before-input'; then "
    "echo 'lockdown: ufw is NOT active at the dead-man disarm (ufw.conf or the kernel says "
    "otherwise): its marker stays, so the audit fails and the next run arms it again; check "
    "`ufw status verbose` and run the deploy again' "
    f">&2; exit 1; fi; rm -f {DEADMAN_ARMED_FILE}"
)


@operation()
def rules(
    declared: list[dict],
    prune: str = "tagged",
    tag: str = "lockdown",
    ipv6: bool | None = None,
    current: Current = None,
) -> Commands:
    """
    Make ufw's rules match ``declared``: add what is missing, then delete what is not declared.

    Adds come before deletes, so a replaced rule never leaves an open (or closed) window;
    all of them are one remote command (each ``ufw`` call only after the one before it
    succeeded).
    A declared rule whose ufw identity exists with another action or comment is re-added,
    which ufw turns into an in-place update. Deletes name the exact rule and family
    (``ufw delete allow proto tcp from 0.0.0.0/0 to any port 22``); never ``ufw reset``.

    + declared: normalized rule dicts, one per address family (see ``ufw_rules.parse_service``)
    + prune: ``tagged`` deletes undeclared rules whose comment is ``tag`` or starts with
      ``tag:``; ``all`` deletes every undeclared rule; ``off`` deletes nothing
    + tag: the comment tag marking rules this package owns
    + ipv6: whether IPv6 rules can be managed (ufw refuses them with IPV6=no); None takes the
      current IPV6 setting. Pass the desired setting when ``ufw.ipv6`` runs before this.
    + current: the UfwConfig value, read from the host when None
    """
    _require_choice("prune", prune, PRUNE_MODES)
    config = _read_config(current)
    manage_v6 = ipv6 if ipv6 is not None else bool(config["ipv6"]) if config else True
    wanted = checked_rules(declared, prune, tag, manage_v6)
    existing = [dict(rule) for rule in config["rules"]] if config else []
    existing = [rule for rule in existing if manage_v6 or not rule["v6"]]

    to_add = rules_to_add(wanted, existing)
    to_delete = _rules_to_delete(wanted, existing, prune, tag)
    if not to_add and not to_delete:
        host.noop(f"ufw rules are up to date ({len(wanted)} declared)")
        return
    commands = [_ufw_command(rule_arguments(rule, both_families=both_families))
                for rule, both_families in _merge_families(to_add)]
    commands += [_ufw_command(rule_arguments(rule, delete=True, both_families=both_families))
                 for rule, both_families in _merge_families(to_delete)]
    # ONE remote command, each ufw call only after the one before succeeded (as pyinfra runs
    # an operation's commands): a first converge adds 3 rules, each an SSH channel and a sudo.
    yield _chained(commands)


# ---------------------------------------------------------------- helpers


def _read_config(current: Current) -> dict[str, Any] | None:
    """The UfwConfig value: the deploy's ``current`` read when given, else a fresh read."""
    return current if current is not None else host.get_fact(UfwConfig)


def deadman_needed(config: dict[str, Any] | None) -> bool:
    """ufw not active (or not installed), or a dead-man switch left armed, pending or fired."""
    return config is None or not ufw_active(config) or any((config.get("deadman") or {}).values())


def _require_choice(field: str, value: Any, choices: Iterable[str]) -> None:
    if value not in choices:
        raise OperationValueError(f"{field}: {value!r} is not one of {', '.join(choices)}")


def _checked_rule(spec: dict) -> dict:
    try:
        return normalize_rule(dict(spec))
    except (ValueError, TypeError) as error:
        raise OperationValueError(str(error)) from error


def checked_rules(declared: list[dict[str, Any]], prune: str, tag: str,
                  manage_v6: bool) -> list[dict[str, Any]]:
    """Validate, de-duplicate and check the declared rules against prune/tag/IPv6."""
    wanted: list[dict] = []
    for spec in declared:
        rule = _checked_rule(spec)
        if rule["v6"] and not manage_v6:
            raise OperationValueError(f"IPv6 rule declared while ufw IPv6 is off: {describe(rule)}")
        if prune == "tagged" and not is_tagged(rule, tag):
            raise OperationValueError(
                f"declared rule comment must start with '{tag}:' (else it is never pruned): "
                f"{describe(rule)}",
            )
        if rule in wanted:
            continue
        if any(identity(other) == identity(rule) for other in wanted):
            raise OperationValueError(f"conflicting declared rules for: {describe(rule)}")
        wanted.append(rule)
    return wanted


def rules_to_add(wanted: list[dict], existing: list[dict]) -> list[dict]:
    return [rule for rule in wanted if rule not in existing]


def _rules_to_delete(wanted: list[dict], existing: list[dict], prune: str, tag: str) -> list[dict]:
    if prune == "off":
        return []
    wanted_identities = {identity(rule) for rule in wanted}
    return [
        rule
        for rule in existing
        if identity(rule) not in wanted_identities and (prune == "all" or is_tagged(rule, tag))
    ]


def _merge_families(rules: list[dict]) -> list[tuple[dict, bool]]:
    """
    Pair a v4 rule and its v6 twin (same everything, source and destination "any") into one
    ``from any`` command, as ufw itself writes them; everything else stays per family.
    """
    twins = Counter(family_twin_key(rule) for rule in rules)
    merged, seen = [], set()
    for rule in rules:
        key = family_twin_key(rule)
        pairable = rule["from"] == "any" and rule["to"] == "any" and twins[key] == 2
        if not pairable:
            merged.append((rule, False))
        elif key not in seen:
            seen.add(key)
            merged.append((rule, True))
    return merged


def _chained(commands: list[StringCommand]) -> StringCommand:
    bits: list[object] = [commands[0]]
    for command in commands[1:]:
        bits += ["&&", command]
    return StringCommand(*bits)


def _ufw_command(arguments: list[str]) -> StringCommand:
    return StringCommand("ufw", *(QuoteString(argument) for argument in arguments))


def describe(rule: dict) -> str:
    family = "v6" if rule["v6"] else "v4"
    return f"{' '.join(rule_arguments(rule))} ({family})"
