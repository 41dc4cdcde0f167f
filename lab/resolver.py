"""The lab's DNS resolver: dnsmasq (Debian's dnsmasq-base) on the lab bridge address, inside the
lab namespace only, started and stopped by PID like the stand-in.

Boxes ask 10.77.0.1 (their resolv.conf, from the image). It answers the relay names
(lab/relay_names.py) with the stand-in's addresses, from its own command line only: no
upstream server, no /etc/hosts, no /etc/resolv.conf of this machine, no config file. Any other
name gets an immediate "no such name" (NXDOMAIN): lookups of unknown names fail at once, as
before the resolver existed. Postfix's SMTP client looks relay names up in DNS
(smtp_host_lookup = dns), so this is how a box finds "smtp.mailgun.org" in the lab, as it would
in production.
"""
from __future__ import annotations

import time

from . import addresses as A
from . import daemons, network, processes, waiting
from .config import LabConfig
from .errors import LabError
from .relay_names import RELAY_NAMES, SECOND_RELAY_NAME
from .state import StateStore

LOG_NAME = "resolver.log"


def argv(config: LabConfig) -> list[str]:
    directory = config.state_dir / "resolver"
    return [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-hosts", "--no-resolv",
        "--no-poll", "--bind-interfaces", f"--listen-address={A.GATEWAY_V4}",
        f"--pid-file={directory / 'dnsmasq.pid'}", "--user=root", "--group=root",
        "--log-facility=-", "--log-queries",
        *(f"--host-record={name},{A.GATEWAY_V4},{A.GATEWAY_V6}" for name in RELAY_NAMES),
        f"--host-record={SECOND_RELAY_NAME},{A.SECOND_RELAY_V4}",
        # every other name: NXDOMAIN at once (host-records are answered before this)
        "--address=/#/",
    ]


def start(config: LabConfig, store: StateStore, timeout: float = 15) -> None:
    directory = config.state_dir / "resolver"
    with store.update() as state:
        if processes.is_alive(state.resolver):
            return
        directory.mkdir(parents=True, exist_ok=True)
        state.resolver = daemons.launch(config, "resolver", argv(config), directory / LOG_NAME)
        record = state.resolver
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.is_alive(record):
            break
        if "started, version" in (directory / LOG_NAME).read_text(errors="replace") and _answers(config):
            return
        time.sleep(0.05)
    log_tail = (directory / LOG_NAME).read_text(errors="replace")[-2000:]
    raise LabError("the lab's DNS resolver (dnsmasq) did not start",
                   f"read {directory / LOG_NAME}; is dnsmasq-base installed (make deps)?",
                   detail=log_tail)


def stop(config: LabConfig, store: StateStore) -> None:
    daemons.stop(config, store, "resolver")


def _answers(config: LabConfig) -> bool:
    """A UDP query for the first relay name gets the stand-in's address back."""
    script = (
        "import socket,struct,sys\n"
        "name=sys.argv[1]\n"
        "q=struct.pack('>HHHHHH',0x1d,0x100,1,0,0,0)+b''.join(bytes([len(p)])+p.encode() for p in name.split('.'))+b'\\0'+struct.pack('>HH',1,1)\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\n"
        f"s.sendto(q,('{A.GATEWAY_V4}',53));r=s.recv(512)\n"
        f"sys.exit(0 if socket.inet_aton('{A.GATEWAY_V4}') in r else 1)\n")
    import sys
    result = waiting.run(network.in_netns(config.netns, [sys.executable, "-c", script, RELAY_NAMES[0]]),
                         timeout=10)
    return result.returncode == 0
