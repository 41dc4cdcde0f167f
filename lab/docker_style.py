"""A port published the way dockerd publishes one, inside a lab box, without Docker.

The lab has no Docker images and no internet, so a box gets exactly the netfilter rules that
Debian's docker.io (20.10 on Debian 12, 26.1 on Debian 13) writes for ``docker run -p
HOST:80``: a ``docker0`` bridge (172.17.0.1/16), a "container" (a network namespace on a veth
with 172.17.0.2 and a TCP listener on port 80), ``net.ipv4.ip_forward=1``, DNAT in
``nat PREROUTING`` through the ``DOCKER`` chain, and at the top of ``FORWARD`` the jumps to an
empty ``DOCKER-USER``, to ``DOCKER-ISOLATION-STAGE-1`` and to ``DOCKER``, whose ACCEPT lets the
packet through before ufw's chains see it. What this cannot show compared with a real dockerd
is written in docs/design.md ("Docker: published ports obey the declared rules").
"""
from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .boxes import Box

CONTAINER_NETNS = "ldctr"
CONTAINER_ADDRESS = "172.17.0.2"
CONTAINER_PORT = 80


def docker_rules(host_port: int) -> str:
    """iptables-restore --noflush input: dockerd's rules for one published TCP port."""
    ip = CONTAINER_ADDRESS
    return "\n".join([
        "*nat",
        ":DOCKER - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        f"-A POSTROUTING -s {ip}/32 -d {ip}/32 -p tcp -m tcp --dport {CONTAINER_PORT} "
        "-j MASQUERADE",
        "-A DOCKER -i docker0 -j RETURN",
        f"-A DOCKER ! -i docker0 -p tcp -m tcp --dport {host_port} -j DNAT "
        f"--to-destination {ip}:{CONTAINER_PORT}",
        "COMMIT",
        "*filter",
        ":DOCKER - [0:0]",
        ":DOCKER-ISOLATION-STAGE-1 - [0:0]",
        ":DOCKER-ISOLATION-STAGE-2 - [0:0]",
        # dockerd creates DOCKER-USER only when missing and never flushes it
        "-I FORWARD 1 -j DOCKER-USER",
        "-I FORWARD 2 -j DOCKER-ISOLATION-STAGE-1",
        "-I FORWARD 3 -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-I FORWARD 4 -o docker0 -j DOCKER",
        "-I FORWARD 5 -i docker0 ! -o docker0 -j ACCEPT",
        "-I FORWARD 6 -i docker0 -o docker0 -j ACCEPT",
        f"-A DOCKER -d {ip}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport {CONTAINER_PORT} "
        "-j ACCEPT",
        "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
        "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
        "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
        "COMMIT",
        "",
    ])


def publish_script(host_port: int) -> str:
    """Root shell script for a box: the bridge, the container and dockerd's rules."""
    ns, ip = CONTAINER_NETNS, CONTAINER_ADDRESS
    listener = _listener_code(ip, CONTAINER_PORT, "containerd-shim")
    return "\n".join([
        "set -e",
        f"ip netns add {ns}",
        "ip link add docker0 type bridge",
        "ip addr add 172.17.0.1/16 dev docker0",
        "ip link set docker0 up",
        f"ip link add vethctr type veth peer name eth0 netns {ns}",
        "ip link set vethctr master docker0 up",
        f"ip -n {ns} addr add {ip}/16 dev eth0",
        f"ip -n {ns} link set eth0 up",
        f"ip -n {ns} link set lo up",
        f"ip -n {ns} route add default via 172.17.0.1",
        # dockerd sets the FORWARD policy to DROP when it turns forwarding on
        "iptables -P FORWARD DROP",
        # DOCKER-USER: created empty unless it exists (ufw's after.rules may have made it)
        "iptables -N DOCKER-USER 2>/dev/null || true",
        # a transient unit: the "container" lives and dies with the box
        f"systemd-run --unit=lab-container --quiet -- ip netns exec {ns} python3 -c "
        f"{shlex.quote(listener)}",
        "iptables-restore --noflush <<'RULES'",
        docker_rules(host_port),
        "RULES",
    ])


def _listener_code(address: str, port: int, name: str) -> str:
    """Python for a TCP listener whose process name (comm, what ``ss -p`` shows) is ``name``."""
    return (f"import ctypes, socket; ctypes.CDLL(None).prctl(15, {name.encode()!r}, 0, 0, 0); "
            "s = socket.socket(socket.AF_INET6 if ':' in {0!r} else socket.AF_INET); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(({address!r}, {port})); s.listen(16)\n"
            "while True: s.accept()[0].close()").replace("{0!r}", repr(address))


def stray_listener_script(port: int, name: str = "stray-db", address: str = "0.0.0.0") -> str:
    """A TCP listener on ``address``:``port`` (a transient unit) whose process is ``name``."""
    code = _listener_code(address, port, name)
    return (f"systemd-run --unit=lab-stray-{port} --quiet -- python3 -c {shlex.quote(code)} && "
            f"for i in $(seq 50); do ss -Htln 'sport = :{port}' | grep -q . && exit 0; "
            "sleep 0.1; done; exit 1")


def forwarding_on(netns: str) -> list[str]:
    """argv, run as root outside the box: dockerd's ``net.ipv4.ip_forward=1`` in the box's
    network namespace (a box's /proc/sys is read-only inside, nspawn mounts it so)."""
    return ["nsenter", f"--net=/run/netns/{netns}", "sysctl", "-qw", "net.ipv4.ip_forward=1"]


def publish_like_docker(box: Box, host_port: int) -> None:
    """Forwarding on, then ``publish_script`` as root in ``box`` (a lab Box)."""
    from . import waiting
    from .errors import LabError

    forwarding = waiting.run(forwarding_on(box.netns), timeout=30)
    result = box.root(["/bin/sh", "-s"], input=publish_script(host_port) + "\n")
    if forwarding.returncode or result.returncode:
        raise LabError(f"could not publish port {host_port} Docker-style on {box.name}",
                       detail=forwarding.stderr + result.stderr)
