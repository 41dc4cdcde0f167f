"""Network namespaces: the lab namespace (bridge, stand-in, prober) and one per box.

Nothing here touches the root namespace: veth pairs are created inside the lab namespace
with their peer moved straight into the box namespace, the root namespace gets no address
or route, and forwarding stays off (the default in a new namespace).
"""
from __future__ import annotations

import os
from pathlib import Path

from . import addresses as A
from .errors import LabError
from .shell import run

NETNS_DIR = Path("/run/netns")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def in_netns(name: str, argv: list[str]) -> list[str]:
    """argv that runs `argv` inside the namespace (nsenter keeps /sys and cgroups intact)."""
    return ["nsenter", f"--net={netns_path(name)}", "--"] + argv


def require(name: str) -> None:
    if not exists(name):
        raise LabError(f"the lab network namespace {name} does not exist",
                       "start the lab first: `python -m lab up` (or Lab().ensure_network())")


def ensure_lab(name: str) -> None:
    if exists(name) and _lab_is_configured(name):
        return
    if exists(name):  # half-built by an interrupted run
        delete(name)
    run(["ip", "netns", "add", name], todo="are you root? is iproute2 installed?")
    ip = ["ip", "-n", name]
    run(ip + ["link", "set", "lo", "up"])
    run(ip + ["link", "add", A.BRIDGE, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0"])
    for address in (f"{A.GATEWAY_V4}/24", f"{A.PROBER_V4}/24"):
        run(ip + ["addr", "add", address, "dev", A.BRIDGE])
    for address in (f"{A.GATEWAY_V6}/64", f"{A.PROBER_V6}/64"):
        run(ip + ["addr", "add", address, "dev", A.BRIDGE, "nodad"])
    run(ip + ["link", "set", A.BRIDGE, "up"])
    # Port-unreachable answers to DNS queries (no server on 10.77.0.1) must never be rate
    # limited, or resolvers in the boxes wait 5 s time-outs.
    run(in_netns(name, ["sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0"]))


def _lab_is_configured(name: str) -> bool:
    result = run(["ip", "-n", name, "-o", "addr", "show", "dev", A.BRIDGE], check=False)
    return A.GATEWAY_V4 in result.stdout and A.GATEWAY_V6 in result.stdout and A.PROBER_V4 in result.stdout


def create_box_netns(lab: str, box_netns: str, box: str, ipv4: str, ipv6: str) -> None:
    """A brand-new namespace (never reused: netfilter rules outlive the container)."""
    if exists(box_netns):
        raise LabError(f"network namespace {box_netns} already exists", "run `python -m lab down` first")
    veth = A.veth_name(box)
    run(["ip", "-n", lab, "link", "del", veth], check=False)  # left over from a previous boot
    run(["ip", "netns", "add", box_netns])
    run(["ip", "-n", lab, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", box_netns])
    run(["ip", "-n", lab, "link", "set", veth, "master", A.BRIDGE, "up"])
    ip = ["ip", "-n", box_netns]
    run(ip + ["link", "set", "lo", "up"])
    run(ip + ["addr", "add", f"{ipv4}/24", "dev", "eth0"])
    run(ip + ["addr", "add", f"{ipv6}/64", "dev", "eth0", "nodad"])
    run(ip + ["link", "set", "eth0", "up"])
    run(ip + ["route", "add", "default", "via", A.GATEWAY_V4])
    run(ip + ["-6", "route", "add", "default", "via", A.GATEWAY_V6])


def delete_veth(lab: str, box: str) -> None:
    if exists(lab):
        run(["ip", "-n", lab, "link", "del", A.veth_name(box)], check=False)


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "netns", "del", name], check=False)
