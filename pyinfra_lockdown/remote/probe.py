"""The outside probe, sent as ``python3 -c <this file> TIMEOUT PORTS ADDRESS...`` to a host of
the inventory's ``probes`` group (facts.audit.SmtpProbe): TCP connect to each target address on
each SMTP port, all at once (a thread each) and, where one is open, an SMTP relay attempt (EHLO,
MAIL FROM, RCPT TO to a foreign domain; never DATA). One JSON object per line, in address and
port order. Only the standard library of the probe host's python3."""
import json
import smtplib
import socket
import sys
import threading
from typing import Any


def one(result: dict[str, Any], timeout: float) -> None:
    try:
        socket.create_connection((result["address"], result["port"]), timeout=timeout).close()
        result["open"] = True
    except OSError as e:
        result["error"] = type(e).__name__ + ": " + str(e)
    if result["open"] and result["port"] != 465:  # 465 speaks TLS first
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


def main(argv: list[str]) -> None:
    timeout, ports = float(argv[1]), [int(p) for p in argv[2].split(",")]
    results = [{"address": a, "port": p, "open": False, "error": None, "relay": None}
               for a in argv[3:] for p in ports]
    threads = [threading.Thread(target=one, args=(r, timeout)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv)
