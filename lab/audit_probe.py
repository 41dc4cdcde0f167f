"""The lab's outside view for lockdown's audit, handed to it as host data (``audit_probe``).

inventories/lab.py puts ``lab_prober`` in every box's host data: the audit calls it with the
box's addresses and the SMTP ports, in the pyinfra process that ``python -m lab exec`` started
inside the lab namespace, and it connects from the prober address (10.77.0.2 / fd77::2) like a
host on the internet. The product never imports the lab; the lab provides this probe.
"""
from __future__ import annotations

import gevent

from pyinfra_lockdown.facts.audit import PROBE_CONNECT_TIMEOUT
from pyinfra_lockdown.facts.postfix import SMTP_PORTS

from .probe import smtp_relay_attempt, tcp_open

# A firewalled port costs the whole timeout. On the lab bridge an answer takes well under a
# millisecond, but the lab probes with the product's timeout so its figures are what a user
# probing over the internet gets (the reason for the value is in facts/audit.py).
CONNECT_TIMEOUT = PROBE_CONNECT_TIMEOUT
_CLOSED = ("timed out", "TimeoutError", "ConnectionRefused", "refused")


def lab_prober(addresses: list[str], ports) -> dict:
    """All ports of all addresses at once: {"via", "results": [...], "error"}."""
    def one(address, port):
        result = tcp_open(address, port, timeout=CONNECT_TIMEOUT)
        if result["error"] and not any(word in result["error"] for word in _CLOSED):
            raise RuntimeError(f"{address}:{port}: {result['error']} (not in the lab namespace?)")
        # a relay attempt on the SMTP ports only (the audit also probes any exposed port)
        relay = (smtp_relay_attempt(address, port, timeout=5)
                 if result["open"] and port in SMTP_PORTS else None)
        return {"address": address, "port": port, "open": result["open"],
                "error": result["error"], "relay": relay}

    jobs = [gevent.spawn(one, a, p) for a in addresses for p in ports]
    gevent.joinall(jobs)
    failed = [job.exception for job in jobs if job.exception]
    if failed:
        return {"via": "lab prober", "results": [], "error": str(failed[0])}
    return {"via": "lab prober", "results": [job.value for job in jobs], "error": None}
