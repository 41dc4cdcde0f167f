"""Collects per-host audit results and renders them once, as a table and optionally as JSON.

Every host's deploy code records into the ``AuditRun`` of its pyinfra run (``audit_run(state)``);
the report step, a local ``python.call`` per host that runs once every host has been read,
prints the report for all of them. A failing audit is an answer, not a crash: after the
report, the run ends with exit status 1 (``SystemExit``, which pyinfra does not catch) instead
of a raised error that pyinfra would print as a traceback.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import weakref

from pyinfra.api import Host, State

from .audit_checks import Check, outside_check, summary
from .audit_exposure import exposure_checks
from .text import printable

PROBES_GROUP = "probes"


class AuditRun:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hosts: dict[str, dict] = {}  # name -> {"checks": [Check], "error": str|None}
        self.probes: dict[str, dict] = {}  # target name -> probe result
        # issue 25: name -> (Findings, its probe (a function, or None for the probes group),
        # addresses), and name -> the probe result of its undeclared ports
        self.exposed: dict[str, tuple] = {}
        self.exposure_probes: dict[str, dict] = {}
        self.probe_hosts: list = []  # the probes group's hosts that read their probe
        self.json_path: str | None = None
        self.started = time.monotonic()
        self.printed = False
        self.report: dict | None = None
        self.report_step_claimed = False

    def claim_report_step(self) -> bool:
        """True for the first host read successfully: it alone calls the report step."""
        with self.lock:
            claimed, self.report_step_claimed = self.report_step_claimed, True
        return not claimed

    def record(self, name: str, checks: list[Check] | None = None, error: str | None = None,
               address: str | None = None) -> None:
        with self.lock:
            self.hosts[name] = {"checks": checks or [], "error": error, "address": address}


_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pyinfra State -> AuditRun
_RUNS_LOCK = threading.Lock()


def audit_run(state: State) -> AuditRun:
    """The audit results of this pyinfra run (one per ``State``)."""
    with _RUNS_LOCK:
        return _RUNS.setdefault(state, AuditRun())


def host_entry(name: str, entry: dict) -> dict:
    if entry.get("error"):
        return {"host": name, "address": entry.get("address"), "status": "error",
                "error": entry["error"], "checks": [], "summary": None}
    checks = entry["checks"]
    totals = summary(checks)
    return {"host": name, "address": entry.get("address"),
            "status": "fail" if totals["fail"] else "pass",
            "checks": [c.as_dict() for c in checks], "summary": totals}


def build_report(hosts: dict[str, dict], unreachable: dict[str, str]) -> dict:
    entries = [host_entry(name, hosts[name]) for name in sorted(hosts)]
    entries += [{"host": name, "address": address, "status": "unreachable",
                 "error": "could not connect", "checks": [], "summary": None}
                for name, address in sorted(unreachable.items())]
    failing = [e["host"] for e in entries if e["status"] != "pass"]
    return {"hosts": entries, "ok": not failing, "failing_hosts": failing,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def render_table(report: dict) -> str:
    lines = []
    width = max([len(c["id"]) for e in report["hosts"] for c in e["checks"]] + [10])
    for entry in report["hosts"]:
        host = printable(entry["host"])
        address = f" ({printable(entry['address'])})" if entry.get("address") else ""
        lines.append(f"== {host}{address}")
        for check in entry["checks"]:
            verdict = check["verdict"]
            lines.append(f"  {verdict:<4}  {printable(check['id']):<{width}}  "
                         f"expected: {printable(check['expected'])}  |  "
                         f"found: {printable(check['found'])}")
        if entry["status"] in ("unreachable", "error"):
            lines.append(f"  {host}: {entry['status'].upper()}: {printable(entry['error'])}")
        else:
            totals = entry["summary"]
            failed = f" ({', '.join(totals['failed'])})" if totals["failed"] else ""
            lines.append(f"  {host}: {'FAIL' if totals['fail'] else 'PASS'} - "
                         f"{totals['pass']} pass, {totals['fail']} fail{failed}, "
                         f"{totals['na']} n/a")
        lines.append("")
    total = len(report["hosts"])
    bad = report["failing_hosts"]
    lines.append(f"audit: {total} host(s), {total - len(bad)} clean"
                 + (f", not clean: {', '.join(map(printable, bad))}" if bad else ""))
    return "\n".join(lines)


def emit(report: dict, json_path: str | None) -> None:
    """Print the table to stdout (stderr when the JSON goes to stdout) and write the JSON."""
    table = render_table(report)
    if json_path == "-":
        print(table, file=sys.stderr, flush=True)
        print(json.dumps(report, indent=2), flush=True)
        return
    print("\n" + table, flush=True)
    if json_path:
        write_json(report, json_path)


def write_json(report: dict, json_path: str) -> None:
    """Atomically: a temp file beside ``json_path`` made by ``mkstemp`` (a name nobody can
    guess, created O_EXCL, mode 600: a link planted under a predictable name is never
    followed), then renamed over it."""
    directory, name = os.path.split(os.path.abspath(json_path))
    handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
        os.replace(tmp, json_path)
    except BaseException:
        os.unlink(tmp)
        raise


def _final_checks(name: str, entry: dict, run: AuditRun) -> dict:
    """Put the outside view (known only once every probe host ran) in place of its N/A, and
    the checks of the host's exposed ports (probed once every host was read)."""
    if entry.get("error"):
        return entry
    checks = [c for c in entry["checks"] if c.id != "outside.smtp"]
    exposure = []
    if name in run.exposed:
        exposure = exposure_checks(run.exposed[name][0], run.exposure_probes.get(name))
    return {**entry, "checks": checks + [outside_check(run.probes.get(name))] + exposure}


def _unreachable(state: State, run: AuditRun) -> dict[str, str]:
    return {h.name: h.data.get("ssh_hostname") or h.name for h in state.inventory
            if h in state.failed_hosts and state.is_host_in_limit(h)
            and h.name not in run.hosts and PROBES_GROUP not in h.groups}


def report_step(state: State, host: Host) -> bool:
    """python.call body (runs locally at execute time, on the first host read successfully and
    on each host whose read raised, in parallel): the first one prints the report for every
    host. When any host failed or was unreachable, every step raises SystemExit(1): pyinfra
    lets it through once all steps are done, so the run ends with the report and exit status 1."""
    run = audit_run(state)
    with run.lock:
        if not run.printed:
            from .audit_probe import probe_exposed  # audit_probe imports this module

            probe_exposed(run)
            run.hosts = {n: _final_checks(n, e, run) for n, e in run.hosts.items()}
            run.report = build_report(run.hosts, _unreachable(state, run))
            emit(run.report, run.json_path or None)
            run.printed = True
    if not (run.report or {}).get("ok"):
        raise SystemExit(1)
    return True
