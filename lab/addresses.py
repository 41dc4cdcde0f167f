"""Lab addressing plan: pure functions, no root needed."""
from __future__ import annotations

import re

BRIDGE = "br0"
NETWORK_V4 = "10.77.0"
NETWORK_V6 = "fd77:"
GATEWAY_V4 = "10.77.0.1"  # the lab namespace itself: bridge, Mailgun stand-in
GATEWAY_V6 = "fd77::1"
PROBER_V4 = "10.77.0.2"  # the "outside world" source address used by the prober
PROBER_V6 = "fd77::2"
SECOND_RELAY_V4 = "10.77.0.3"  # a second stand-in, on the bridge only while a test needs one
STANDIN_HOSTNAME = "smtp.mailgun.lab.test"
MIRROR_HOSTNAME = "mirror.lab.test"  # the lab's package mirror, served at GATEWAY_V4
DOMAIN = "lab.test"
FIRST_HOST_OCTET = 10
MAX_BOXES = 240  # 10.77.0.11 .. 10.77.0.250

_BOX_NAME = re.compile(r"^box([1-9][0-9]*)$")


def box_name(index: int) -> str:
    _check_index(index)
    return f"box{index}"


def box_index(name: str) -> int:
    match = _BOX_NAME.match(name)
    if not match:
        raise ValueError(f"not a lab box name: {name!r} (expected box1, box2, ...)")
    return int(match.group(1))


def box_ipv4(index: int) -> str:
    _check_index(index)
    return f"{NETWORK_V4}.{FIRST_HOST_OCTET + index}"


def box_ipv6(index: int) -> str:
    # Written with the same digits as the IPv4 host part (box3 -> fd77::13) so they are
    # easy to read side by side; the digits are valid hex, so every address is distinct.
    _check_index(index)
    return f"fd77::{FIRST_HOST_OCTET + index}"


def veth_name(box: str) -> str:
    name = f"v-{box}"
    if len(name) > 15:
        raise ValueError(f"interface name too long: {name}")
    return name


def hosts_file(box: str) -> str:
    return (
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{box}.{DOMAIN} {box}\n"
        f"{GATEWAY_V4}\t{STANDIN_HOSTNAME}\n"
        f"{GATEWAY_V4}\t{MIRROR_HOSTNAME}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
    )


def next_free_index(used_or_retired: int) -> int:
    """Names are never reused within one lab run: the next index is one past the highest."""
    index = used_or_retired + 1
    _check_index(index)
    return index


def _check_index(index: int) -> None:
    if not 1 <= index <= MAX_BOXES:
        raise ValueError(f"box index {index} outside 1..{MAX_BOXES}: run `python -m lab down` to start a new lab run")
