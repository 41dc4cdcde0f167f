"""Helper of the lab tests (no tests here).

The fault suite's ledger (issue 14): one JSON line per injected fault and what was checked after it.

Every fault test calls ``record(...)`` once per fault it injected, after checking the box from
outside. The run's terminal summary totals the ledger (section "faults"), and
``python -m tests.lab.fault_ledger --write`` renders docs/reliability.md's table from the last
run's ledger, so the document shows the suite's own output, never a hand-typed figure.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LEDGER = Path(os.environ.get("LOCKDOWN_FAULT_LEDGER", REPO_ROOT / "build" / "fault-ledger.jsonl"))
DOC = REPO_ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"

# The totals the "done when" names; each row adds its own counts.
COUNTS = ("open_hosts", "lockouts", "secrets_exposed", "mails_lost", "box_changes")


@dataclass(frozen=True)
class Fault:
    kind: str  # e.g. "kill", "link-cut", "relay-outage", "reboot", "host-failure", "bad-input"
    where: str  # where it struck: "after op 7/19 (ufw enable)", "host 3 of 5: /etc full"...
    checked: str  # what was checked after it, in a few words
    ok: bool  # every check held
    open_hosts: int = 0  # SMTP answered from outside / something relayed
    lockouts: int = 0  # SSH did not get in and the dead-man timer did not restore it in time
    restored_s: float | None = None  # SSH came back through the dead-man timer after this long
    secrets_exposed: int = 0  # a secret (or a value derived from it) in output or a readable file
    mails_lost: int = 0  # submitted but not arrived exactly once
    box_changes: int = 0  # bad input only: differences in the before/after snapshot


# A test run's id: the controller sets it (start_run) and pytest-xdist workers inherit it, so
# "the first record of a run empties the ledger" holds across processes. The ledger's run file
# names the run that wrote it. Without a controller (a script, a unit test) the run is this process.
RUN_ENV = "LOCKDOWN_FAULT_LEDGER_RUN"


def start_run() -> str:
    """The controller's, at the start of a test run; the ledger itself is left alone until the
    run's first fault (a run without fault tests keeps the last fault run's ledger)."""
    run = f"{os.getpid()}-{time.time_ns()}"
    os.environ[RUN_ENV] = run
    return run


def _this_run() -> str:
    return os.environ.get(RUN_ENV) or f"process-{os.getpid()}"


def _run_file(path: Path) -> Path:
    return path.with_name(path.name + ".run")


def written_this_run(path: Path = LEDGER) -> bool:
    run_file = _run_file(path)
    return run_file.exists() and run_file.read_text() == _this_run()


def record(path: Path = LEDGER, **fields) -> Fault:
    """Append one fault; the first record of a test run empties the previous run's ledger."""
    fault = Fault(**fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # workers appending at once: one of them empties it
        if not written_this_run(path):
            path.write_text("")
            _run_file(path).write_text(_this_run())
        with open(path, "a") as ledger:
            ledger.write(json.dumps(asdict(fault)) + "\n")
    return fault


def read_entries(path: Path, entry):
    """The ledger's JSON lines as ``entry`` objects (none when no run wrote it yet)."""
    if not path.exists():
        return []
    return [entry(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def load(path: Path = LEDGER) -> list[Fault]:
    return read_entries(path, Fault)


def totals(faults: list[Fault]) -> dict:
    restored = [f.restored_s for f in faults if f.restored_s is not None]
    return {
        "faults": len(faults),
        "per_kind": dict(sorted(Counter(f.kind for f in faults).items())),
        "failed_checks": sum(not f.ok for f in faults),
        **{name: sum(getattr(f, name) for f in faults) for name in COUNTS},
        "restored_by_timer": len(restored),
        "longest_restore_s": max(restored) if restored else None,
    }


def summary_lines(faults: list[Fault]) -> list[str]:
    t = totals(faults)
    kinds = ", ".join(f"{kind} {n}" for kind, n in t["per_kind"].items())
    restore = (f"; SSH restored by the dead-man timer {t['restored_by_timer']}x, "
               f"longest {t['longest_restore_s']:.1f}s" if t["restored_by_timer"] else "")
    return [
        f"faults injected {t['faults']} ({kinds}); checks failed {t['failed_checks']}",
        f"hosts left open {t['open_hosts']}, lockouts {t['lockouts']}{restore}, "
        f"secrets exposed {t['secrets_exposed']}, mails lost {t['mails_lost']}, "
        f"box changes after bad input {t['box_changes']}",
    ]


def markdown(faults: list[Fault]) -> str:
    lines = [*(f"**{line}**  " for line in summary_lines(faults)), "",
             "| fault | where it struck | what was checked | result |", "|---|---|---|---|"]
    for f in faults:
        result = "ok" if f.ok else "FAILED"
        if f.restored_s is not None:
            result += f" (SSH restored by the timer after {f.restored_s:.1f}s)"
        lines.append(f"| {f.kind} | {f.where} | {f.checked} | {result} |")
    return "\n".join(lines)


def replace_section(doc: Path, begin: str, end: str, body: str) -> None:
    """Rewrite what stands between the markers ``begin`` and ``end`` of ``doc``."""
    head, found, rest = doc.read_text().partition(begin)
    if not found:
        raise SystemExit(f"{doc} has no {begin} ... {end} markers: add them where the table goes")
    _, _, tail = rest.partition(end)
    doc.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


def write_doc(faults: list[Fault], doc: Path = DOC) -> None:
    replace_section(doc, BEGIN, END, markdown(faults))


def ledger_cli(argv, *, what: str, ledger: Path, load, write_doc, summary, run_first: str) -> None:
    """``python -m`` entry of a ledger: print its totals, or (--write) render it into DOC."""
    parser = argparse.ArgumentParser(description=f"Show or render the {what}'s last ledger.")
    parser.add_argument("--ledger", type=Path, default=ledger)
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC}")
    args = parser.parse_args(argv)
    entries = load(args.ledger)
    if not entries:
        raise SystemExit(f"{args.ledger} is empty: run {run_first}")
    if args.write:
        write_doc(entries)
    print("\n".join(summary(entries)))


def main(argv: list[str] | None = None) -> None:
    ledger_cli(argv, what="fault suite", ledger=LEDGER, load=load, write_doc=write_doc,
               summary=summary_lines, run_first="the fault tests first (pytest -k fault)")


if __name__ == "__main__":
    main()
