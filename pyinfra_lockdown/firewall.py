"""ufw: default deny in, only declared services, never cutting the SSH session it runs over."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyinfra import host as current_host
from pyinfra import logger
from pyinfra.api import Host, State, deploy
from pyinfra.operations import python

from . import _pyinfra
from .egress import egress_rules
from .facts.host_state import HostState, LockdownState
from .facts.ufw import DEADMAN_UNIT, ufw_active
from .facts.ufw_output import with_output_kernel
from .operations import docker_guard, packages, ufw
from .plan import apt_update_wanted, host_state, if_needed, installs_with_update
from .settings import FirewallSettings, SettingsError, data_defaults, firewall_settings
from .ufw_rules import lockout_reason, parse_service

FAMILIES_V4_V6, FAMILIES_V4 = (4, 6), (4,)
PACKAGES = ["ufw"]


def firewall_rules(settings: FirewallSettings, ssh_ports: Iterable[int]) -> list[dict[str, Any]]:
    """ufw rules for ``firewall_allowed``; a bad item raises SettingsError naming it."""
    families = FAMILIES_V4_V6 if settings.ipv6 else FAMILIES_V4
    rules: list[dict] = []
    for index, item in enumerate(settings.allowed):
        try:
            rules += parse_service(item, ssh_ports=ssh_ports, families=families)
        except ValueError as error:
            raise SettingsError(f"firewall_allowed[{index}]", f"{item!r}: {error}") from None
    return rules


def declared_rules(settings: FirewallSettings, ssh_ports: list[int]) -> list[dict]:
    """Every rule the deploy keeps: the services let in, then the outgoing mail rules."""
    return firewall_rules(settings, ssh_ports) + egress_rules(settings)


def _names_ssh(item: object) -> bool:
    if isinstance(item, dict):
        item = item.get("service", item.get("port"))
    return str(item).strip().lower().partition("/")[0] == "ssh"


def guard_source_rules(settings: FirewallSettings) -> list[dict]:
    """The declared rules the guard lets published ports in for: every ``firewall_allowed``
    item but ``ssh`` (sshd's ports are never Docker's; leaving them out keeps the guard, and
    a ufw reload, out of every move of sshd)."""
    families = (4, 6) if settings.ipv6 else (4,)
    rules: list[dict] = []
    for item in settings.allowed:
        if not _names_ssh(item):
            rules += parse_service(item, ssh_ports=(22,), families=families)
    return rules


def check_rules_syntax(settings: FirewallSettings) -> None:
    """Validate every item before any host is read (sshd's real ports come later)."""
    declared_rules(settings, ssh_ports=[22])


def sshd_ports(found: HostState) -> list[int]:
    """sshd's real listening ports from the state read (22 when sshd is not installed)."""
    return (found.get("sshd") or {}).get("ports") or [22]


def guard_against_lockout(settings: FirewallSettings, rules: list[dict], found: HostState) -> None:
    """
    Refuse (before any host is changed) a firewall that would cut SSH once it applies: the
    enable, a stricter incoming default and pruning all end with exactly the declared rules
    (rules that ``firewall_prune`` keeps are not counted on), so the declared rules alone
    must keep this session and every sshd port reachable.
    """
    ports, connection = sshd_ports(found), found["ssh_connection"]
    reason = lockout_reason(rules, ports, connection, settings.ipv6,
                            default_incoming=settings.default_incoming)
    if reason:
        raise SettingsError("firewall_allowed", f"refusing to touch the firewall: {reason}",
                            lockout_fix(settings, rules, ports, connection) +
                            "; nothing was changed")


def lockout_fix(settings: FirewallSettings, rules: list[dict], ports: list[int],
                connection: dict | None) -> str:
    """The one change that fixes a refused firewall, for what was declared and found."""
    family = connection["family"] if connection else 4
    opened = sorted({r["port"] for r in rules if r["v6"] == (family == 6)
                     and r["action"] in ("allow", "limit")})
    listening = (f"sshd accepts connections on port(s) {', '.join(map(str, ports))}; the "
                 f"declared rules open {', '.join(opened) or 'nothing'} over IPv{family}")
    if connection and family == 6 and not settings.ipv6:
        return f"{listening}. Set firewall_ipv6: true, or connect over IPv4"
    if "ssh" not in settings.allowed:
        return f'{listening}. Add "ssh" to firewall_allowed (it opens sshd\'s real ports)'
    arrived = int(connection["server_port"]) if connection else None
    if arrived is not None and arrived not in ports:
        return (f"{listening}, but this session arrived on port {arrived}, where sshd does not "
                f'listen (a forwarded port?). Add "{arrived}/tcp" to firewall_allowed, or connect '
                f"to port {ports[0]}")
    return (f"{listening}; a deny rule or a `from` restriction shuts this session out. Allow "
            f"{connection['client'] if connection else 'anywhere'} on port {ports[0]} first")


@deploy("lockdown firewall", data_defaults=data_defaults("firewall"))
def firewall(settings: FirewallSettings | None = None) -> None:
    """
    Converge ufw to ``settings`` (default: the firewall keys of host data, see settings.py).

    + settings: a ``FirewallSettings``; when None it is read and validated from host data
    """
    _pyinfra.name_lost_connections(current_host)
    _pyinfra.send_at_once(current_host)
    settings = settings or firewall_settings(current_host.data)
    check_rules_syntax(settings)
    found = host_state(current_host)
    if found is None:  # this host failed its state read; the others go on
        return
    rules = declared_rules(settings, sshd_ports(found))
    guard_against_lockout(settings, rules, found)
    update = apt_update_wanted(current_host, settings.apt_update)
    install = if_needed(packages.installed, name="Install ufw", packages=PACKAGES,
                        update=update, current=found["packages"], dpkg=found["dpkg"])
    installs_with_update(current_host, install, update)
    if "ufw" in found["packages"]:
        configure(settings, rules, found)
        return
    # ufw's own configuration (its release's defaults) exists only once it is installed: the
    # one extra read after the install (the operations would otherwise each read it).
    python.call(name="Read the host again after installing ufw, then configure it",
                function=_configure_after_install, settings=settings, rules=rules)


def _configure_after_install(settings: FirewallSettings, rules: list[dict]) -> None:
    configure(settings, rules, current_host.get_fact(LockdownState, _sudo=True))


def configure(settings: FirewallSettings, rules: list[dict], found: HostState) -> None:
    """ufw's rules, policies, DOCKER-USER guard and enable, decided from the state read
    (ufw's configuration with the kernel's outgoing rules, and the HostExposure section)."""
    current = with_output_kernel(found["ufw"], found.get("ufw_output"))
    # Only the FIRST enable is guarded (an active ufw keeps established sessions and the
    # lockout guard checks every later change) - or a re-run while the timer of a failed
    # check is still pending: checked again, else it would disable ufw after this run.
    deadman = (settings.deadman and ufw.deadman_needed(current)
               and _pyinfra.connects_over_ssh(current_host))

    if_needed(ufw.ipv6, name=f"ufw IPv6 {'on' if settings.ipv6 else 'off'}",
              enabled=settings.ipv6, current=current)
    if_needed(ufw.rules, name="ufw rules: only the declared ones", declared=rules,
              prune=settings.prune, ipv6=settings.ipv6, current=current)
    for direction in ("incoming", "outgoing", "routed"):
        policy = getattr(settings, f"default_{direction}")
        if_needed(ufw.default_policy, name=f"ufw default {direction}: {policy}",
                  direction=direction, policy=policy, current=current)
    if_needed(ufw.logging, name=f"ufw logging {settings.logging}", level=settings.logging,
              current=current)
    if_needed(docker_guard.docker_user_guard,
              name="DOCKER-USER guard: ports Docker publishes obey the declared rules",
              rules=guard_source_rules(settings),
              families=FAMILIES_V4_V6 if settings.ipv6 else FAMILIES_V4,
              ufw_active=ufw_active(current), current=found.get("exposure"))
    if not deadman:
        if_needed(ufw.enable, name="ufw enabled", current=current)
        return
    # Arm, enable, check and disarm in ONE operation: pyinfra runs each operation on every host
    # before the next, so as separate operations the timer's window grew with the fleet.
    ufw.enable_under_deadman(
        name=f"ufw enabled under a dead-man switch ({settings.deadman_seconds} s), cancelled "
        "once a NEW SSH connection gets in", seconds=settings.deadman_seconds,
        check=check_new_ssh_connection,
        check_kwargs={"seconds": settings.deadman_seconds, "port": settings.deadman_check_port},
        current=current)


def check_new_ssh_connection(state: State, host: Host, seconds: int,
                             port: int | None = None) -> bool:
    """
    python.call body: a NEW SSH connection with the host's own connection data runs ``true``.
    On failure the host fails (False) with one message, no traceback, leaving the dead-man
    timer armed.
    """
    # Conclude well before the timer fires.
    timeout = max(1, min(state.config.CONNECT_TIMEOUT, seconds // 2))
    try:
        _pyinfra.new_ssh_connection_runs_true(state, host, port, timeout)
        return True
    except Exception as error:  # whatever broke, the message below is what the user needs
        host.log_styled(deadman_failure(host, port, seconds, error), fg="red",
                        log_func=logger.error)
        return False


def deadman_failure(host: Host, port: int | None, seconds: int, error: Exception) -> str:
    return (
        f"dead-man check FAILED on {host.name}: a new SSH connection to "
        f"{_pyinfra.new_connection_target(host, port)} did not work after ufw was enabled "
        f"({type(error).__name__}: {error}). The timer {DEADMAN_UNIT}.timer runs "
        f"`ufw --force disable` within {seconds} s of its arming and restores access. "
        f"If the network between you and {host.name} dropped, wait until it is back; otherwise "
        f"check sshd's ports (`sshd -T | grep -i ^port`) against `ufw status verbose` and "
        f"host data `firewall_allowed`, and the port you connect to (ssh_port). Then run "
        f"the deploy again"
    )
