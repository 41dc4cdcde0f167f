"""The audit: is every host still as the deploy left it? Facts only, nothing on a host changes.

Each host is read with ONE remote command (the AuditState combined fact, as root). The expected
state comes from the same host data and the same functions the mail and firewall deploys use,
so the relay password is not needed (without it the SASL map is checked for owner, mode and
freshness, not content). The only operation is a local ``python.call`` that prints the report
once every host has been read (all deploy code runs before any operation): called on the first
host read successfully and on any host whose read raised, not on every host, because pyinfra
orders each operation call by walking the Python stack (~1.6 ms of controller CPU per host at
1,000 hosts, bench/RESULTS.md). When anything fails the run ends with exit status 1.

Why probe from outside: the question is what the internet sees. A check from a laptop is
worthless for port 25 (most home ISPs block outbound 25) and the host itself sees loopback.
Put a small VPS at another provider in a ``probes`` inventory group.
"""
from __future__ import annotations

from typing import cast

from pyinfra import host as current_host
from pyinfra import state as current_state
from pyinfra.api import deploy
from pyinfra.api.host import Host
from pyinfra.operations import python

from ._pyinfra import name_lost_connections, send_at_once
from .audit_checks import Check, Expected, _safely, cannot_check, expected_state, host_checks
from .audit_exposure import findings, guard_check
from .audit_probe import probe_addresses, probe_from_host, start_probe
from .audit_report import PROBES_GROUP, AuditRun, audit_run, report_step
from .facts.audit_state import AuditHostState, AuditState
from .mail import sasl_map_line
from .operations.postfix import prefetch_secret_stamp
from .settings import AuditSettings, audit_settings, data_defaults


@deploy("lockdown audit", data_defaults=data_defaults("relay", "logwatch", "firewall", "audit"))
def audit(settings: AuditSettings | None = None) -> None:
    """
    Audit this host against what the deploys would converge it to (default: from host data).
    Hosts of the ``probes`` group are not audited: they probe every other host from outside.

    + settings: an ``AuditSettings``; when None it is read and validated from host data
    """
    name_lost_connections(current_host)
    send_at_once(current_host)
    run = audit_run(current_state)
    if PROBES_GROUP in current_host.groups:
        probe_from_host(current_host, current_state, PROBES_GROUP)
        return
    # Bad host data stops the run, as in the deploys (one error naming the key).
    settings = settings or audit_settings(current_host.data)
    if settings.json_path and run.json_path is None:
        run.json_path = settings.json_path
    expected = expected_state(settings)
    probe_result = start_probe(current_host, settings)
    if expected.has_credentials:
        prefetch_secret_stamp(sasl_map_line(expected.relay))
    try:
        found = cast(AuditHostState, current_host.get_fact(
            AuditState, noise_hours=expected.noise_hours, _sudo=True))
    except Exception as error:  # a host that connects but cannot be read is reported
        run.record(current_host.name, error=f"{type(error).__name__}: {error}",
                   address=current_host.data.get("ssh_hostname"))
        python.call(name="report (local, reads only)", function=report_step)
        return
    if found is None:  # pyinfra failed the host and printed why; the others go on
        run.record(current_host.name, error="the state read failed (see the error above)",
                   address=current_host.data.get("ssh_hostname"))
        return
    probe = probe_result()
    if probe is not None:
        run.probes[current_host.name] = probe
    try:
        checks = host_checks(expected, found, probe=None) + exposure_state(
            run, current_host, settings, expected, found)
    except Exception as error:  # noqa: BLE001 - one host's odd state never stops the fleet
        run.record(current_host.name, error=f"cannot check: {type(error).__name__}: {error}",
                   address=current_host.data.get("ssh_hostname"))
    else:
        run.record(current_host.name, checks, address=current_host.data.get("ssh_hostname"))
    if run.claim_report_step():
        python.call(name="report (local, reads only)", function=report_step)


def exposure_state(run: AuditRun, host: Host, settings: AuditSettings, expected: Expected,
                   found: AuditHostState) -> list[Check]:
    """The DOCKER-USER guard's check now; the host's exposed ports wait in the run for the
    report step, which probes them for all hosts at once."""
    guard = _safely("ufw.docker_user", guard_check, expected, found)
    try:
        exposed = findings(expected, found)
    except Exception as error:  # noqa: BLE001 - host text lockdown cannot parse is a finding
        return guard + [cannot_check("outside.ports", error)]
    addresses = probe_addresses(host, settings.probe_addresses)
    with run.lock:
        run.exposed[host.name] = (exposed, settings.probe, addresses)
    return guard
