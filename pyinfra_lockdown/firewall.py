"""ufw: default deny in, only declared services, never cutting the SSH session it runs over."""
from __future__ import annotations

from pyinfra import host as current_host
from pyinfra.api import deploy
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.sshuserclient import SSHClient
from pyinfra.operations import python

from .plan import if_needed
from .settings import FirewallSettings, SettingsError, validate_port
from .operations import packages, ufw
from .operations.ufw_rules import lockout_reason, parse_service

FAMILIES_V4_V6, FAMILIES_V4 = (4, 6), (4,)
# Host data read here (not user-facing, see deploys/settings.py for the documented keys):
#   firewall_deadman_seconds     120   delay before the dead-man timer disables ufw
#   firewall_deadman_check_port  None  port of the new-connection check (default: the
#                                      host's ssh_port); tests point it at a closed port
DEADMAN_SECONDS = 120


def declared_rules(settings: FirewallSettings, ssh_ports) -> list[dict]:
    """Normalized rules for ``firewall_allowed``; a bad item raises SettingsError naming it."""
    families = FAMILIES_V4_V6 if settings.ipv6 else FAMILIES_V4
    rules: list[dict] = []
    for index, item in enumerate(settings.allowed):
        try:
            rules += parse_service(item, ssh_ports=ssh_ports, families=families)
        except ValueError as error:
            raise SettingsError(f"firewall_allowed[{index}]", f"{item!r}: {error}") from None
    return rules


def check_rules_syntax(settings: FirewallSettings) -> None:
    """Validate every item before any host is read (sshd's real ports come later)."""
    declared_rules(settings, ssh_ports=(22,))


def sshd_ports(state: dict) -> list[int]:
    """sshd's real listening ports from the state read (22 when sshd is not installed)."""
    return (state.get("sshd") or {}).get("ports") or [22]


def guard_against_lockout(settings: FirewallSettings, rules: list[dict], state: dict) -> None:
    """
    Refuse (before any host is changed) a firewall that would cut SSH once it applies: the
    enable, a stricter incoming default and pruning all end with exactly the declared rules
    (rules that ``firewall_prune`` keeps are not counted on), so the declared rules alone
    must keep this session and every sshd port reachable.
    """
    reason = lockout_reason(rules, sshd_ports(state), state["ssh_connection"], settings.ipv6,
                            default_incoming=settings.default_incoming)
    if reason:
        raise SettingsError(
            "firewall_allowed", f"refusing to touch the firewall: {reason}",
            'Add "ssh" (sshd\'s real ports) or a rule for your address; nothing was changed',
        )


@deploy("lockdown firewall")
def firewall(settings: FirewallSettings, state: dict, apt_update: bool = True):
    """Converge ufw to ``settings``; ``state`` is LockdownState (read once by the caller)."""
    rules = declared_rules(settings, sshd_ports(state))
    guard_against_lockout(settings, rules, state)
    seconds, check_port = deadman_options(current_host.data)
    current = state["ufw"]
    # Only the FIRST enable is guarded (an active ufw keeps established sessions and the
    # lockout guard checks every later change) - or a re-run while the timer of a failed
    # check is still pending: checked again, else it would disable ufw after this run.
    deadman = (settings.deadman and ufw.deadman_needed(current)
               and issubclass(current_host.connector_cls, SSHConnector))

    if_needed(packages.installed, name="Install ufw", packages=["ufw"], update=apt_update,
              current=state["packages"])
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
    if deadman:
        ufw.deadman_arm(name=f"ufw dead-man switch: disable in {seconds} s unless cancelled",
                        seconds=seconds, current=current)
    if_needed(ufw.enable, name="ufw enabled", current=current)
    if deadman:
        python.call(name="ufw dead-man check: a NEW SSH connection gets in",
                    function=check_new_ssh_connection, seconds=seconds, port=check_port)
        ufw.deadman_disarm(name="ufw dead-man switch cancelled", current=current)


def deadman_options(data) -> tuple[int, int | None]:
    """(seconds, check_port) from host data; a bad value raises SettingsError naming the key."""
    seconds = data.get("firewall_deadman_seconds")
    seconds = DEADMAN_SECONDS if seconds is None else seconds
    if isinstance(seconds, bool) or not str(seconds).isdigit() or not 1 <= int(seconds) <= 3600:
        raise SettingsError("firewall_deadman_seconds", f"{seconds!r} is not 1-3600 seconds")
    port = data.get("firewall_deadman_check_port")
    port = None if port is None else validate_port("firewall_deadman_check_port", port)
    return int(seconds), port


class DeadmanCheckFailed(Exception):
    pass


def check_new_ssh_connection(state, host, seconds: int, port: int | None = None) -> None:
    """
    Open a NEW SSH connection with the host's own connection data (the deploy's session is
    established, so conntrack lets it through whatever the rules say) and run ``true``.
    Raises DeadmanCheckFailed, which fails the host, leaving the dead-man timer armed.
    """
    connector = host.connector_cls(state, host)
    if port is not None:
        connector.data["ssh_port"] = port
    target = f"{connector.data['ssh_hostname'] or host.name}:{connector.data['ssh_port'] or 22}"
    client = SSHClient()
    try:
        kwargs = connector.make_paramiko_kwargs()
        # Conclude well before the timer fires (ufw DROPs, so a blocked port only times out).
        kwargs["timeout"] = max(1, min(state.config.CONNECT_TIMEOUT, seconds // 2))
        client.connect(kwargs.pop("hostname"), **kwargs)
        _, stdout, _ = client.exec_command("true", timeout=kwargs["timeout"])
        status = stdout.channel.recv_exit_status()
        if status != 0:
            raise DeadmanCheckFailed(f"`true` exited {status}")
    except Exception as error:  # whatever broke, the message below is what the user needs
        raise DeadmanCheckFailed(
            f"dead-man check FAILED on {host.name}: a new SSH connection to {target} did not "
            f"work after ufw was enabled ({type(error).__name__}: {error}). The timer "
            f"{ufw.DEADMAN_UNIT}.timer runs `ufw --force disable` within {seconds} s of the "
            f"enable and restores access. Check sshd's ports (`sshd -T | grep -i ^port`) "
            f"against `ufw status verbose` and host data `firewall_allowed`, and the port you "
            f"connect to (ssh_port), then run the deploy again"
        ) from None
    finally:
        client.close()
