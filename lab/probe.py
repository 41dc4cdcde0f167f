"""The outside prober: connects to boxes from the lab namespace, from an address that is
neither a box nor the stand-in (10.77.0.2 / fd77::2), like a host on the internet.

Run inside the lab namespace as `python -m lab.probe tcp_open ADDR PORT [TIMEOUT]`,
`python -m lab.probe smtp_relay_attempt ADDR [PORT]` or `python -m lab.probe scan TIMEOUT
ADDR:PORT...` (many targets at once, in parallel); prints one JSON object.
The `Probe` class does that for tests and returns the parsed result.
"""
from __future__ import annotations

import ipaddress
import json
import os
import smtplib
import socket
import sys

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


def smtp_relay_attempt(address: str, port: int = 25, timeout: float = 5) -> dict:
    """Try to relay mail for strangers: connect, EHLO, MAIL FROM, RCPT TO (never DATA)."""
    report = {"connected": False, "banner": None, "ehlo": None, "mail": None, "rcpt": None,
              "accepted": False, "error": None}
    try:
        client = smtplib.SMTP(timeout=timeout, source_address=(source_for(address), 0))
        code, banner = client.connect(address, port)
        report.update(connected=True, banner=[code, banner.decode(errors="replace")])
        report["ehlo"] = _reply(client.ehlo("prober.example.net"))
        report["mail"] = _reply(client.docmd("MAIL FROM:<probe@example.net>"))
        report["rcpt"] = _reply(client.docmd("RCPT TO:<victim@example.org>"))
        report["accepted"] = report["mail"][0] // 100 == 2 and report["rcpt"][0] // 100 == 2
        try:
            client.quit()
        except smtplib.SMTPException:
            pass
    except (OSError, smtplib.SMTPException) as error:
        report["error"] = f"{type(error).__name__}: {error}"
    return report


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

    def smtp_relay_attempt(self, address: str, port: int = 25, timeout: float = 5) -> dict:
        return self._call("smtp_relay_attempt", address, str(port), str(timeout), timeout=timeout * 5 + 10)

    def open_ports(self, targets: list[tuple[str, int]],
                   timeout: float = 2) -> list[tuple[str, int]]:
        """The targets (address, port) that accept a TCP connection, probed in one go."""
        if not targets:
            return []
        found = self._call("scan", str(timeout), *(f"{a}:{p}" for a, p in targets),
                           timeout=timeout * 3 + 20)
        return [(a, p) for a, p in targets if found[f"{a}:{p}"]]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("tcp_open", "smtp_relay_attempt", "scan"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "scan":
        targets = [(t.rpartition(":")[0], int(t.rpartition(":")[2])) for t in argv[2:]]
        result = scan(targets, float(argv[1]))
    elif argv[0] == "tcp_open":
        result = tcp_open(argv[1], int(argv[2]), float(argv[3]) if len(argv) > 3 else 2)
    else:
        result = smtp_relay_attempt(argv[1], int(argv[2]) if len(argv) > 2 else 25,
                                    float(argv[3]) if len(argv) > 3 else 5)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
