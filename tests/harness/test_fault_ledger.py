"""The fault ledger totals what the fault tests record and renders docs/reliability.md from it."""
from tests.lab import fault_ledger


def test_ledger_totals_and_renders(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    fault_ledger.record(ledger, kind="kill", where="after op 1", checked="ssh, smtp", ok=True)
    fault_ledger.record(ledger, kind="kill", where="after op 2", checked="ssh", ok=True, restored_s=31.5)
    fault_ledger.record(ledger, kind="bad-input", where="relay_port=0", checked="snapshot", ok=False,
                        box_changes=1)
    faults = fault_ledger.load(ledger)
    totals = fault_ledger.totals(faults)
    assert totals["per_kind"] == {"bad-input": 1, "kill": 2}
    assert (totals["failed_checks"], totals["box_changes"], totals["longest_restore_s"]) == (1, 1, 31.5)
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# r\n{fault_ledger.BEGIN}\nold\n{fault_ledger.END}\ntail\n")
    fault_ledger.write_doc(faults, doc)
    text = doc.read_text()
    assert "faults injected 3 (bad-input 1, kill 2)" in text and "| kill | after op 2 | ssh | ok (SSH" in text
    assert "old" not in text and text.endswith("tail\n")


def test_first_record_of_a_run_starts_a_new_ledger(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"kind": "stale"}\n')
    fault_ledger.record(ledger, kind="reboot", where="after converge", checked="audit", ok=True)
    assert [f.kind for f in fault_ledger.load(ledger)] == ["reboot"]


def test_workers_of_one_run_add_to_one_ledger_and_the_next_run_starts_afresh(tmp_path, monkeypatch):
    """pytest-xdist: each worker is its own process; the controller's run id is in their env."""
    import subprocess
    import sys

    from lab.config import REPO_ROOT

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"kind": "stale"}\n')
    script = ("import sys; from pathlib import Path; from tests.lab import fault_ledger; "
              "fault_ledger.record(Path(sys.argv[1]), kind=sys.argv[2], where='w', checked='c', ok=True)")

    def worker(kind: str) -> None:
        subprocess.run([sys.executable, "-c", script, str(ledger), kind], check=True, cwd=REPO_ROOT,
                       timeout=60, stdin=subprocess.DEVNULL)

    monkeypatch.setenv(fault_ledger.RUN_ENV, "")
    fault_ledger.start_run()  # sets the run id that the workers inherit
    worker("kill")
    worker("reboot")
    assert sorted(f.kind for f in fault_ledger.load(ledger)) == ["kill", "reboot"]
    assert fault_ledger.written_this_run(ledger)
    fault_ledger.start_run()  # the next run
    assert not fault_ledger.written_this_run(ledger)
    worker("link-cut")
    assert [f.kind for f in fault_ledger.load(ledger)] == ["link-cut"]
