"""The audit's outside view: can the internet reach SMTP on a host, and relay through it?

Two sources, both stored in the run's ``AuditRun.probes[target] = {"via", "results", "error"}``:
- ``audit_probe`` host data holding a probe function (the lab inventory provides one that
  connects from the lab's prober address): called here with the host's addresses;
- a ``probes`` inventory group: each probe host runs the SmtpProbe fact (one command)
  against every other host of the run.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from pyinfra.api import Host, State

from .audit_report import audit_run
from .facts.audit import SmtpProbe
from .facts.postfix import SMTP_PORTS
from .settings import BY_NAME, AuditSettings
from .value_checks import AUDIT_PROBE_OFF


def probe_addresses(host: Host, configured: list[str] | None) -> list[str]:
    return configured or [host.data.get("ssh_hostname") or host.name]


def _run_probe(probe: Callable[..., dict[str, Any]], addresses: list[str]) -> dict[str, Any]:
    try:
        return probe(addresses, SMTP_PORTS)
    except Exception as error:  # a broken probe is reported as such, not as a crash
        return {"via": "audit_probe", "results": [], "error": f"{type(error).__name__}: {error}"}


def start_probe(host: Host, settings: AuditSettings) -> Callable[[], dict[str, Any] | None]:
    """The inventory's probe function for this host (none: no probe, or a probes group) in a
    greenlet of its own, started now: the outside view's timeout runs while the host's state
    is read (every host's deploy code runs at once, so all hosts, ports and addresses are
    probed together: one timeout in all). Returns a function giving the result (or None),
    waiting for it if need be. Host data is read here, in pyinfra's context: a new greenlet
    does not have it (the Vagrant connector's host data needs it)."""
    if settings.probe is None or settings.probe == AUDIT_PROBE_OFF:
        return lambda: None
    addresses = probe_addresses(host, settings.probe_addresses)
    return gevent.spawn(_run_probe, settings.probe, addresses).get


def probe_from_host(probe_host: Host, state: State, group: str) -> None:
    """Deploy code of a probe host: one SmtpProbe read covering every target of this run."""
    targets = [h for h in state.inventory
               if group not in h.groups and state.is_host_in_limit(h)]
    by_address = {}
    for target in targets:
        configured = BY_NAME["audit_probe_addresses"].value(target.data)
        for address in probe_addresses(target, configured):
            by_address[address] = target.name
    try:
        results = probe_host.get_fact(SmtpProbe, addresses=sorted(by_address))
        error = None if results is not None else f"python3 missing on {probe_host.name}"
    except Exception as exc:
        results, error = None, f"{probe_host.name}: {type(exc).__name__}: {exc}"
    run = audit_run(state)
    with run.lock:
        for target in targets:
            mine = [r for r in results or [] if by_address.get(r["address"]) == target.name]
            run.probes[target.name] = {"via": probe_host.name, "results": mine, "error": error}
