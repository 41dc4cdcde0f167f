"""Capture a fact's real output from a lab box as a pyinfra-testing fixture.

    python -m lab.capture BOX postfix.PostfixParameters trixie_no_main_cf [--kwargs '{"path": "/x"}']

runs the fact's command as root on the box (the way the deploys read it: as root, one shell
command) and writes tests/unit/facts/<module>.<Fact>/<case>.json with the command, the output
exactly as the box printed it, and what the fact's process() makes of it. Review the "fact"
part before committing: the fixture then guards the parser against regressions.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from .api import Lab
from .config import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "unit" / "facts"


def capture(lab: Lab, box_name: str, fact_path: str, case: str, kwargs: dict) -> dict:
    module_name, class_name = fact_path.rsplit(".", 1)
    module = importlib.import_module(f"pyinfra_lockdown.facts.{module_name}")
    fact = getattr(module, class_name)()
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    result = lab.box(box_name).root(["/bin/sh", "-c", command])
    if result.returncode != 0:
        raise SystemExit(f"capture: the command exited {result.returncode} on {box_name}: "
                         f"{result.stderr.strip()[:300]}")
    output = result.stdout.splitlines()
    fixture = {"command": command, "output": output,
               "fact": fact.process([line for line in output if line.strip()])}
    if kwargs:
        fixture = {"arg": kwargs, **fixture}
    target = FIXTURES / f"{module_name}.{class_name}" / f"{case}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(fixture, indent=4) + "\n")
    return {"written": str(target.relative_to(REPO_ROOT)), "fact": fixture["fact"]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.capture", description=__doc__.split("\n")[0])
    parser.add_argument("box")
    parser.add_argument("fact", help="module.Class under pyinfra_lockdown.facts, e.g. ufw.SshdConfig")
    parser.add_argument("case", help="fixture name, named for the release: trixie_socket_2222")
    parser.add_argument("--kwargs", default="{}", help="the fact's arguments as JSON")
    args = parser.parse_args(argv)
    print(json.dumps(capture(Lab(), args.box, args.fact, args.case, json.loads(args.kwargs)),
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
