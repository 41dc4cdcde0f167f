"""The outside prober: connects to boxes from the lab namespace, from an address that is
neither a box nor the stand-in (10.77.0.2 / fd77::2), like a host on the internet.

Run inside the lab namespace as `python -m lab.probe tcp_open ADDR PORT [TIMEOUT]` or
`python -m lab.probe smtp_relay_attempt ADDR [PORT [TIMEOUT [HELO SENDER RECIPIENT]]]`; prints
one JSON object.
`python -m lab.probe watch OUT PORTS ADDR...` keeps connecting to every ADDR:PORT (a round every
~100 ms) until SIGTERM, then writes its counts to OUT as JSON.
`python -m lab.probe scan TIMEOUT ADDR:PORT...` probes many targets at once, in parallel.
The `Probe` class does that for tests and returns the parsed result.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import addresses as A
from .config import REPO_ROOT


def source_for(address: str) -> str:
    return A.PROBER_V6 if ipaddress.ip_address(address).version == 6 else A.PROBER_V4


def tcp_open(address: str, port: int, timeout: float = 2) -> dict:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source_for(address), 0))
        try:
            sock.connect((address, port))
            return {"open": True, "error": None}
        except OSError as error:  # refused, timed out (firewall drop), unreachable
            return {"open": False, "error": f"{type(error).__name__}: {error}"}


HELO, SENDER, RECIPIENT = "prober.example.net", "probe@example.net", "victim@example.org"


def smtp_relay_attempt(address: str, port: int = 25, timeout: float = 5, helo: str = HELO,
                       sender: str = SENDER, recipient: str = RECIPIENT) -> dict:
    """Try to relay mail for strangers: connect, EHLO, MAIL FROM, RCPT TO (never DATA).
    ``sender`` "" or "<>" is the null sender."""
    report = {"connected": False, "banner": None, "ehlo": None, "mail": None, "rcpt": None,
              "accepted": False, "error": None}
    try:
        client = smtplib.SMTP(timeout=timeout, source_address=(source_for(address), 0))
        code, banner = client.connect(address, port)
        report.update(connected=True, banner=[code, banner.decode(errors="replace")])
        report["ehlo"] = _reply(client.ehlo(helo))
        report["mail"] = _reply(client.docmd(f"MAIL FROM:<{sender.strip('<>')}>"))
        report["rcpt"] = _reply(client.docmd(f"RCPT TO:<{recipient}>"))
        report["accepted"] = report["mail"][0] // 100 == 2 and report["rcpt"][0] // 100 == 2
        try:
            client.quit()
        except smtplib.SMTPException:
            pass
    except (OSError, smtplib.SMTPException) as error:
        report["error"] = f"{type(error).__name__}: {error}"
    return report


def watch(out: str, ports: list[int], addresses: list[str], interval: float = 0.1) -> dict:
    """Rounds of non-blocking connects to every address:port, each round waiting ``interval``
    for answers; counts attempts and completed connections (with the first few) until SIGTERM."""
    counts = {"attempts": 0, "connections": 0, "rounds": 0, "opened": [], "started": time.time(),
              "by_port": {str(port): {"attempts": 0, "connections": 0} for port in ports}}
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    targets = [(address, port) for address in addresses for port in ports]
    Path(out + ".ready").write_text("ready\n")
    while not stopping:
        pending = {}
        for address, port in targets:
            family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((source_for(address), 0))
            sock.connect_ex((address, port))
            pending[sock] = (address, port)
            counts["attempts"] += 1
            counts["by_port"][str(port)]["attempts"] += 1
        deadline = time.monotonic() + interval
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], max(0.0, deadline - time.monotonic()))
            for sock in writable:
                target = pending.pop(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    counts["connections"] += 1
                    counts["by_port"][str(target[1])]["connections"] += 1
                    if len(counts["opened"]) < 20:
                        counts["opened"].append([target[0], target[1], time.time()])
                sock.close()
        for sock in pending:  # no answer within the round: dropped by a firewall
            sock.close()
        counts["rounds"] += 1
        time.sleep(max(0.0, deadline - time.monotonic()))
    counts["stopped"] = time.time()
    Path(out).write_text(json.dumps(counts) + "\n")
    return counts


def scan(targets: list[tuple[str, int]], timeout: float = 2) -> dict:
    """{"ADDR:PORT": bool} for every target, probed in parallel (one process for many boxes)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(64, len(targets)))) as pool:
        results = pool.map(lambda target: tcp_open(*target, timeout=timeout)["open"], targets)
    return {f"{address}:{port}": is_open for (address, port), is_open in zip(targets, results)}


def _reply(reply: tuple[int, bytes]) -> list:
    return [reply[0], reply[1].decode(errors="replace")]


class Probe:
    """Runs the functions above inside the lab namespace (a subprocess per call)."""

    def __init__(self, lab_netns: str):
        self.lab_netns = lab_netns

    def _call(self, *args: str, timeout: float) -> dict:
        from .network import in_netns

        argv = in_netns(self.lab_netns, [sys.executable, "-m", "lab.probe", *args])
        from .waiting import run

        result = run(argv, timeout=timeout, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        if result.returncode != 0:
            raise RuntimeError(f"probe failed: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def tcp_open(self, address: str, port: int, timeout: float = 2) -> bool:
        return self._call("tcp_open", address, str(port), str(timeout), timeout=timeout + 10)["open"]

    def smtp_relay_attempt(self, address: str, port: int = 25, timeout: float = 5,
                           helo: str = HELO, sender: str = SENDER,
                           recipient: str = RECIPIENT) -> dict:
        return self._call("smtp_relay_attempt", address, str(port), str(timeout), helo, sender,
                          recipient, timeout=timeout * 5 + 10)

    @contextlib.contextmanager
    def watching(self, addresses: list[str], out: Path, ports=(25, 465, 587)):
        """Connect to every address:port every ~100 ms while the block runs; yields a dict that
        holds the prober's counts (attempts, connections, rounds, opened) once the block ends."""
        from . import waiting
        from .network import in_netns

        out = Path(out)
        for path in (out, Path(f"{out}.ready")):
            path.unlink(missing_ok=True)
        argv = in_netns(self.lab_netns, [sys.executable, "-m", "lab.probe", "watch", str(out),
                                         ",".join(map(str, ports)), *addresses])
        child = subprocess.Popen(argv, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        leader = waiting.leader_of(child)
        counts: dict = {}
        try:
            deadline = time.monotonic() + 15
            while not Path(f"{out}.ready").exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the outside prober did not start")
                time.sleep(0.05)
            yield counts
        finally:
            # nsenter execs python in place: SIGTERM to the child's PID reaches the prober.
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=10)
            finally:
                waiting.stop(child, leader)
        counts.update(json.loads(out.read_text()))

    def open_ports(self, targets: list[tuple[str, int]],
                   timeout: float = 2) -> list[tuple[str, int]]:
        """The targets (address, port) that accept a TCP connection, probed in one go."""
        if not targets:
            return []
        found = self._call("scan", str(timeout), *(f"{a}:{p}" for a, p in targets),
                           timeout=timeout * 3 + 20)
        return [(a, p) for a, p in targets if found[f"{a}:{p}"]]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("tcp_open", "smtp_relay_attempt", "watch", "scan"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "watch":
        watch(argv[1], [int(p) for p in argv[2].split(",")], argv[3:])
        return 0
    if argv[0] == "scan":
        targets = [(t.rpartition(":")[0], int(t.rpartition(":")[2])) for t in argv[2:]]
        result = scan(targets, float(argv[1]))
    elif argv[0] == "tcp_open":
        result = tcp_open(argv[1], int(argv[2]), float(argv[3]) if len(argv) > 3 else 2)
    else:
        result = smtp_relay_attempt(argv[1], int(argv[2]) if len(argv) > 2 else 25,
                                    float(argv[3]) if len(argv) > 3 else 5, *argv[4:7])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
