"""
Pure helpers for ufw rules (no host access): validation of host-data service items, the
normalized rule dict shared with ``facts.ufw.UfwConfig``, ufw command arguments for a rule,
and the SSH lockout guard. Importable by deploys and unit-testable without pyinfra state.

A normalized rule describes ONE ufw tuple line, i.e. one address family (``"v6"``), exactly as
``UfwConfig`` reports it::

    {"action": "allow", "direction": "in", "proto": "tcp", "port": "22", "from": "any",
     "to": "any", "v6": False, "comment": "lockdown: ssh", "from_port": "any",
     "interface_in": "", "interface_out": "", "route": False, "log": "", "app": "",
     "from_app": ""}

A service open to both families is two rules (``v6`` False and True); ``parse_service`` does
that expansion.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

ACTIONS = ("allow", "limit", "deny", "reject")
PASSING_ACTIONS = ("allow", "limit")
DIRECTIONS = ("in", "out")
PROTOCOLS = ("any", "tcp", "udp", "ah", "esp", "gre", "ipv6", "igmp")
LOG_TYPES = ("", "log", "log-all")
POLICIES = ("allow", "deny", "reject")
POLICY_DIRECTIONS = ("incoming", "outgoing", "routed")
LOG_LEVELS = ("off", "low", "medium", "high", "full")
PRUNE_MODES = ("tagged", "all", "off")
FAMILIES = (4, 6)
ANY_NETWORK = {4: "0.0.0.0/0", 6: "::/0"}

RULE_DEFAULTS = {
    "action": "allow",
    "direction": "in",
    "proto": "any",
    "port": "any",
    "from": "any",
    "to": "any",
    "comment": "",
    "from_port": "any",
    "interface_in": "",
    "interface_out": "",
    "route": False,
    "log": "",
    "app": "",
    "from_app": "",
}
RULE_KEYS = ("action", "direction", "proto", "port", "from", "to", "v6", *list(RULE_DEFAULTS)[6:])
# What ufw itself compares to decide "same rule" (common.py UFWRule.match): adding a rule
# whose identity exists updates action/log/comment in place instead of adding a second one.
UPDATABLE_KEYS = ("action", "log", "comment")

SERVICES = {
    "ssh": ("22", "tcp"),
    "smtp": ("25", "tcp"),
    "domain": ("53", "any"),
    "dns": ("53", "any"),
    "http": ("80", "tcp"),
    "pop3": ("110", "tcp"),
    "ntp": ("123", "udp"),
    "imap": ("143", "tcp"),
    "https": ("443", "tcp"),
    "submissions": ("465", "tcp"),
    "smtps": ("465", "tcp"),
    "submission": ("587", "tcp"),
    "imaps": ("993", "tcp"),
    "pop3s": ("995", "tcp"),
}
SERVICE_ITEM_KEYS = {"port", "service", "proto", "from", "action", "comment"}
PORT_SPEC = re.compile(r"[0-9]+(:[0-9]+)?(,[0-9]+(:[0-9]+)?)*")
# used with fullmatch: `$` would also match before a final newline ("x\n" passed)
SAFE_TEXT = re.compile(r"[^\x00-\x1f\x7f'\"\\]*")


# ---------------------------------------------------------------- normalized rules


def normalize_rule(rule: dict) -> dict:
    """Fill defaults and validate one rule dict; raise ValueError naming the bad field."""
    unknown = set(rule) - set(RULE_KEYS)
    if unknown:
        raise ValueError(f"rule: unknown field(s) {sorted(unknown)} in {rule!r}")
    normalized = {key: rule.get(key, default) for key, default in RULE_DEFAULTS.items()}
    normalized["port"] = normalize_port(normalized["port"])
    normalized["from_port"] = normalize_port(normalized["from_port"], field="from_port")
    normalized["from"] = normalize_address(normalized["from"], field="from")
    normalized["to"] = normalize_address(normalized["to"], field="to")
    normalized["v6"] = rule_family(normalized, rule.get("v6")) == 6
    check_choice("action", normalized["action"], ACTIONS)
    check_choice("direction", normalized["direction"], DIRECTIONS)
    check_choice("proto", normalized["proto"], PROTOCOLS)
    check_choice("log", normalized["log"], LOG_TYPES)
    for field in ("comment", "interface_in", "interface_out", "app", "from_app"):
        check_text(field, normalized[field])
    ranged = "," in normalized["port"] + normalized["from_port"] or ":" in normalized["port"]
    if ranged and normalized["proto"] not in ("tcp", "udp"):
        raise ValueError(f"proto: port lists and ranges need tcp or udp, got {rule!r}")
    return {key: normalized[key] for key in RULE_KEYS}


def rule_family(rule: dict, v6: bool | None) -> int:
    families = {address_family(rule[field]) for field in ("from", "to")} - {None}
    if len(families) > 1:
        raise ValueError(f"from/to: mixes IPv4 and IPv6 addresses in {rule!r}")
    implied = families.pop() if families else None
    if v6 is None:
        if implied is None:
            raise ValueError(f"v6: required when from and to are 'any' in {rule!r}")
        return implied
    if implied is not None and implied != (6 if v6 else 4):
        raise ValueError(f"v6: {v6} contradicts the addresses of {rule!r}")
    return 6 if v6 else 4


def identity(rule: dict) -> tuple:
    """The fields ufw compares to find 'the same rule' (everything but action/log/comment)."""
    return tuple(rule[key] for key in RULE_KEYS if key not in UPDATABLE_KEYS)


def family_twin_key(rule: dict) -> tuple:
    return tuple(rule[key] for key in RULE_KEYS if key != "v6")


def is_tagged(rule: dict, tag: str) -> bool:
    """A rule belongs to us when its comment is ``tag`` or starts with ``tag:``."""
    comment = rule.get("comment", "")
    return comment == tag or comment.startswith(f"{tag}:")


# ---------------------------------------------------------------- field validation


def check_choice(field: str, value: object, choices: Iterable[object]) -> None:
    if value not in choices:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(map(str, choices))}")


def check_text(field: str, value: object) -> None:
    if not isinstance(value, str) or not SAFE_TEXT.fullmatch(value):
        raise ValueError(f"{field}: {value!r} must be text without quotes or control characters")


def normalize_port(value: object, field: str = "port") -> str:
    """22, "22", "6000:6007", "80,443" or "any" -> ufw's tuple spelling."""
    text = str(value).strip()
    if text == "any":
        return text
    if isinstance(value, bool) or not PORT_SPEC.fullmatch(text):
        raise ValueError(f"{field}: {value!r} is not a port, port range or port list")
    for part in text.split(","):
        bounds = [int(number) for number in part.split(":")]
        if not all(1 <= number <= 65535 for number in bounds):
            raise ValueError(f"{field}: {value!r} is out of range 1-65535")
        if len(bounds) == 2 and bounds[0] >= bounds[1]:
            raise ValueError(f"{field}: {value!r} is not an ascending range")
    return text


def normalize_address(value: object, field: str) -> str:
    """"any", an address or a CIDR -> the form ufw writes in its tuples."""
    text = str(value).strip()
    if text in ("any", *ANY_NETWORK.values()):
        return "any"
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not 'any', an IP address or a CIDR") from None
    if "/" in text and ipaddress.ip_address(text.split("/")[0]) != network.network_address:
        raise ValueError(f"{field}: {value!r} has host bits set (did you mean {network}?)")
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def address_family(address: str) -> int | None:
    if address == "any":
        return None
    return ipaddress.ip_network(address, strict=False).version


# ---------------------------------------------------------------- host-data service items


def parse_service(
    item: object,
    ssh_ports: Iterable[int] = (22,),
    families: Sequence[int] = FAMILIES,
    tag: str = "lockdown",
) -> list[dict]:
    """
    Turn one host-data service item into normalized rule dicts (one per address family).

    Items: ``"ssh"``, ``"http/tcp"``, ``"443/tcp"``, ``"6000:6007/udp"``, ``53``,
    ``{"port": 443, "proto": "tcp"}``, ``{"service": "ssh", "action": "limit"}``,
    ``{"port": 22, "from": "198.51.100.0/24", "action": "limit", "comment": "office"}``.

    ``"ssh"`` expands to ``ssh_ports`` (pass sshd's real ports, ``SshdConfig["ports"]``);
    ``families`` are the address families to open when ``from`` is "any" (``(4,)`` when
    IPv6 is off). Comments become ``"<tag>: <comment or item>"``. Raises ValueError
    naming the bad field.
    """
    spec = service_item_spec(item)
    source = normalize_address(spec.get("from", "any"), field="from")
    action = spec.get("action", "allow")
    check_choice("action", action, ACTIONS)
    check_families(families)
    label = spec.get("comment") or spec["label"]
    rule_families = [address_family(source)] if source != "any" else list(families)
    if rule_families[0] not in families:
        raise ValueError(f"from: {source} is IPv{rule_families[0]}, not in families {families}")

    ports, proto = service_ports(spec, ssh_ports)
    return [
        normalize_rule({
            "action": action,
            "proto": proto,
            "port": port,
            "from": source,
            "v6": family == 6,
            "comment": f"{tag}: {label}",
        })
        for port in ports
        for family in rule_families
    ]


def service_item_spec(item: object) -> dict[str, Any]:
    if isinstance(item, dict):
        unknown = set(item) - SERVICE_ITEM_KEYS
        if unknown:
            raise ValueError(f"service: unknown field(s) {sorted(unknown)} in {item!r}")
        if ("port" in item) == ("service" in item):
            raise ValueError(f"port: give exactly one of 'port' or 'service' in {item!r}")
        spec = dict(item)
        name = spec.pop("service", None)
        if name is not None:
            spec["port"] = name
        spec["label"] = str(spec["port"]) + (f"/{spec['proto']}" if "proto" in spec else "")
        return spec
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise ValueError(f"service: {item!r} is not a string, port number or mapping")
    port, _, proto = str(item).strip().partition("/")
    spec = {"port": port, "label": str(item).strip()}
    if proto:
        spec["proto"] = proto
    return spec


def service_ports(spec: dict[str, Any], ssh_ports: Iterable[int]) -> tuple[list[str], str]:
    """-> (ports, proto) for a port number/range/list or a known service name."""
    port = str(spec["port"]).strip().lower()
    proto = spec.get("proto")
    if proto is not None:
        check_choice("proto", proto, PROTOCOLS)
    if port == "ssh":
        if not ssh_ports:
            raise ValueError("port: 'ssh' needs sshd's ports (ssh_ports is empty)")
        return [normalize_port(p) for p in ssh_ports], proto or "tcp"
    if port in SERVICES:
        number, default_proto = SERVICES[port]
        return [number], proto or default_proto
    if port and not port[0].isdigit():
        known = ", ".join(SERVICES)
        raise ValueError(f"port: unknown service name {spec['port']!r} (known: {known})")
    return [normalize_port(spec["port"])], proto or "any"


def check_families(families: Any) -> None:
    if not families or not set(families) <= set(FAMILIES):
        raise ValueError(f"families: {families!r} must be a non-empty subset of (4, 6)")


# ---------------------------------------------------------------- ufw command arguments


def rule_arguments(rule: dict, delete: bool = False, both_families: bool = False) -> list[str]:
    """
    ufw arguments (after ``ufw``) that add, or delete, exactly this rule.

    A "from any" rule is written ``from 0.0.0.0/0`` / ``from ::/0`` so it touches only its
    own family; ``both_families`` writes ``from any`` (ufw then adds/deletes the v4 and v6
    tuples together). Deletes carry no comment: ufw matches them regardless of comment.
    """
    family = 6 if rule["v6"] else 4
    source = "any" if both_families else ANY_NETWORK[family]
    source = rule["from"] if rule["from"] != "any" else source
    arguments = ["route"] if rule["route"] else []
    arguments += ["delete"] if delete else []
    arguments.append(rule["action"])
    arguments += direction_arguments(rule)
    arguments += [rule["log"]] if rule["log"] else []
    if rule["proto"] != "any" and not (rule["app"] or rule["from_app"]):
        arguments += ["proto", rule["proto"]]
    arguments += ["from", source] + endpoint_arguments(rule["from_port"], rule["from_app"])
    arguments += ["to", rule["to"]] + endpoint_arguments(rule["port"], rule["app"])
    if rule["comment"] and not delete:
        arguments += ["comment", rule["comment"]]
    return arguments


def direction_arguments(rule: dict) -> list[str]:
    if rule["route"]:
        arguments = ["in", "on", rule["interface_in"]] if rule["interface_in"] else []
        return arguments + (["out", "on", rule["interface_out"]] if rule["interface_out"] else [])
    interface = rule["interface_in"] or rule["interface_out"]
    if interface:
        return [rule["direction"], "on", interface]
    return ["out"] if rule["direction"] == "out" else []


def endpoint_arguments(port: str, app: str) -> list[str]:
    if app:
        return ["app", app]
    return ["port", port] if port != "any" else []


# ---------------------------------------------------------------- lockout guard


def ssh_allowed(declared_rules: list[dict[str, Any]], ssh_ports: Iterable[int], family: int,
                client: str | None = None,
                default_incoming: str = "deny") -> bool:
    """
    Would every sshd port stay reachable over IPv``family`` with only these rules?

    For each port the first rule that applies to (incoming tcp, that port, that family, source
    "any" - or a network containing ``client`` when given) decides, in ufw's order: allow or
    limit passes, deny or reject blocks; no rule at all means ``default_incoming``.
    """
    check_families([family])
    rules = [normalize_rule(rule) for rule in declared_rules]
    return bool(ssh_ports) and all(
        port_passes(rules, int(port), family, client, default_incoming) for port in ssh_ports
    )


def port_passes(rules: list[dict], port: int, family: int, client: str | None,
                default_incoming: str = "deny") -> bool:
    for rule in rules:
        if rule_applies(rule, port, family, client):
            return rule["action"] in PASSING_ACTIONS
    return default_incoming == "allow"


def rule_applies(rule: dict, port: int, family: int, client: str | None) -> bool:
    return (
        rule["v6"] == (family == 6)
        and rule["direction"] == "in"
        and not rule["route"]
        and not rule["interface_in"]
        and rule["proto"] in ("tcp", "any")
        and rule["to"] == "any"
        and rule["from_port"] == "any"
        and not rule["from_app"]
        and port_in_spec(port, rule["port"])
        and source_covers(rule["from"], client)
    )


def port_in_spec(port: int, spec: str) -> bool:
    if spec == "any":
        return True
    for part in spec.split(","):
        low, _, high = part.partition(":")
        if int(low) <= port <= int(high or low):
            return True
    return False


def source_covers(source: str, client: str | None) -> bool:
    if source == "any":
        return True
    if client is None:
        return False
    address = ipaddress.ip_address(client)
    network = ipaddress.ip_network(source, strict=False)
    return address.version == network.version and address in network


def lockout_reason(declared_rules: list[dict[str, Any]], ssh_ports: Iterable[int],
                   connection: dict[str, Any] | None, ipv6: bool,
                   default_incoming: str = "deny") -> str | None:
    """
    Why enabling ufw with these rules would cut this SSH session (or any SSH access), or None.

    ``connection`` is the ``SshConnection`` fact (None when not over SSH: then every enabled
    family must allow sshd from anywhere); ``ipv6`` is the IPV6 setting ufw will run with
    (IPV6=no makes ufw DROP all IPv6 except loopback); ``default_incoming`` decides a port
    no rule matches (a deny rule for SSH locks out even with the default ``allow``).
    """
    if connection is None:
        families = [4, 6] if ipv6 else [4]
        for family in families:
            if not ssh_allowed(declared_rules, ssh_ports, family,
                               default_incoming=default_incoming):
                ports = list(ssh_ports)
                return f"sshd ports {ports} are not allowed from anywhere over IPv{family}"
        return None
    family, client = connection["family"], connection["client"]
    if family == 6 and not ipv6:
        return f"this SSH session is IPv6 ({client}) but ufw would run with IPV6=no (drops IPv6)"
    ports = sorted({int(port) for port in ssh_ports} | {int(connection["server_port"])})
    if not ssh_allowed(declared_rules, ports, family, client=client,
                       default_incoming=default_incoming):
        return f"no rule lets {client} reach sshd ports {ports} over IPv{family}"
    return None
