"""The outside probe, sent to a host of the inventory's ``probes`` group, in one of two forms:

- ``python3 -c <this file> TIMEOUT PORTS ADDRESS...`` (facts.audit.SmtpProbe): TCP connect to
  each target address on each SMTP port and, where one is open, an SMTP relay attempt (EHLO,
  MAIL FROM, RCPT TO to a foreign domain; never DATA);
- ``python3 -c <this file> TIMEOUT targets ADDRESS:PORT...`` (facts.exposure.PortProbe): TCP
  connect only, to each target (IPv6 addresses in brackets).

All at once (a thread each), one timeout. One JSON object per line, in the targets' order. Only
the standard library of the probe host's python3."""
import json
import smtplib
import socket
import sys
import threading
from typing import Any


def one(result: dict[str, Any], timeout: float, relay: bool = True) -> None:
    try:
        socket.create_connection((result["address"], result["port"]), timeout=timeout).close()
        result["open"] = True
    except OSError as e:
        result["error"] = type(e).__name__ + ": " + str(e)
    if relay and result["open"] and result["port"] != 465:  # 465 speaks TLS first
        attempt: dict[str, Any] = {"accepted": False, "rcpt": None, "error": None}
        try:
            client = smtplib.SMTP(result["address"], result["port"], timeout=5)
            client.ehlo("prober.example.net")
            mail = client.docmd("MAIL FROM:<probe@example.net>")
            rcpt = client.docmd("RCPT TO:<victim@example.org>")
            attempt["rcpt"] = [rcpt[0], rcpt[1].decode(errors="replace")]
            attempt["accepted"] = mail[0] // 100 == 2 and rcpt[0] // 100 == 2
            client.quit()
        except Exception as e:
            attempt["error"] = type(e).__name__ + ": " + str(e)
        result["relay"] = attempt


def _result(address: str, port: int) -> dict[str, Any]:
    return {"address": address, "port": port, "open": False, "error": None, "relay": None}


def main(argv: list[str]) -> None:
    timeout, relay = float(argv[1]), argv[2] != "targets"
    if relay:
        ports = [int(p) for p in argv[2].split(",")]
        results = [_result(a, p) for a in argv[3:] for p in ports]
    else:
        results = []
        for target in argv[3:]:
            address, _, port = target.rpartition(":")
            results.append(_result(address.strip("[]"), int(port)))
    threads = [threading.Thread(target=one, args=(r, timeout, relay)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv)
