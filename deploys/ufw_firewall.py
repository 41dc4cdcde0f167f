"""ufw: default deny in, only declared services, never cutting the SSH session it runs over."""
from __future__ import annotations

from pyinfra.api import deploy

from deploys.settings import FirewallSettings, SettingsError
from operations import packages, ufw
from operations.ufw_rules import lockout_reason, parse_service

FAMILIES_V4_V6, FAMILIES_V4 = (4, 6), (4,)


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


def guard_against_lockout(settings: FirewallSettings, rules: list[dict], state: dict) -> None:
    ssh_ports = (state["sshd"] or {}).get("ports") or [22]
    reason = lockout_reason(rules, ssh_ports, state["ssh_connection"], settings.ipv6)
    if reason and settings.default_incoming != "allow":
        raise SettingsError(
            "firewall_allowed", f"refusing to touch the firewall: {reason}",
            'Add "ssh" (sshd\'s real ports) or a rule for your address; nothing was changed',
        )


@deploy("lockdown firewall")
def firewall(settings: FirewallSettings, state: dict, apt_update: bool = True):
    """Converge ufw to ``settings``; ``state`` is LockdownState (read once by the caller)."""
    ssh_ports = (state["sshd"] or {}).get("ports") or [22]
    rules = declared_rules(settings, ssh_ports)
    guard_against_lockout(settings, rules, state)
    current = state["ufw"]

    packages.installed(
        name="Install ufw", packages=["ufw"], update=apt_update, current=state["packages"],
    )
    ufw.ipv6(name=f"ufw IPv6 {'on' if settings.ipv6 else 'off'}", enabled=settings.ipv6,
             current=current)
    ufw.rules(name="ufw rules: only the declared ones", declared=rules,
              prune=settings.prune, ipv6=settings.ipv6, current=current)
    for direction in ("incoming", "outgoing", "routed"):
        policy = getattr(settings, f"default_{direction}")
        ufw.default_policy(name=f"ufw default {direction}: {policy}", direction=direction,
                           policy=policy, current=current)
    ufw.logging(name=f"ufw logging {settings.logging}", level=settings.logging, current=current)
    ufw.enable(name="ufw enabled", current=current)
