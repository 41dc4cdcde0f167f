"""The security table (issue 22 item 7): one JSON line per attack a test tried, and its outcome.

Each test that plays an attacker (an impostor relay, a fake sshd, a flushed firewall, hostile
host text, a bad input...) calls ``record(...)`` once per attack, after checking the result.
The controller empties the ledger when a test run starts (tests/conftest.py), so the ledger
holds exactly the last run's attacks, also with pytest-xdist workers appending to it.
``python -m tests.security_ledger --write`` renders docs/reliability.md's security table from
it: the document shows what the suite saw, never a hand-typed outcome.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LEDGER = Path(os.environ.get("LOCKDOWN_SECURITY_LEDGER",
                             REPO_ROOT / "build" / "security-ledger.jsonl"))
DOC = REPO_ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- security:begin -->", "<!-- security:end -->"


@dataclass(frozen=True)
class Attack:
    attack: str  # what the attacker did, e.g. "impostor relay: same name, unknown CA"
    where: str  # the test (module::name[release])
    outcome: str  # what happened, e.g. "no AUTH reached it; converge failed: certificate ..."
    held: bool  # lockdown held (the attack failed)


def start_run(path: Path = LEDGER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def record(attack: str, where: str, outcome: str, held: bool, path: Path = LEDGER) -> Attack:
    entry = Attack(attack=attack, where=where, outcome=outcome, held=held)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as ledger:  # one write per line: appends of workers do not interleave
        ledger.write(json.dumps(asdict(entry)) + "\n")
    return entry


def load(path: Path = LEDGER) -> list[Attack]:
    from tests.lab.fault_ledger import read_entries

    return read_entries(path, Attack)


def summary_line(attacks: list[Attack]) -> str:
    return f"attacks tried {len(attacks)}; held {sum(a.held for a in attacks)}; " \
           f"NOT held {sum(not a.held for a in attacks)}"


def markdown(attacks: list[Attack]) -> str:
    lines = [f"**{summary_line(attacks)}**", "",
             "| attack | where it is tested | outcome | held |", "|---|---|---|---|"]
    for a in sorted(attacks, key=lambda a: (a.attack, a.where)):
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in (a.attack, a.where, a.outcome)]
        lines.append(f"| {cells[0]} | `{cells[1]}` | {cells[2]} | {'yes' if a.held else 'NO'} |")
    return "\n".join(lines)


def write_doc(attacks: list[Attack], doc: Path = DOC) -> None:
    from tests.lab.fault_ledger import replace_section

    replace_section(doc, BEGIN, END, markdown(attacks))


def main(argv: list[str] | None = None) -> None:
    from tests.lab.fault_ledger import ledger_cli

    ledger_cli(argv, what="test run's security", ledger=LEDGER, load=load, write_doc=write_doc,
               summary=lambda attacks: [summary_line(attacks)], run_first="the tests first (make test)")


if __name__ == "__main__":
    main()
