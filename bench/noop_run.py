"""Benchmark: lockdown's no-op re-run and audit against a bare pyinfra run (the floor).

    python -m bench.noop_run [--boxes N] [--repeat R] [--suite bookworm|trixie]

Boots N lab boxes in a lab of its own, converges them once, then times R runs each of:
  floor   pyinfra -y inventories/lab.py exec -- true      (connect + one remote command)
  noop    pyinfra -y inventories/lab.py deploys/mail.py   (converged: must change nothing)
  audit   pyinfra -y inventories/lab.py deploys/audit.py      (with the outside probe)
  audit-facts  the same without the outside probe (audit_probe=off)
and counts remote commands per host from -vvv output. Prints medians; the lab is torn down.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from contextlib import contextmanager

from lab.api import Lab
from lab.config import LabConfig

CREDENTIALS = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.lab.test", "LOCKDOWN_RELAY_PASSWORD": "bench-pw"}
RUNS = {
    "floor": ["exec", "--", "true"],
    "noop": ["deploys/mail.py"],
    "audit": ["deploys/audit.py"],  # facts + the outside probe from the lab prober
    "audit-facts": ["--data", "audit_probe=off", "deploys/audit.py"],  # facts only
}


def timed(lab: Lab, argv: list[str]) -> float:
    started = time.monotonic()
    result = lab.run(argv, env=CREDENTIALS)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def remote_commands(lab: Lab, argv: list[str], hosts: int) -> float:
    result = lab.run(argv[:2] + ["-vvv"] + argv[2:], env=CREDENTIALS)
    return len(re.findall(r"\[\w+\]\s+>>> ", result.stderr)) / hosts


@contextmanager
def bench_lab(state_dir: str, netns: str):
    """A lab of the benchmark's own (network, image, stand-in with CREDENTIALS), always torn down."""
    lab = Lab(LabConfig.from_env({**os.environ, "LOCKDOWN_LAB_DIR": state_dir,
                                  "LOCKDOWN_LAB_NETNS": netns}))
    lab.down()
    try:
        lab.ensure_network()
        lab.standin_start()
        lab.standin.set(login=CREDENTIALS["LOCKDOWN_RELAY_LOGIN"],
                        password=CREDENTIALS["LOCKDOWN_RELAY_PASSWORD"])
        yield lab
    finally:
        lab.down()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boxes", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--suite", default="bookworm", choices=("bookworm", "trixie"))
    args = parser.parse_args()
    with bench_lab("/tmp/lockdown-bench", "ldbench") as lab:
        lab.up(args.boxes, suites=[args.suite] * args.boxes)
        base = lab.pyinfra_argv() + ["-y"]
        first = timed(lab, base + ["deploys/mail.py"])
        print(f"suite={args.suite} boxes={args.boxes} first converge: {first:.2f}s")
        # Interleaved, so drift in the machine's speed hits every kind of run alike.
        samples = {name: [] for name in RUNS}
        for _ in range(args.repeat):
            for name, tail in RUNS.items():
                samples[name].append(timed(lab, base + tail))
        floor = statistics.median(samples["floor"])
        for name, tail in RUNS.items():
            median = statistics.median(samples[name])
            commands = remote_commands(lab, base + tail, args.boxes)
            print(f"{args.suite} boxes={args.boxes} {name:11} median {median:.3f}s  min {min(samples[name]):.3f}s  "
                  f"x{median / floor:.2f} of floor  remote commands/host {commands:g}")


if __name__ == "__main__":
    main()
