"""The audit's outside view: can the internet reach SMTP on a host, and relay through it?

Two sources, both stored in audit_report.RUN.probes[target] = {"via", "results", "error"}:
- lab mode (host data audit_probe=lab): lab/probe.py's functions run in this process,
  which `python -m lab exec` put in the lab namespace, from the prober address 10.77.0.2;
- a `probes` inventory group: each probe host runs the SmtpProbe fact (one command)
  against every other host of the run.
"""
from __future__ import annotations

from .audit_report import RUN
from .facts.audit import SmtpProbe
from .facts.postfix import SMTP_PORTS

_CLOSED = ("timed out", "TimeoutError", "ConnectionRefused", "refused")


def probe_addresses(host) -> list[str]:
    configured = host.data.get("audit_probe_addresses")
    if configured:
        return [str(a) for a in configured]
    addresses = [host.data.get("ssh_hostname") or host.name]
    if host.data.get("audit_probe") == "lab":
        from lab.addresses import box_index, box_ipv6

        try:
            addresses.append(box_ipv6(box_index(host.name)))
        except ValueError:
            pass
    return addresses


LAB_CONNECT_TIMEOUT = 0.5


def lab_probe(addresses: list[str]) -> dict:
    """All ports of all addresses at once. A firewalled port costs the whole timeout; on the
    lab's bridge an answer takes well under a millisecond, so 0.5 s of silence is a drop."""
    import gevent

    from lab.probe import smtp_relay_attempt, tcp_open

    def one(address, port):
        result = tcp_open(address, port, timeout=LAB_CONNECT_TIMEOUT)
        if result["error"] and not any(word in result["error"] for word in _CLOSED):
            raise RuntimeError(f"{address}:{port}: {result['error']} (not in the lab namespace?)")
        relay = smtp_relay_attempt(address, port, timeout=5) if result["open"] else None
        return {"address": address, "port": port, "open": result["open"],
                "error": result["error"], "relay": relay}

    jobs = [gevent.spawn(one, a, p) for a in addresses for p in SMTP_PORTS]
    gevent.joinall(jobs)
    failed = [job.exception for job in jobs if job.exception]
    if failed:
        return {"via": "lab prober", "results": [], "error": str(failed[0])}
    return {"via": "lab prober", "results": [job.value for job in jobs], "error": None}


def probe_from_host(probe_host, state, group: str) -> None:
    """Deploy code of a probe host: one SmtpProbe read covering every target of this run."""
    targets = [h for h in state.inventory
               if group not in h.groups and state.is_host_in_limit(h)]
    by_address = {}
    for target in targets:
        for address in probe_addresses(target):
            by_address[address] = target.name
    try:
        results = probe_host.get_fact(SmtpProbe, addresses=sorted(by_address))
        error = None if results is not None else f"python3 missing on {probe_host.name}"
    except Exception as exc:
        results, error = None, f"{probe_host.name}: {type(exc).__name__}: {exc}"
    with RUN.lock:
        for target in targets:
            mine = [r for r in results or [] if by_address.get(r["address"]) == target.name]
            RUN.probes[target.name] = {"via": probe_host.name, "results": mine, "error": error}
