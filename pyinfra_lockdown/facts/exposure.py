"""
What a host exposes beyond ufw's rule list: its listeners beyond loopback and the ports that
netfilter's nat table publishes around ufw (Docker's DNAT rules, or any other), plus the state
of lockdown's ``DOCKER-USER`` guard (docs/design.md, "Docker: published ports obey the
declared rules").

Read as root (``ss -p`` names other users' processes, ``iptables-save`` needs CAP_NET_ADMIN).
Everything here was written by whoever runs processes or rules on the host: process names
(``comm``, 15 bytes a process chooses itself), cgroup paths, rule text. They are parsed for
display and escaped when printed; no decision that opens anything is taken from them (ports
and protocols come from the kernel's socket table and rule matches).
"""
from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override
from ..exposure import GUARD_BEGIN, GUARD_COMMENT, GUARD_END
from ..remote import script
from .audit import probe_results
from .combined import SHARED_COMMANDS, awk_over_saved

__all__ = ["HostExposure", "PortProbe"]

AFTER_RULES = {4: "/etc/ufw/after.rules", 6: "/etc/ufw/after6.rules"}

SS_LINE = "listen "  # + an `ss -Hlntupe` line
NAT_LINE = "nat"  # nat4 / nat6 + an `iptables-save -t nat` rule line (DNAT or REDIRECT)
GUARD_LINE = "guard"  # guard4 / guard6 + kernel: <guard rules> jump: <0|1> chain: <0|1>
FILE_LINE = "guard-file"  # guard-file4 / guard-file6 + <sha256 of the block | none | missing>
_FAMILIES = ((4, "iptables-save"), (6, "ip6tables-save"))


# Over the kernel's save of every table: DNAT/REDIRECT exist only in nat, DOCKER-USER in filter.
_SAVE_AWK = (
    '/^-A .* -j (DNAT|REDIRECT)( |$)/ { print nat $0 } '
    'index($0, "-A DOCKER-USER ") == 1 && index($0, "--comment " g) { k++ } '
    '$0 == "-A FORWARD -j DOCKER-USER" { j++ } index($0, ":DOCKER-USER ") == 1 { c++ } '
    'END { printf "%s kernel: %d jump: %d chain: %d\\n", guard, k, j, c }'
)
# sha256 of no input: the file has no managed block (sed printed nothing)
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _family_reads() -> str:
    parts = []
    for family, save in _FAMILIES:
        awk = (f"awk -v nat='{NAT_LINE}{family} ' -v guard='{GUARD_LINE}{family}' "
               f"-v g='{GUARD_COMMENT}' '{_SAVE_AWK}'")
        parts.append(
            f"if command -v {save} >/dev/null 2>&1; then {awk_over_saved(save, awk)}; fi; "
            f"f={AFTER_RULES[family]}; "
            f"if [ ! -e \"$f\" ]; then echo '{FILE_LINE}{family} missing'; "
            f"else h=$(sed -n '/^{GUARD_BEGIN}/,/^{GUARD_END}/p' \"$f\" | sha256sum); "
            f"case \"${{h%% *}}\" in {_EMPTY_SHA256}) echo '{FILE_LINE}{family} none';; "
            f"*) echo \"{FILE_LINE}{family} ${{h%% *}}\";; esac; fi"
        )
    return "; ".join(parts)


class HostExposure(FactBase[dict[str, Any]]):
    """
    Listeners beyond loopback (TCP and UDP, with their processes), the nat table's DNAT and
    REDIRECT rules (IPv4 and IPv6), and lockdown's DOCKER-USER guard:

    .. code:: python

        {
            "listeners": [{"proto": "tcp", "address": "0.0.0.0", "port": 9099,
                           "processes": [{"name": "postgres", "pid": 812}],
                           "unit": "/system.slice/postgresql@15-main.service"}],
            "published": [{"family": 4, "proto": "tcp", "ports": "8088", "chain": "DOCKER",
                           "to": "172.17.0.2:80", "docker": True, "rule": "-A DOCKER ..."}],
            "guard": {"v4": {"kernel": 5, "jump": 1, "chain": 1, "file": "<sha256>" | None}},
            "ss": True,   # False: no ss on the host (listeners unknown)
        }

    ``published`` leaves out the nat ``OUTPUT`` and ``POSTROUTING`` chains (locally made
    connections, source NAT). ``guard[f]["file"]``: the sha256 of the managed block of
    /etc/ufw/after(6).rules, ``None`` without one, ``"missing"`` without the file.
    """

    shared_reads = SHARED_COMMANDS  # one save per family, shared in the combined read

    @override
    def command(self) -> str:
        return (
            "if command -v ss >/dev/null 2>&1; then echo 'ss: present'; "
            f"ss -Hlntupe 2>/dev/null | sed 's/^/{SS_LINE}/'; else echo 'ss: missing'; fi; "
            + _family_reads()
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        result: dict = {"listeners": [], "published": [], "guard": {}, "ss": None}
        for line in output:
            if line in ("ss: present", "ss: missing"):
                result["ss"] = line == "ss: present"
            elif line.startswith(SS_LINE):
                listener = parse_ss_line(line[len(SS_LINE):])
                if listener is not None:
                    result["listeners"].append(listener)
            elif line.startswith((NAT_LINE + "4 ", NAT_LINE + "6 ")):
                published = parse_nat_rule(line[len(NAT_LINE) + 2:], int(line[len(NAT_LINE)]))
                if published is not None:
                    result["published"].append(published)
            elif line.startswith((GUARD_LINE + "4 ", GUARD_LINE + "6 ")):
                family = "v" + line[len(GUARD_LINE)]
                result["guard"].setdefault(family, {}).update(parse_guard_line(line[7:]))
            elif line.startswith((FILE_LINE + "4 ", FILE_LINE + "6 ")):
                family = "v" + line[len(FILE_LINE)]
                value = line[len(FILE_LINE) + 2:].strip()
                result["guard"].setdefault(family, {})["file"] = (
                    None if value == "none" else value)
            elif line.strip():
                # a process name with a newline splits its ss line: the rest is not ours
                continue
        if result["ss"] is None:
            raise FactProcessError(f"HostExposure: missing ss status line: {output[:2]!r}")
        return result


_GUARD = re.compile(r"^kernel: (?P<kernel>\d+) jump: (?P<jump>\d+) chain: (?P<chain>\d+)$")


def parse_guard_line(text: str) -> dict:
    found = _GUARD.match(text.strip())
    if not found:
        raise FactProcessError(f"HostExposure: cannot parse guard line {text!r}")
    return {key: int(value) for key, value in found.groupdict().items()}


_ADDRESS = re.compile(r"^(?P<address>\[[^\]]*\]|[^\s\[\]]*?)(?:%(?P<interface>[^:\s]+))?:"
                      r"(?P<port>\d+|\*)$")
_PROCESS = re.compile(r'\("(?P<name>.*?)",pid=(?P<pid>\d+),fd=\d+\)')


def parse_ss_line(text: str) -> dict | None:
    """One ``ss -Hlntupe`` line -> a listener beyond loopback, or None (loopback only).

    Fields: netid state recv-q send-q local peer [users:((...))] [ino:N sk:X cgroup:PATH ...].
    The users part holds process names as the processes chose them (quotes, commas, spaces):
    it is cut out between ``users:((`` and the last `` ino:``, and only shown.
    """
    fields = text.split()
    if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
        raise FactProcessError(f"HostExposure: cannot parse ss line {text!r}")
    found = _ADDRESS.match(fields[4])
    if not found or found["port"] == "*":
        raise FactProcessError(f"HostExposure: cannot parse local address {fields[4]!r}")
    address = found["address"].strip("[]") or "*"
    interface = found["interface"]
    if is_loopback(address) or interface == "lo":
        return None
    rest = text.split(None, 6)[6] if len(fields) > 6 else ""
    users, _, extra = rest.rpartition(" ino:") if " ino:" in rest else (rest, "", "")
    processes = [{"name": m["name"], "pid": int(m["pid"])} for m in _PROCESS.finditer(users)]
    unit = None
    for token in extra.split():
        if token.startswith("cgroup:"):
            unit = token[len("cgroup:"):]
    return {"proto": fields[0], "address": address, "interface": interface,
            "port": int(found["port"]), "processes": processes, "unit": unit}


def is_loopback(address: str) -> bool:
    lowered = address.lower()
    return (lowered.startswith("127.") or lowered == "::1"
            or lowered.startswith("::ffff:127."))


_MATCH = {
    "chain": re.compile(r"^-A (\S+)"),
    "proto": re.compile(r"(?:^|\s)-p (\S+)"),
    "dport": re.compile(r"--dports? (\S+)"),
    "to": re.compile(r"--to-(?:destination|ports) (\S+)"),
}
LOCAL_NAT_CHAINS = ("OUTPUT", "POSTROUTING", "INPUT")


def parse_nat_rule(rule: str, family: int) -> dict | None:
    """One ``iptables-save -t nat`` DNAT/REDIRECT line -> what it publishes (None: a chain of
    locally made connections)."""
    values = {key: (m.group(1) if (m := pattern.search(rule)) else None)
              for key, pattern in _MATCH.items()}
    if values["chain"] is None:
        raise FactProcessError(f"HostExposure: cannot parse nat rule {rule!r}")
    if values["chain"] in LOCAL_NAT_CHAINS:
        return None
    negated_port = re.search(r"!\s+--dports? ", rule) is not None
    return {"family": family, "proto": values["proto"] or "any",
            "ports": "any" if values["dport"] is None or negated_port else values["dport"],
            "chain": values["chain"], "to": values["to"] or "",
            "docker": values["chain"].startswith("DOCKER"), "rule": rule.strip()}


class PortProbe(FactBase[list[dict[str, Any]] | None]):
    """
    From this host (a probe host), which ``address:port`` targets accept a TCP connection?
    Needs python3 on the probe host; ``None`` without it.

    .. code:: python

        [{"address": "198.51.100.7", "port": 8088, "open": True, "error": None, "relay": None}]

    + targets: ``address:port`` strings (IPv6 addresses in brackets)
    + timeout: the connect timeout, one for all
    """

    @override
    def command(self, targets: tuple[str, ...] = (), timeout: float = 0.4) -> str:
        import shlex

        quoted = " ".join(shlex.quote(str(t)) for t in targets)
        return (
            "if command -v python3 >/dev/null 2>&1; then echo 'python3: yes'; "
            f"python3 -c {shlex.quote(script('probe.py'))} {float(timeout)} targets {quoted}; "
            "else echo 'python3: missing'; fi"
        )

    @override
    def process(self, output: list[str]) -> list[dict[str, Any]] | None:
        return probe_results(output, "PortProbe")
