"""Every exposed port, not only the rule list: what listens beyond loopback or is published
around ufw (Docker's DNAT), which of it no declared rule lets in, and the DOCKER-USER guard
that makes the declared rules hold for Docker's published ports (docs/design.md, "Docker:
published ports obey the declared rules"). Pure: no host, no pyinfra context, no I/O.

Ports and protocols decide; process names, cgroups and rule text (the host's, anyone's) are
only shown, escaped by the report.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# Docker's default bridge and its user-defined bridges (br-<network id>): traffic from them
# is the containers' own (to the host's published ports, to each other, out to the internet).
DOCKER_BRIDGES = ("docker0", "br-+")
ALLOWING = ("allow", "limit")
# The managed block in ufw's after(6).rules: its bounds, and the comment on each of its rules
# (counted in the kernel by the state read, facts/exposure.py).
GUARD_BEGIN = "# BEGIN LOCKDOWN DOCKER-USER"
GUARD_END = "# END LOCKDOWN DOCKER-USER"
GUARD_COMMENT = "lockdown-guard"


@dataclass
class Exposure:
    """One port (and protocol) that answers beyond loopback or is published by a nat rule."""
    proto: str
    port: int | None  # None: a nat rule that publishes every port
    listeners: list[dict] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{'any' if self.port is None else self.port}/{self.proto}"


# --- which rules let a port in ---------------------------------------------------------------

def _port_specs(spec: str) -> list[tuple[int, int]]:
    ranges = []
    for part in str(spec).split(","):
        low, _, high = part.partition(":")
        if low.isdigit():
            ranges.append((int(low), int(high) if high.isdigit() else int(low)))
    return ranges


def declared(rules: list[dict], port: int | None, proto: str) -> bool:
    """A declared rule (allow or limit, any source) lets ``port``/``proto`` in."""
    if port is None:
        return False
    for rule in rules:
        if rule.get("action") not in ALLOWING or rule.get("route"):
            continue
        if rule.get("proto") not in ("any", proto):
            continue
        if any(low <= port <= high for low, high in _port_specs(rule.get("port", ""))):
            return True
    return False


# --- what the host exposes -------------------------------------------------------------------

def exposures(found: dict | None, skip_ports: tuple[int, ...] = ()) -> list[Exposure]:
    """The host's listeners beyond loopback and its published ports, one entry per port and
    protocol (``skip_ports``: checked elsewhere, the SMTP ports)."""
    by_key: dict[tuple[str, int | None], Exposure] = {}
    for listener in (found or {}).get("listeners") or []:
        if listener["port"] in skip_ports:
            continue
        key = (listener["proto"], listener["port"])
        by_key.setdefault(key, Exposure(*key)).listeners.append(listener)
    for rule in (found or {}).get("published") or []:
        for proto in (("tcp", "udp") if rule["proto"] == "any" else (rule["proto"],)):
            specs = _port_specs(rule["ports"]) if rule["ports"] != "any" else [(-1, -1)]
            for low, high in specs:
                for port in (range(low, high + 1) if low >= 0 and high - low < 64 else [None]):
                    if port in skip_ports:
                        continue
                    key = (proto, port)
                    by_key.setdefault(key, Exposure(*key)).published.append(rule)
    return sorted(by_key.values(), key=lambda e: (e.proto, e.port if e.port is not None else -1))


def undeclared(found: dict | None, rules: list[dict],
               skip_ports: tuple[int, ...] = ()) -> list[Exposure]:
    return [e for e in exposures(found, skip_ports) if not declared(rules, e.port, e.proto)]


def ports_to_probe(items: list[Exposure]) -> list[int]:
    """TCP ports the outside probe tries (UDP gives a closed and a filtered port the same
    silence, so it is judged from the firewall instead)."""
    return sorted({e.port for e in items if e.proto == "tcp" and e.port is not None})


# --- the DOCKER-USER guard -------------------------------------------------------------------

def guard_rules(rules: list[dict], family: int) -> list[str]:
    """iptables-restore lines of DOCKER-USER: connections Docker published (DNAT) from
    outside its bridges reach a container only on a declared port; everything else
    (replies, the containers' own traffic) goes on to Docker's chains and ufw's."""
    tag = f"-m comment --comment {GUARD_COMMENT}"
    lines = [f"-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED {tag} -j RETURN"]
    lines += [f"-A DOCKER-USER -i {bridge} {tag} -j RETURN" for bridge in DOCKER_BRIDGES]
    for rule in rules:
        if rule.get("action") not in ALLOWING or rule.get("route") or rule.get("v6") != (
                family == 6):
            continue
        source = "" if rule.get("from") in (None, "any") else f"-s {rule['from']} "
        protos = ("tcp", "udp") if rule.get("proto") == "any" else (rule["proto"],)
        for proto in protos:
            for low, high in _port_specs(rule.get("port", "")):
                ports = str(low) if low == high else f"{low}:{high}"
                lines.append(f"-A DOCKER-USER {source}-p {proto} -m conntrack --ctstate DNAT "
                             f"--ctorigdstport {ports} {tag} -j RETURN")
    lines += [f"-A DOCKER-USER -o {bridge} {tag} -j DROP" for bridge in DOCKER_BRIDGES]
    return lines


def guard_block(rules: list[dict], family: int) -> str:
    """The managed block lockdown keeps at the end of /etc/ufw/after(6).rules."""
    return "\n".join([
        f"{GUARD_BEGIN} (managed by lockdown: ports Docker publishes obey firewall_allowed)",
        "*filter",
        ":DOCKER-USER - [0:0]",
        *guard_rules(rules, family),
        "COMMIT",
        GUARD_END,
    ]) + "\n"


def block_digest(block: str) -> str:
    """What the state read prints for the block in the file (``sed -n`` range | sha256sum)."""
    return hashlib.sha256(block.encode()).hexdigest()


def guard_problems(found: dict | None, rules: list[dict], families: tuple[int, ...],
                   ufw_active: bool) -> list[str]:
    """What differs from the wanted guard: the files' blocks, and (ufw active) the kernel."""
    guard = (found or {}).get("guard") or {}
    problems = []
    for family in families:
        state: dict[str, Any] = guard.get(f"v{family}") or {}
        name = "after.rules" if family == 4 else "after6.rules"
        if state.get("file") == "missing":
            problems.append(f"/etc/ufw/{name} missing")
            continue
        wanted = guard_rules(rules, family)
        if state.get("file") != block_digest(guard_block(rules, family)):
            problems.append(f"/etc/ufw/{name}: the guard block is "
                            + ("missing" if state.get("file") is None else "not the declared one"))
        elif ufw_active and state.get("kernel") != len(wanted):
            problems.append(f"IPv{family} DOCKER-USER holds {state.get('kernel', 0)} of the "
                            f"guard's {len(wanted)} rules (flushed by hand?)")
    return problems


def guard_active(found: dict | None, family: int, rules: list[dict]) -> bool:
    state = ((found or {}).get("guard") or {}).get(f"v{family}") or {}
    return bool(state.get("jump")) and state.get("kernel") == len(guard_rules(rules, family))
