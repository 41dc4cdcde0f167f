"""lockdown's DOCKER-USER guard in /etc/ufw/after.rules and after6.rules (ufw-docker's place).

Docker publishes a port with DNAT in ``nat PREROUTING`` and an ACCEPT in its own chains at the
top of ``FORWARD``, before ufw's: ufw's rules never see the packet. ``DOCKER-USER`` is the
chain Docker keeps for the administrator (jumped to first, never flushed by dockerd). ufw loads
after.rules with ``iptables-restore --noflush``, whose ``:DOCKER-USER`` line empties the chain
before the block's rules are added, so every ufw reload and boot puts exactly the guard back,
whether dockerd started before ufw or after it.
"""
from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from .._typing import Commands, Current
from ..exposure import GUARD_BEGIN, GUARD_END, guard_block, guard_problems
from ..facts.exposure import AFTER_RULES, HostExposure

__all__ = ["docker_user_guard"]

# Rewrites one after.rules: the block first tried by the kernel's own parser (`--test`: a
# block the running iptables cannot load never reaches the file ufw loads at boot), then the
# file without the old block, the new one appended; same owner and mode (ufw ships them root
# 0640), renamed over the file.
_REWRITE = (
    "printf %s {block} | {restore} --test --noflush && "
    'f={path}; t=$(mktemp "$f.lockdown.XXXXXX") && '
    "awk -v b={begin} -v e={end} "
    "'index($0, b) == 1 {{ skip = 1 }} !skip {{ print }} index($0, e) == 1 {{ skip = 0 }}' "
    '"$f" > "$t" && printf %s {block} >> "$t" && chmod --reference="$f" "$t" && '
    'chown --reference="$f" "$t" && mv -f "$t" "$f"'
)


@operation()
def docker_user_guard(rules: list[dict], families: tuple[int, ...], ufw_active: bool,
                      current: Current = None) -> Commands:
    """
    Keep lockdown's DOCKER-USER block in ufw's after rules and, ufw being active, loaded
    (``ufw reload`` in the same command).

    + rules: the declared ufw rules (``firewall.firewall_rules``): their allowed ports are the
      published ports let in
    + families: 4, and 6 when ufw manages IPv6
    + ufw_active: whether ufw is enabled (then the kernel must hold the guard too)
    + current: the HostExposure value, read from the host when None
    """
    found = current if current is not None else host.get_fact(HostExposure, _sudo=True)
    problems = guard_problems(found, rules, families, ufw_active)
    if not problems:
        host.noop("DOCKER-USER guard in ufw's after rules" + (" and loaded" if ufw_active else ""))
        return
    missing = [f"/etc/ufw/{'after.rules' if f == 4 else 'after6.rules'}" for f in families
               if ((found or {}).get("guard") or {}).get(f"v{f}", {}).get("file") == "missing"]
    if missing:
        _raise_missing(missing)
    commands = [
        _REWRITE.format(path=shlex.quote(AFTER_RULES[family]), begin=shlex.quote(GUARD_BEGIN),
                        restore="iptables-restore" if family == 4 else "ip6tables-restore",
                        end=shlex.quote(GUARD_END),
                        block=shlex.quote(guard_block(rules, family)))
        for family in families
    ]
    if ufw_active:
        commands.append("ufw reload >/dev/null")
    yield StringCommand(" && ".join(f"( {command} )" for command in commands))


def _raise_missing(paths: list[str]) -> None:
    from pyinfra.api.exceptions import OperationError

    raise OperationError(f"{', '.join(paths)} missing: ufw's package files are incomplete; "
                         "reinstall ufw (apt-get install --reinstall ufw), then run again")
