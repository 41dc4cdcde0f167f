"""
Facts for the ufw firewall and for the SSH access that must survive it.

Every command exits 0 in all normal states (ufw or sshd missing, ufw inactive, not over SSH);
absence is printed as a marker line, never signalled by the exit status. The files read here
are root-only: run these facts with ``_sudo=True``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override
from .combined import SHARED_COMMANDS, awk_over_saved

# The facts (and their types); the constants are the paths and markers they share.
__all__ = ["UfwConfig", "SshdConfig", "SshConnection"]

UFW_NOT_INSTALLED = "ufw: not installed"
UFW_UNREADABLE = "ufw: cannot read /etc/ufw/user.rules (run as root)"
SSHD_NOT_INSTALLED = "sshd: not installed"
SSHD_FAILED = "sshd -T failed:"
SOCKET = "ssh.socket "  # + systemctl show's ActiveState=... and Listen=... lines
SSHD_LISTENING = "sshd listening: "
NO_SSH_CONNECTION = "ssh-connection: none"

POLICY_NAMES = {"ACCEPT": "allow", "DROP": "deny", "REJECT": "reject"}
POLICY_DIRECTIONS = {"INPUT": "incoming", "OUTPUT": "outgoing", "FORWARD": "routed"}
ANY_NETWORKS = ("0.0.0.0/0", "::/0")

TUPLE_MARKER = "### tuple ###"
# The dead-man switch (operations.ufw.enable_under_deadman): a transient systemd timer for the
# run, a marker file that says it is armed (the boot unit starts the timer again when the
# marker survived a reboot) and a file the timer's service writes when it fires. This fact
# reports all three, so they are named here, once.
DEADMAN_UNIT = "lockdown-ufw-deadman"
DEADMAN_TIMER = f"{DEADMAN_UNIT}.timer"
DEADMAN_BOOT_UNIT = f"{DEADMAN_UNIT}-boot.service"
DEADMAN_DIR = "/var/lib/lockdown"
DEADMAN_ARMED_FILE = f"{DEADMAN_DIR}/ufw-deadman-armed"
DEADMAN_FIRED_FILE = f"{DEADMAN_DIR}/ufw-deadman-fired"
DEADMAN = "ufw dead-man: "  # + armed | pending | fired
KERNEL = "ufw kernel: "  # + v4 policy=DROP before-input=1 user-input=2 user-rules=2
KERNEL_LINE = re.compile(r"^v(?P<family>[46]) policy=(?P<policy>\S+) before-input=(?P<jump>\d+) "
                         r"user-input=(?P<loaded>\d+) user-rules=(?P<declared>\d+)$")
# Over user.rules (``r``: how many user input rules it declares), then the kernel's save of
# every table (its filter table: INPUT's policy, the jump to ufw's chains, the rules loaded).
_KERNEL_AWK = (
    'FILENAME == r { if (index($0, "-A " c "-user-input ") == 1) n++; next } '
    '/^\\*/ {t = $1} t != "*filter" {next} $1 == ":INPUT" {p = $2} '
    '$0 == "-A INPUT -j " c "-before-input" {j++} $1 == "-A" && $2 == c "-user-input" {u++} '
    f'END {{printf "{KERNEL}v%s policy=%s before-input=%d user-input=%d user-rules=%d\\n", '
    'f, p ? p : "none", j, u, n}'
)
# Each setting from the one file ufw reads it from; the rules from user.rules and user6.rules.
SETTING_FILES = {"ENABLED": "/etc/ufw/ufw.conf", "LOGLEVEL": "/etc/ufw/ufw.conf",
                 "IPV6": "/etc/default/ufw", "DEFAULT_INPUT_POLICY": "/etc/default/ufw",
                 "DEFAULT_OUTPUT_POLICY": "/etc/default/ufw",
                 "DEFAULT_FORWARD_POLICY": "/etc/default/ufw"}
RULES_FILES = ("/etc/ufw/user.rules", "/etc/ufw/user6.rules")
SETTING_LINE = re.compile(r"^(?P<path>/[^:]+):(?P<key>[A-Z0-9_]+)=(?P<value>.*)$")


class UfwConfig(FactBase[dict[str, Any] | None]):
    """
    The persistent ufw configuration, complete even while ufw is inactive.

    Reads ``/etc/ufw/ufw.conf`` (ENABLED, LOGLEVEL), ``/etc/default/ufw`` (IPV6, default
    policies) and the ``### tuple ###`` lines of ``/etc/ufw/user.rules`` and ``user6.rules``
    (one line per rule and address family; comments are hex-encoded there).

    .. code:: python

        {
            "enabled": True,
            "logging": "low",
            "ipv6": True,
            "defaults": {"incoming": "deny", "outgoing": "allow", "routed": "deny"},
            "rules": [
                {"action": "limit", "direction": "in", "proto": "tcp", "port": "22",
                 "from": "any", "to": "any", "v6": False, "comment": "lockdown: ssh",
                 "from_port": "any", "interface_in": "", "interface_out": "",
                 "route": False, "log": "", "app": "", "from_app": ""},
            ],
            "deadman": {"armed": False, "pending": False, "fired": False},
            "kernel": {"v4": {"policy": "DROP", "before_input": 1, "loaded": 1, "declared": 1},
                       "v6": {...}},
            "kernel_problems": [],   # why the kernel does not run what ufw.conf says
        }

    ``deadman``: the marker of a dead-man switch not cancelled yet (``armed``), its timer
    waiting (``pending``), and whether it already ran ``ufw --force disable`` (``fired``).

    The kernel: only while ``ENABLED=yes``, ``iptables-save``/``ip6tables-save`` of the filter
    table reduced to what says ufw's firewall is the one running: the INPUT policy, INPUT's
    jump to ufw's chains and how many of user.rules' rules are loaded (ufw.conf alone says
    nothing once someone flushed the live rules). ``kernel_problems`` lists each difference
    (IPv6 only when ``IPV6=yes`` and the kernel has IPv6); empty when ufw is disabled.

    ``None`` when ufw is not installed.
    """

    shared_reads = SHARED_COMMANDS  # one save per family, shared in the combined read

    @override
    def command(self) -> str:
        return (
            "if ! command -v ufw >/dev/null 2>&1 && [ ! -x /usr/sbin/ufw ]; "
            f"then echo '{UFW_NOT_INSTALLED}'; "
            f"elif [ ! -r /etc/ufw/user.rules ]; then echo '{UFW_UNREADABLE}'; "
            # one grep: each file's lines are only taken for its own keys (process)
            f"else grep -H -E '^({'|'.join(SETTING_FILES)})=|^{TUPLE_MARKER}' "
            f"{' '.join(dict.fromkeys(SETTING_FILES.values()))} {' '.join(RULES_FILES)}; "
            f"[ -e {DEADMAN_ARMED_FILE} ] && echo '{DEADMAN}armed'; "
            f"[ -e {DEADMAN_FIRED_FILE} ] && echo '{DEADMAN}fired'; "
            f"systemctl is-active --quiet {DEADMAN_TIMER} 2>/dev/null && echo '{DEADMAN}pending'; "
            "if grep -q -i '^ENABLED=yes' /etc/ufw/ufw.conf; then "
            "for f in 4 6; do [ $f = 6 ] && [ ! -d /proc/sys/net/ipv6 ] && continue; "
            "if [ $f = 4 ]; then s=iptables-save c=ufw r=/etc/ufw/user.rules; "
            "else s=ip6tables-save c=ufw6 r=/etc/ufw/user6.rules; fi; "
            '[ -r "$r" ] || r=/dev/null; '
            + awk_over_saved("$s", "awk -v f=$f -v c=$c -v r=\"$r\" '" + _KERNEL_AWK + "'",
                             before='"$r"')
            + "; done; fi; "
            "true; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any] | None:
        lines = [line.strip() for line in output if line.strip()]
        if UFW_NOT_INSTALLED in lines:
            return None
        if UFW_UNREADABLE in lines:
            raise FactProcessError(UFW_UNREADABLE)

        config: dict[str, Any] = {"enabled": False, "logging": None, "ipv6": None,
                                  "defaults": {}, "rules": [],
                  "deadman": {"armed": False, "pending": False, "fired": False}, "kernel": {}}
        for line in lines:
            path, _, content = line.partition(":")
            if line.startswith(DEADMAN):
                state = line[len(DEADMAN):]
                if state not in config["deadman"]:
                    raise FactProcessError(f"unexpected ufw dead-man line: {line!r}")
                config["deadman"][state] = True
            elif line.startswith(KERNEL):
                family, counts = parse_kernel_line(line[len(KERNEL):])
                config["kernel"][family] = counts
            elif content.startswith(TUPLE_MARKER):
                if path in RULES_FILES:
                    v6 = path == RULES_FILES[1]
                    config["rules"].append(parse_tuple(content[len(TUPLE_MARKER) :], v6))
            else:
                apply_setting(config, line)
        config["kernel_problems"] = kernel_problems(config) if config["enabled"] else []
        return config


def parse_kernel_line(text: str) -> tuple[str, dict]:
    match = KERNEL_LINE.match(text)
    if not match:
        raise FactProcessError(f"unexpected ufw kernel line: {text!r}")
    return f"v{match['family']}", {"policy": match["policy"],
                                   "before_input": int(match["jump"]),
                                   "loaded": int(match["loaded"]),
                                   "declared": int(match["declared"])}


def kernel_problems(config: dict) -> list[str]:
    """What the kernel runs that ufw.conf's ``ENABLED=yes`` and the user rules do not say."""
    incoming = config["defaults"].get("incoming")
    policy = "ACCEPT" if incoming == "allow" else "DROP"  # deny and reject both drop
    problems = []
    for family in ("v4", "v6") if config["ipv6"] else ("v4",):
        label = f"IPv{family[1]}"
        counts = config["kernel"].get(family)
        if counts is None and family == "v6":
            continue  # a kernel without IPv6 (no /proc/sys/net/ipv6): ufw loads no v6 rules
        if counts is None:
            problems.append(f"{label}: the kernel's rules could not be read")
        elif not counts["before_input"]:
            problems.append(f"{label}: ufw's chains are not loaded in the kernel "
                            f"(INPUT policy {counts['policy']}, no jump to ufw's chains)")
        else:
            if counts["loaded"] != counts["declared"]:
                problems.append(f"{label}: {counts['loaded']} of the {counts['declared']} "
                                "user rules are loaded in the kernel")
            if counts["policy"] != policy:
                problems.append(f"{label}: the kernel's INPUT policy is {counts['policy']}, "
                                f"ufw's default incoming is {incoming}")
    return problems


def ufw_active(config: dict[str, Any] | None) -> bool:
    """ufw.conf says enabled AND the kernel runs ufw's rules."""
    return bool(config and config["enabled"] and not config.get("kernel_problems"))


def apply_setting(config: dict, line: str) -> None:
    match = SETTING_LINE.match(line)
    if not match:
        raise FactProcessError(f"unexpected ufw config line: {line!r}")
    key, value = match["key"], match["value"].strip().strip("\"'")
    if SETTING_FILES.get(key) != match["path"]:
        return  # a key ufw does not read from that file
    if key == "ENABLED":
        config["enabled"] = value.lower() == "yes"
    elif key == "LOGLEVEL":
        config["logging"] = value.lower()
    elif key == "IPV6":
        config["ipv6"] = value.lower() == "yes"
    elif key.startswith("DEFAULT_"):
        direction = POLICY_DIRECTIONS[key.split("_")[1]]
        config["defaults"][direction] = POLICY_NAMES.get(value.upper(), value.lower())


def parse_tuple(text: str, v6: bool) -> dict:
    """
    Parse the part after ``### tuple ###``. ufw writes (backend.py ``_read_rules``):
    ``ACTION PROTO DPORT DST SPORT SRC [DAPP SAPP] [DIRECTION[_IFACE][!out_IFACE]] [comment=HEX]``
    where ACTION may be ``route:allow_log`` and app names escape spaces as ``%20``.
    """
    fields = text.split()
    comment = ""
    if fields and fields[-1].startswith("comment="):
        comment = decode_comment(fields.pop()[len("comment=") :])
    if not 6 <= len(fields) <= 9:
        raise FactProcessError(f"malformed ufw tuple: {text.strip()!r}")

    action, proto, port, to, from_port, source = fields[:6]
    apps = fields[6:8] if len(fields) >= 8 else ["-", "-"]
    direction_field = fields[-1] if len(fields) in (7, 9) else "in"

    route = action.startswith("route:")
    action = action.removeprefix("route:")
    action, _, log = action.partition("_")
    direction, interface_in, interface_out = parse_direction(direction_field)

    return {
        "action": action,
        "direction": direction,
        "proto": proto,
        "port": port,
        "from": normalize_any(source),
        "to": normalize_any(to),
        "v6": v6,
        "comment": comment,
        "from_port": from_port,
        "interface_in": interface_in,
        "interface_out": interface_out,
        "route": route,
        "log": log,
        "app": decode_app(apps[0]),
        "from_app": decode_app(apps[1]),
    }


def parse_direction(field: str) -> tuple[str, str, str]:
    """``in``, ``out_eth0`` or (route rules) ``in_eth0!out_eth1`` -> (direction, in, out)."""
    interfaces = {"in": "", "out": ""}
    direction = ""
    for part in field.split("!"):
        side, _, interface = part.partition("_")
        if side not in interfaces:
            raise FactProcessError(f"malformed ufw tuple direction: {field!r}")
        direction = direction or side
        interfaces[side] = interface
    return direction, interfaces["in"], interfaces["out"]


def decode_comment(hex_text: str) -> str:
    try:
        return bytes.fromhex(hex_text).decode("utf-8", errors="replace")
    except ValueError:
        raise FactProcessError(f"malformed ufw comment: {hex_text!r}") from None


def decode_app(field: str) -> str:
    return "" if field == "-" else field.replace("%20", " ")


def normalize_any(address: str) -> str:
    return "any" if address in ANY_NETWORKS else address


# The TCP listeners of the real sshd: a process whose /proc/<pid>/exe is the sshd binary (also
# "(deleted)" after an upgrade) running as root (real and effective uid 0, from
# /proc/<pid>/status: /proc/<pid>'s owner is root for any non-dumpable process), matched to
# `ss -e`'s listeners by socket inode. Never by process name: any local user can run a
# program called "sshd" (`ss -p` prints the name it chose, quotes and "pid=" included).
REAL_SSHD_LISTENERS = (
    'sshd_real=$(readlink -f "$sshd_bin"); sshd_socks=$(for exe in $(find /proc/[0-9]*/exe '
    '-maxdepth 0 \\( -lname "$sshd_real" -o -lname "$sshd_real (deleted)" \\) 2>/dev/null); do '
    'p=${exe%/exe}; awk \'$1 == "Uid:" {exit !($2 == 0 && $3 == 0)}\' $p/status 2>/dev/null && '
    "find $p/fd -lname 'socket:*' -printf '%l\\n' 2>/dev/null; done | tr -dc '0-9\\n'); "
    'ss -Htlne 2>/dev/null | awk -v socks=" $(echo $sshd_socks) " \'{for (i = 5; i <= NF; i++) '
    'if ($i ~ /^ino:/ && index(socks, " " substr($i, 5) " ")) print "'
    + SSHD_LISTENING + '" $4}\''
)


class SshdConfig(FactBase[dict[str, Any] | None]):
    """
    The ports sshd really accepts connections on, and how it was configured (needs root).

    .. code:: python

        {
            "ports": [2222],          # what the firewall must let in
            "config_ports": [22],     # sshd -T (sshd_config)
            "listen": [{"address": "0.0.0.0", "port": 22}, {"address": "::", "port": 22}],
            "address_family": "any",  # "any" | "inet" | "inet6"
            "socket": {"active": True, "ports": [2222]},   # ssh.socket (systemd)
            "sshd_listening": [],     # ports the real sshd (root, /proc/<pid>/exe) listens on
        }

    When ``ssh.socket`` is active (Ubuntu 24.04's default, an admin's choice on Debian),
    systemd owns the listening socket: its ``Listen`` addresses, after every drop-in (and
    Ubuntu's generator-written one under /run), are the real ports, while ``sshd -T`` still
    prints sshd_config's. Otherwise sshd_config's ports are. The real sshd's own listening
    ports are added either way (a standalone ssh.service next to the socket, or a changed
    sshd_config not yet restarted): those of a process running the sshd binary as root, never
    of a process merely named ``sshd`` (``REAL_SSHD_LISTENERS``). ``None`` when sshd is not
    installed;
    ``FactProcessError`` when ``sshd -T`` fails (not root, a bad sshd_config).
    """

    @override
    def command(self) -> str:
        return (
            "sshd_bin=$(command -v sshd || echo /usr/sbin/sshd); "
            f"if [ ! -x \"$sshd_bin\" ]; then echo '{SSHD_NOT_INSTALLED}'; "
            # sshd -T refuses to run without its privilege separation directory, which only
            # ssh.service creates: under ssh.socket alone, give it an empty one in a private
            # mount namespace (nothing on the host changes).
            'elif sshd_out=$(if [ -d /run/sshd ]; then "$sshd_bin" -T; else '
            "unshare --mount sh -c 'mount -t tmpfs -o mode=755 lockdown-fact /run && "
            "mkdir /run/sshd && exec \"$0\" -T' \"$sshd_bin\"; fi 2>&1); "
            "then printf '%s\\n' \"$sshd_out\" | grep -E '^(port|listenaddress|addressfamily) '; "
            "systemctl show -p ActiveState -p Listen ssh.socket 2>/dev/null "
            f"| sed 's/^/{SOCKET}/'; "
            + REAL_SSHD_LISTENERS + "; true; "
            f"else printf '{SSHD_FAILED} %s\\n' \"$sshd_out\" | head -n 3; fi"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any] | None:
        lines = [line.strip() for line in output if line.strip()]
        if SSHD_NOT_INSTALLED in lines:
            return None
        if lines and lines[0].startswith(SSHD_FAILED):
            raise FactProcessError(" ".join(lines))

        config_ports, listen, family = [], [], "any"
        socket_active, socket_ports, listening = False, set(), set()
        for line in lines:
            if line.startswith(SOCKET + "ActiveState="):
                socket_active = line.split("=", 1)[1] == "active"
            elif line.startswith(SOCKET + "Listen="):
                socket_ports |= set(_socket_listen_ports(line[len(SOCKET):]))
            elif line.startswith(SSHD_LISTENING):
                listening.add(parse_listen_address(line[len(SSHD_LISTENING):])["port"])
            else:
                key, _, value = line.partition(" ")
                if key == "port":
                    config_ports.append(int(value))
                elif key == "listenaddress":
                    listen.append(parse_listen_address(value))
                elif key == "addressfamily":
                    family = value
        configured = {entry["port"] for entry in listen} or set(config_ports)
        ports = (socket_ports if socket_active else configured) | listening
        return {
            "ports": sorted(ports),
            "config_ports": sorted(configured),
            "listen": listen,
            "address_family": family,
            "socket": {"active": socket_active, "ports": sorted(socket_ports)},
            "sshd_listening": sorted(listening),
        }


def _socket_listen_ports(value: str) -> list[int]:
    """``systemctl show -p Listen``: "Listen=[::]:2222 (Stream)" (one line per listen) or,
    with several in one line, space-separated pairs; only Stream (TCP) listens count."""
    ports = []
    for match in re.finditer(r"(\S+) \((\w+)\)", value.removeprefix("Listen=")):
        address, kind = match.groups()
        if kind == "Stream" and not address.startswith("/"):  # AF_UNIX paths are not ports
            port = address.rsplit(":", 1)[-1]
            if port.isdigit():
                ports.append(int(port))
    return ports


def parse_listen_address(value: str) -> dict:
    """``0.0.0.0:22`` or ``[::]:22`` -> {"address": ..., "port": ...}."""
    match = re.match(r"^\[?(?P<address>[^\]]+?)\]?:(?P<port>\d+)$", value)
    if not match:
        raise FactProcessError(f"unexpected sshd listenaddress: {value!r}")
    return {"address": match["address"], "port": int(match["port"])}


class SshConnection(FactBase[dict[str, Any] | None]):
    """
    The SSH connection this deploy runs over, as seen on the box.

    pyinfra runs facts as ``sudo -H -n sh -c '...'`` and sudo drops ``SSH_CONNECTION``, so the
    command walks up the parent processes of its own shell and prints the first
    ``SSH_CONNECTION`` found in ``/proc/<pid>/environ`` (the login shell sshd started has it).

    .. code:: python

        {"client": "10.77.0.1", "client_port": 40000,
         "server": "10.77.0.11", "server_port": 22, "family": 4}

    ``None`` when not connected over SSH (``@local``, ``@docker``...).
    """

    @override
    def command(self) -> str:
        return (
            "ssh_pid=$$; ssh_env=''; "
            'while [ -z "$ssh_env" ] && [ -r /proc/$ssh_pid/environ ]; do '
            "ssh_env=$(tr '\\0' '\\n' < /proc/$ssh_pid/environ | grep -m 1 '^SSH_CONNECTION='); "
            # the parent's pid with read (a builtin: no process more per level)
            "p=; while read -r k v; do [ \"$k\" = PPid: ] && p=$v && break; "
            "done < /proc/$ssh_pid/status; ssh_pid=$p; "
            '[ -n "$ssh_pid" ] && [ "$ssh_pid" -gt 1 ] || break; done; '
            f'if [ -n "$ssh_env" ]; then echo "$ssh_env"; else echo \'{NO_SSH_CONNECTION}\'; fi'
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any] | None:
        for line in output:
            if line.startswith("SSH_CONNECTION="):
                return parse_ssh_connection(line.split("=", 1)[1])
        return None


def parse_ssh_connection(value: str) -> dict:
    """``client client_port server server_port`` (the SSH_CONNECTION format)."""
    try:
        client, client_port, server, server_port = value.split()
        client_address = unmap_ipv4(ipaddress.ip_address(client))
        server_address = unmap_ipv4(ipaddress.ip_address(server))
        return {
            "client": str(client_address),
            "client_port": int(client_port),
            "server": str(server_address),
            "server_port": int(server_port),
            "family": server_address.version,
        }
    except ValueError:
        raise FactProcessError(f"unexpected SSH_CONNECTION: {value!r}") from None


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def unmap_ipv4(address: IPAddress) -> IPAddress:
    """``::ffff:10.0.0.1`` (IPv4 over a dual-stack socket) is an IPv4 connection."""
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address
