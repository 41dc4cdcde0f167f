"""The audit's outside view: can the internet reach SMTP on a host, and relay through it?

Two sources, both stored in the run's ``AuditRun.probes[target] = {"via", "results", "error"}``:
- ``audit_probe`` host data holding a probe function (the lab inventory provides one that
  connects from the lab's prober address): called here with the host's addresses;
- a ``probes`` inventory group: each probe host runs the SmtpProbe fact (one command)
  against every other host of the run.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import gevent
from pyinfra.api import Host, State

from .audit_report import audit_run
from .facts.audit import PROBE_CONNECT_TIMEOUT, SmtpProbe
from .facts.exposure import PortProbe
from .facts.postfix import SMTP_PORTS
from .settings import BY_NAME, AuditSettings
from .value_checks import AUDIT_PROBE_OFF

if TYPE_CHECKING:
    from .audit_report import AuditRun


def probe_addresses(host: Host, configured: list[str] | None) -> list[str]:
    return configured or [host.data.get("ssh_hostname") or host.name]


def _run_probe(probe: Callable[..., dict[str, Any]], addresses: list[str],
               ports: Iterable[int] = SMTP_PORTS) -> dict[str, Any]:
    try:
        return probe(addresses, ports)
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
        # the Host itself: ``probe_host`` may be pyinfra's context proxy, which would be
        # whichever host is current when the report step runs
        run.probe_hosts.append(state.inventory.get_host(probe_host.name))
        for target in targets:
            mine = [r for r in results or [] if by_address.get(r["address"]) == target.name]
            run.probes[target.name] = {"via": probe_host.name, "results": mine, "error": error}


def _target(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _probe_group(probe_host: Host, targets: list[tuple[str, str, int]]) -> dict[str, dict]:
    """One PortProbe read on a probe host for every (host name, address, port)."""
    try:
        results = probe_host.get_fact(
            PortProbe, targets=tuple(_target(a, p) for _, a, p in targets),
            timeout=PROBE_CONNECT_TIMEOUT)
        error = None if results is not None else f"python3 missing on {probe_host.name}"
    except Exception as exc:
        results, error = None, f"{probe_host.name}: {type(exc).__name__}: {exc}"
    owner = {(a, p): name for name, a, p in targets}
    by_host: dict[str, dict] = {name: {"via": probe_host.name, "results": [], "error": error}
                                for name, _, _ in targets}
    for result in results or []:
        name = owner.get((result["address"], result["port"]))
        if name is not None:
            by_host[name]["results"].append(result)
    return by_host


def probe_exposed(run: AuditRun) -> None:
    """Report step, before the report: every host's undeclared TCP ports (known only once
    every host was read) tried from outside, all hosts and ports at once, one timeout. A
    host's own probe function gets its addresses and ports; the others go to the first host
    of the probes group in one command (as for 25/465/587, the group probes every other host
    of the run, ``audit_probe: off`` or not)."""
    jobs, group_targets = [], []
    for name, (found, probe, addresses) in sorted(run.exposed.items()):
        ports = found.probe_ports
        if not ports:
            continue
        if callable(probe):
            jobs.append((name, gevent.spawn(_run_probe, probe, addresses, ports)))
        elif run.probe_hosts:
            group_targets += [(name, address, port) for address in addresses for port in ports]
    # The probe host's command runs in this greenlet (pyinfra's context lives here, a new
    # greenlet has none) while the probe functions' greenlets run.
    if group_targets:
        run.exposure_probes.update(_probe_group(run.probe_hosts[0], group_targets))
    gevent.joinall([job for _, job in jobs])
    for name, job in jobs:
        run.exposure_probes[name] = job.value if job.successful() else {
            "via": "audit_probe", "results": [], "error": f"{type(job.exception).__name__}: "
                                                           f"{job.exception}"}
