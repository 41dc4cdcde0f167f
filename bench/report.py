"""Issue 15's targets judged on one `python -m bench` run, and its section of bench/RESULTS.md."""
from __future__ import annotations

from pyinfra_lockdown.facts.audit import PROBE_CONNECT_TIMEOUT

KIND_NAMES = {
    "floor": "floor (`exec -- true`)", "first": "lockdown first converge", "noop": "lockdown no-op",
    "dry": "lockdown `--dry`", "audit-facts": "facts-only audit", "audit": "audit + outside probe",
    "ansible-first": "Ansible first converge", "ansible-noop": "Ansible no-op",
}
MEMORY_LIMIT_MIB = 1024
BOX_CPU_KINDS = ("floor", "first", "noop", "audit-facts", "audit", "ansible-first", "ansible-noop")


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def _checks(small: dict, large: dict | None, large_resources: dict | None, n_large: int | None):
    """(name, kind to profile, measured value, limit, higher_is_better, figure text)."""
    m = small["medians"]
    rows = [
        ("no-op run ≤ 1.15x the floor, 1 box", "noop", _ratio(m["noop"], m["floor"]), 1.15, False, "x"),
        ("facts-only audit ≤ 1.15x the floor, 1 box", "audit-facts",
         _ratio(m["audit-facts"], m["floor"]), 1.15, False, "x"),
        ("first converge of one fresh box ≤ 2.5 s", "first", m["first"], 2.5, False, " s"),
        ("first converge ≥ 5x faster than the tuned playbook, 1 box", "first",
         _ratio(m["ansible-first"], m["first"]), 5.0, True, "x"),
        ("audit with the outside probe ≤ 1.3x the facts-only audit, 1 box", "audit",
         _ratio(m["audit"], m["audit-facts"]), 1.3, False, "x"),
    ]
    if large:
        big = large["medians"]
        rows += [
            (f"no-op run at {n_large} boxes ≤ 2x its 1-box time", "noop",
             _ratio(big["noop"], m["noop"]), 2.0, False, "x"),
            (f"facts-only audit at {n_large} boxes ≤ 2x its 1-box time", "audit-facts",
             _ratio(big["audit-facts"], m["audit-facts"]), 2.0, False, "x"),
            (f"first converge of {n_large} fresh boxes ≤ 3x the 1-box time", "first",
             _ratio(big["first"], m["first"]), 3.0, False, "x"),
            (f"audit with the outside probe ≤ 1.3x the facts-only audit, {n_large} boxes", "audit",
             _ratio(big["audit"], big["audit-facts"]), 1.3, False, "x"),
            (f"controller memory at {n_large} boxes < 1 GiB (peak RSS)", None,
             max(r["peak_rss_mib"] for k, r in large_resources.items() if not k.startswith("ansible")),
            MEMORY_LIMIT_MIB, False, " MiB"),
        ]
    return rows


def _judge(rows) -> list[dict]:
    judged = []
    for name, kind, value, limit, higher, unit in rows:
        met = value >= limit if higher else value <= limit
        by = "" if met else (f"short by {round(limit - value, 2)}{unit}" if higher
                             else f"over by {round(value - limit, 2)}{unit} ({_ratio(value, limit)}x the target)")
        judged.append({"target": name, "kind": kind, "measured": f"{value}{unit}", "met": met, "by": by})
    return judged


def targets(blocks: list[dict]) -> list[dict]:
    small = min(blocks, key=lambda b: b["n"])
    large = max(blocks, key=lambda b: b["n"]) if len(blocks) > 1 else None
    return _judge(_checks(small, large, large["lockdown_resources"] if large else None,
                          large["n"] if large else None))


def kinds_to_profile(n: int, medians: dict, reference: dict) -> list[str]:
    """Kinds whose target at this block looks missed (reference: the smallest N's medians)."""
    block = {"n": n, "medians": medians}
    if not reference:
        rows = _checks(block, None, None, None)
    else:
        rows = _checks({"medians": reference}, block, {"x": {"peak_rss_mib": 0}}, n)[5:]
    return sorted({row["kind"] for row in _judge(rows) if not row["met"] and row["kind"]})


def block_lines(block: dict) -> str:
    m = block["medians"]
    return "\n".join(f"bench: N={block['n']} {kind:13} median {m[kind]:.3f}s" for kind in m)


def targets_table(judged: list[dict]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {'**met**' if t['met'] else 'missed: ' + t['by']} |"
              for t in judged]
    return "\n".join(lines)


def _timeline_lines(timeline: list, top: int = 8) -> list[str]:
    total = sum(seconds for _, seconds in timeline) or 1
    ranked = sorted(timeline, key=lambda item: -item[1])[:top]
    return [f"    {seconds:6.3f} s {100 * seconds / total:4.0f}%  {name}" for name, seconds in ranked]


def section(run: dict) -> str:
    m, v = run["machine"], run["versions"]
    sizes = [b["n"] for b in run["blocks"]]
    out = [f"## {run['date']}: one run of `{run['command'].strip()}` (issue 15)", "",
           f"Machine: {m['cpus']} cores, {m['mem_gib']} GiB, {m['os']}, kernel {m['kernel']}, "
           f"Python {m['python']}; lab boxes {run['suite']} (Postfix {v['postfix']}, {v['ufw']}); "
           f"pyinfra {v['pyinfra']}; {v['ansible']}.", "",
           "Method: for each N a lab of its own. First converges on fresh boxes, lockdown and the "
           "tuned Ansible playbook (`bench/ansible`, ufw tasks guarded, no fact gathering, pipelining, "
           "ControlPersist, forks = N) alternating; then re-run rounds on the lockdown-converged "
           "boxes, every kind once per round in a rotated order (paired: drift hits every kind "
           "alike). Whole CLI runs, wall time of the process (`bench/rusage.py`), medians; "
           f"pyinfra with `--parallel N`; the outside probe connects with a {PROBE_CONNECT_TIMEOUT} s "
           "timeout, all hosts, ports and addresses at once (`facts/audit.py`). The lab boxes share "
           "the controller's cores.", "",
           "| N | " + " | ".join(KIND_NAMES[k] for k in _kinds(run)) + " | load avg (mean/max) |",
           "|---|" + "---|" * (len(_kinds(run)) + 1)]
    for block in run["blocks"]:
        load = block["load"]
        out.append(f"| {block['n']} | " + " | ".join(f"{block['medians'][k]:.2f} s" for k in _kinds(run))
                   + f" | {load['load_mean']} / {load['load_max']} |")
    out += ["", "Ratios (medians of the same run):", "",
            "| N | no-op / floor | dry / floor | facts audit / floor | probe audit / facts audit | "
            "Ansible first / lockdown first | Ansible no-op / lockdown no-op |", "|---|---|---|---|---|---|---|"]
    for block in run["blocks"]:
        b = block["medians"]
        out.append(f"| {block['n']} | {_ratio(b['noop'], b['floor'])}x | {_ratio(b['dry'], b['floor'])}x | "
                   f"{_ratio(b['audit-facts'], b['floor'])}x | {_ratio(b['audit'], b['audit-facts'])}x | "
                   f"{_ratio(b['ansible-first'], b['first'])}x | {_ratio(b['ansible-noop'], b['noop'])}x |")
    out += ["", "Targets:", "", targets_table(run["targets"]), "",
            "Fleet checks and the controller (lockdown's pyinfra process; peak RSS over the runs, "
            "CPU seconds per host of the median run):", "",
            "| N | hosts converged | canaries arrived | test mail relayed | audit passed | SSH errors "
            "| peak RSS first / no-op / audit | controller CPU s per host first / no-op / audit | remote commands per host "
            "no-op / audit | block time |", "|---|---|---|---|---|---|---|---|---|---|"]
    for block in run["blocks"]:
        c, r, rc = block["checks"], block["lockdown_resources"], block["remote_commands_per_host"]
        out.append(
            f"| {block['n']} | {c['converged']}/{c['hosts']} | {c['canaries_arrived']} | {c['mail_relayed']} | "
            f"{c['audit_passed']} | {c['ssh_errors']} | "
            + " / ".join(f"{r[k]['peak_rss_mib']:.0f}" for k in ("first", "noop", "audit")) + " MiB | "
            + " / ".join(f"{r[k]['cpu_s_per_host']:.3f}" for k in ("first", "noop", "audit")) + " | "
            + f"{rc['noop']:g} / {rc['audit']:g} | {block['block_seconds']} s |")
    out += ["", "CPU seconds per host inside the boxes (their cgroups; the boxes run on the same 2 "
            "cores, so N x this / 2 is a floor under the wall time at N boxes), median run:", "",
            "| N | " + " | ".join(KIND_NAMES[k] for k in BOX_CPU_KINDS) + " |",
            "|---|" + "---|" * len(BOX_CPU_KINDS)]
    for block in run["blocks"]:
        r = block["lockdown_resources"]
        out.append(f"| {block['n']} | " + " | ".join(f"{r[k]['box_cpu_s_per_host']:.2f}" for k in BOX_CPU_KINDS) + " |")
    blocks = sorted(run["blocks"], key=lambda b: b["n"])
    if len(blocks) >= 2:
        low, high = blocks[-2], blocks[-1]
        hosts = high["n"] - low["n"]
        out += ["", f"Slope beyond N={low['n']} (seconds per extra host, from N={low['n']} to "
                f"N={high['n']}, this machine: the boxes' CPU is the controller's):", "",
                "| run | wall s per extra host | controller CPU s per host | boxes' CPU s per host |",
                "|---|---|---|---|"]
        for kind in ("floor", "first", "noop", "audit-facts", "audit", "ansible-first", "ansible-noop"):
            r = high["lockdown_resources"][kind]
            out.append(f"| {KIND_NAMES[kind]} | {(high['medians'][kind] - low['medians'][kind]) / hosts:.3f} | "
                       f"{r['cpu_s_per_host']:.3f} | {r['box_cpu_s_per_host']:.3f} |")
    profiled = [(b, kind, p) for b in run["blocks"] for kind, p in b.get("profiles", {}).items()]
    if profiled:
        out += ["", "Where the time goes in the runs whose target was missed (one extra run each, "
                "wall time between pyinfra's phase and operation lines of `-vv`, largest first; the "
                "controller's own CPU profile (bench/profile_run.py) where linked):"]
        for block, kind, p in profiled:
            n, r = block["n"], block["lockdown_resources"][kind]
            cores = run["machine"]["cpus"]
            link = f" — controller profile: `{p['controller_profile']}`" if p.get("controller_profile") else ""
            out += ["", f"{KIND_NAMES[kind]}, N={n}{link}. CPU per host: boxes {r['box_cpu_s_per_host']:.2f} s, "
                    f"controller {r['cpu_s_per_host']:.3f} s; {n} hosts on {cores} cores need at least "
                    f"{n * (r['box_cpu_s_per_host'] + r['cpu_s_per_host']) / cores:.2f} s of the median "
                    f"{block['medians'][kind]:.2f} s:", ""] + _timeline_lines(p["timeline"])
    for n, error in run.get("failed", {}).items():
        out += ["", f"N={n} could not be measured: {error.splitlines()[0] if error else '?'}"]
    out += ["", f"Re-run on a quiet machine: `{run['command'].strip()}` (as root, from the repo root; "
            f"writes bench/results.json and appends a section here). Sizes run: {sizes}.", ""]
    return "\n".join(out)


def _kinds(run: dict) -> list[str]:
    return [k for k in KIND_NAMES if all(k in b["medians"] for b in run["blocks"])]
