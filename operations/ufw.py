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

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.exceptions import OperationValueError


from .decide import operation
from ..facts.ufw import DEADMAN_UNIT, UfwConfig
from .ufw_rules import (
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

UFW_DEFAULTS_FILE = "/etc/default/ufw"
UFW_BIN = "/usr/sbin/ufw"
DEADMAN_UNIT_DIR = "/etc/systemd/system"


@operation()
def default_policy(direction: str, policy: str, current: dict | None = None):
    """
    Set ufw's default policy for one direction (``ufw default POLICY DIRECTION``).

    + direction: ``incoming``, ``outgoing`` or ``routed``
    + policy: ``allow``, ``deny`` or ``reject``
    + current: the UfwConfig value, read from the host when None
    """
    require_choice("direction", direction, POLICY_DIRECTIONS)
    require_choice("policy", policy, POLICIES)
    config = read_config(current)

    if config and config["defaults"].get(direction) == policy:
        host.noop(f"ufw default {direction} policy is {policy}")
        return
    yield StringCommand("ufw", "default", policy, direction)


@operation()
def logging(level: str, current: dict | None = None):
    """
    Set ufw's logging level (``ufw logging LEVEL``).

    + level: ``off``, ``low``, ``medium``, ``high`` or ``full``
    + current: the UfwConfig value, read from the host when None
    """
    require_choice("level", level, LOG_LEVELS)
    config = read_config(current)

    if config and config["logging"] == level:
        host.noop(f"ufw logging is {level}")
        return
    yield StringCommand("ufw", "logging", level)


@operation()
def ipv6(enabled: bool, current: dict | None = None):
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
    config = read_config(current)
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
def enable(current: dict | None = None):
    """
    Enable ufw (``ufw --force enable``) when it is not enabled yet.

    Enabling applies the default policies immediately: allow SSH first (see
    ``ufw_rules.lockout_reason``).

    + current: the UfwConfig value, read from the host when None
    """
    config = read_config(current)

    if config and config["enabled"]:
        host.noop("ufw is enabled")
        return
    yield StringCommand("ufw", "--force", "enable")


@operation()
def deadman_arm(seconds: int = 120, current: dict | None = None):
    """
    Before the FIRST enable, schedule ``ufw --force disable`` ``seconds`` from now with a
    systemd timer (unit files in /etc/systemd/system, enabled, so a reboot before the disarm
    fires it ``seconds`` after the boot): if the enable cuts SSH, the host opens itself again.
    Cancel it with ``deadman_disarm`` once a new SSH connection has been seen to work.

    Nothing is scheduled when ufw is already enabled (pass the state read BEFORE the run as
    ``current``, the same value ``deadman_disarm`` gets), unless a timer from an earlier
    failed check is still pending: it is replaced, so the delay counts from now, and this
    run's check decides again whether to cancel it.

    + seconds: delay before ufw is disabled again (>= 1)
    + current: the UfwConfig value, read from the host when None
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise OperationValueError(f"seconds: {seconds!r} must be a whole number >= 1")
    config = read_config(current)

    if not deadman_needed(config):
        host.noop("ufw is already enabled: no dead-man switch needed")
        return
    unit = DEADMAN_UNIT
    units = f"{unit}.timer {unit}.service"
    yield StringCommand("sh", "-c", QuoteString(
        f"systemctl stop {units} 2>/dev/null; systemctl reset-failed {units} 2>/dev/null; true"))
    yield StringCommand("sh", "-c", QuoteString(deadman_units_script(seconds)))


def deadman_units_script(seconds: int) -> str:
    """Install and start the dead-man timer as unit files, not a transient timer: a reboot
    between the enable and the disarm must not cancel it. Enabled, it is started again at
    boot, and OnActiveSec counts from that start (OnBootSec would count from the last boot,
    long past when it is armed, and fire at once)."""
    service = ("[Unit]\\nDescription=lockdown: ufw dead-man switch\\n[Service]\\nType=oneshot"
               f"\\nExecStart={UFW_BIN} --force disable\\n")
    timer = ("[Unit]\\nDescription=lockdown: ufw dead-man switch, disables ufw unless cancelled"
             f"\\n[Timer]\\nOnActiveSec={seconds}\\nAccuracySec=1s"
             "\\n[Install]\\nWantedBy=timers.target\\n")
    path = f"{DEADMAN_UNIT_DIR}/{DEADMAN_UNIT}"
    return (f"set -e; printf '{service}' > {path}.service; printf '{timer}' > {path}.timer; "
            f"systemctl daemon-reload; systemctl enable --now {DEADMAN_UNIT}.timer")


@operation()
def deadman_disarm(current: dict | None = None):
    """
    Cancel the dead-man timer armed by ``deadman_arm``: stop and disable it, remove its unit
    files.

    Yields only when ``deadman_arm`` armed it, i.e. when ufw was not enabled or a timer was
    pending in ``current`` (pass the same pre-run state to both).

    + current: the UfwConfig value, read from the host when None
    """
    config = read_config(current)

    if not deadman_needed(config):
        host.noop("ufw was already enabled: no dead-man switch to cancel")
        return
    path = f"{DEADMAN_UNIT_DIR}/{DEADMAN_UNIT}"
    yield StringCommand("sh", "-c", QuoteString(
        f"systemctl disable --now {DEADMAN_UNIT}.timer 2>/dev/null; "
        f"rm -f {path}.timer {path}.service && systemctl daemon-reload"))


@operation()
def rules(
    declared: list[dict],
    prune: str = "tagged",
    tag: str = "lockdown",
    ipv6: bool | None = None,
    current: dict | None = None,
):
    """
    Make ufw's rules match ``declared``: add what is missing, then delete what is not declared.

    Adds come before deletes, so a replaced rule never leaves an open (or closed) window.
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
    require_choice("prune", prune, PRUNE_MODES)
    config = read_config(current)
    manage_v6 = ipv6 if ipv6 is not None else bool(config["ipv6"]) if config else True
    wanted = checked_rules(declared, prune, tag, manage_v6)
    existing = [dict(rule) for rule in config["rules"]] if config else []
    existing = [rule for rule in existing if manage_v6 or not rule["v6"]]

    to_add = rules_to_add(wanted, existing)
    to_delete = rules_to_delete(wanted, existing, prune, tag)
    if not to_add and not to_delete:
        host.noop(f"ufw rules are up to date ({len(wanted)} declared)")
        return
    for rule, both_families in merge_families(to_add):
        yield ufw_command(rule_arguments(rule, both_families=both_families))
    for rule, both_families in merge_families(to_delete):
        yield ufw_command(rule_arguments(rule, delete=True, both_families=both_families))


# ---------------------------------------------------------------- helpers


def read_config(current):
    """The UfwConfig value: the deploy's ``current`` read when given, else a fresh read."""
    return current if current is not None else host.get_fact(UfwConfig)


def deadman_needed(config) -> bool:
    """ufw not enabled (or not installed), or a dead-man timer still pending."""
    return not (config and config["enabled"]) or bool(config.get("deadman_armed"))


def require_choice(field: str, value, choices) -> None:
    if value not in choices:
        raise OperationValueError(f"{field}: {value!r} is not one of {', '.join(choices)}")


def checked_rule(spec: dict) -> dict:
    try:
        return normalize_rule(dict(spec))
    except (ValueError, TypeError) as error:
        raise OperationValueError(str(error))


def checked_rules(declared, prune: str, tag: str, manage_v6: bool) -> list[dict]:
    """Validate, de-duplicate and check the declared rules against prune/tag/IPv6."""
    wanted: list[dict] = []
    for spec in declared:
        rule = checked_rule(spec)
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


def rules_to_delete(wanted: list[dict], existing: list[dict], prune: str, tag: str) -> list[dict]:
    if prune == "off":
        return []
    wanted_identities = {identity(rule) for rule in wanted}
    return [
        rule
        for rule in existing
        if identity(rule) not in wanted_identities and (prune == "all" or is_tagged(rule, tag))
    ]


def merge_families(rules: list[dict]) -> list[tuple[dict, bool]]:
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


def ufw_command(arguments: list[str]) -> StringCommand:
    return StringCommand("ufw", *(QuoteString(argument) for argument in arguments))


def describe(rule: dict) -> str:
    family = "v6" if rule["v6"] else "v4"
    return f"{' '.join(rule_arguments(rule))} ({family})"
