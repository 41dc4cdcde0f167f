"""lockdown audit: is every host still as the deploy left it? Facts only, nothing changes.

    pyinfra -y inventories/prod.py deploys/audit.py                 # table on stdout
    LOCKDOWN_AUDIT_JSON=audit.json pyinfra -y inventories/prod.py deploys/audit.py
    pyinfra -y inventories/prod.py deploys/audit.py --data audit_json=-   # JSON on stdout

Run from the repository root. Each host is read with ONE remote command (the AuditState
combined fact, as root); the expected state is computed from the same host data and the
same functions deploys/mail.py uses, so the relay password is not needed (without it the
SASL map is checked for owner, mode and freshness, not content). The only operation is a
local ``python.call`` per host that prints the report once every host has been read and
fails the hosts with a FAIL: pyinfra then exits 1 (also when a host is unreachable).
Without ``-y`` pyinfra asks to "execute" that local report step: nothing touches a host.

Audit host data (besides the deploy's keys, see deploys/settings.py):
    audit_noise_hours            24     journal window for relay noise (Relay access denied,
                                        smtpd connects from non-loopback addresses); FAIL only
                                        for noise after the last converge (main.cf's mtime)
    audit_queue_max_age_minutes  60     FAIL when a deferred message is older than this
    audit_probe                  None   "lab": probe 25/465/587 from the lab prober address
                                        (pyinfra runs inside the lab namespace); otherwise a
                                        `probes` inventory group, if any, probes every other host
    audit_probe_addresses        None   addresses probed for this host (default ssh_hostname
                                        or the host name; in lab mode also the box's IPv6)
    audit_json                   None   also write the report as JSON to this path ("-" =
                                        stdout, table to stderr); or env LOCKDOWN_AUDIT_JSON

Why probe from outside: the question is what the internet sees. A check from your laptop
is worthless for port 25 (most home ISPs block outbound 25) and a check from the host itself
sees loopback. Put a small VPS at another provider in the `probes` group.
"""
import os

from pyinfra import host, state
from pyinfra.operations import python

from pyinfra_lockdown.audit_checks import expected_state, host_checks
from pyinfra_lockdown.audit_probe import lab_probe, probe_addresses, probe_from_host
from pyinfra_lockdown.audit_report import JSON_ENV, RUN, report_step
from pyinfra_lockdown.facts.audit_state import AuditState

PROBES_GROUP = "probes"

if RUN.json_path is None:
    RUN.json_path = host.data.get("audit_json") or os.environ.get(JSON_ENV) or ""

if PROBES_GROUP in host.groups:
    probe_from_host(host, state, PROBES_GROUP)
else:
    # Bad host data stops the run, as in deploys/mail.py (one error naming the key).
    expected = expected_state(host.data)
    try:
        found = host.get_fact(AuditState, noise_hours=expected.noise_hours, _sudo=True)
    except Exception as error:  # a host that connects but cannot be read is reported
        RUN.record(host.name, error=f"{type(error).__name__}: {error}",
                   address=host.data.get("ssh_hostname"))
    else:
        if host.data.get("audit_probe") == "lab":
            RUN.probes[host.name] = lab_probe(probe_addresses(host))
        RUN.record(host.name, host_checks(expected, found, probe=None),
                   address=host.data.get("ssh_hostname"))

    python.call(
        name="lockdown audit report (local, reads only)",
        function=report_step, host_name=host.name,
    )
