"""One benchmark run: lockdown against the floor and the tuned Ansible playbook, side by side.

    python -m bench [--boxes 1,10,50] [--repeat 5] [--firsts 2] [--suite bookworm] [--no-write]
    python -m bench --simulated [--sizes 100,500,1000] [--repeat R] [--capture]   (bench/simfleet.py)

For each N, in a lab of its own (network, stand-in; torn down at the end; LOCKDOWN_LAB_DIR /
LOCKDOWN_LAB_NETNS choose it, default /tmp/lockdown-bench, ldbench):
  first converge  N fresh boxes converged by lockdown (deploys/mail.py), and N other fresh boxes
                  by the tuned Ansible playbook (bench/ansible, ufw tasks guarded), alternating
                  which goes first; --firsts rounds (fewer at large N, see FIRSTS_AT)
  fleet checks    on the lockdown-converged boxes: every host converged, its canary and one more
                  mail reached the stand-in, no SSH error in pyinfra's output
  re-runs         --repeat rounds on those boxes, every kind once per round, the order rotated
                  each round: floor (`exec -- true`), noop, --dry, facts-only audit, audit with
                  the outside probe, Ansible no-op (must report changed=0 everywhere)
Every run is a whole CLI run (`bench.rusage` records its wall time, CPU seconds and peak RSS),
with `--parallel N` for pyinfra and `--forks N` for Ansible. Targets of issue 15 are judged on
the medians; for each missed one a profile of where the time goes is written (per-operation
wall time from pyinfra's -vv output, and bench.profile_run's view of the controller's CPU).
Writes bench/results.json (all samples) and appends a dated section to bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import report
from bench.noop_run import CREDENTIALS, bench_lab
from lab.config import REPO_ROOT

BENCH_DIR = REPO_ROOT / "bench"
CGROUP_ROOT = Path("/sys/fs/cgroup/unified")  # lab/cgroups.py: one per box, <netns>-<box>
LAB_DIR = os.environ.get("LOCKDOWN_LAB_DIR", "/tmp/lockdown-bench")
LAB_NETNS = os.environ.get("LOCKDOWN_LAB_NETNS", "ldbench")
FIRSTS_AT = {50: 1}  # first-converge rounds at this N (each boots 2N fresh boxes)
REPEATS_AT = {50: 3}
RERUNS = ("floor", "noop", "dry", "audit-facts", "audit", "ansible-noop")
LOCKDOWN_TAILS = {
    "floor": ["exec", "--", "true"],
    "first": ["deploys/mail.py"],
    "noop": ["deploys/mail.py"],
    "dry": ["--dry", "deploys/mail.py"],
    "audit-facts": ["--data", "audit_probe=off", "deploys/audit.py"],
    "audit": ["deploys/audit.py"],
}
# What pyinfra prints when the controller runs out of something (fds, the box's MaxStartups...)
SSH_ERRORS = re.compile(r"Could not connect|SSH error|Error reading SSH protocol banner|Too many open "
                        r"files|Connection reset|Authentication (failed|timeout)|No route|Errno", re.I)


class LoadSampler(threading.Thread):
    """1-minute load average and available memory every 5 s while a block runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((os.getloadavg()[0], _mem_available_gib()))
            self.stop.wait(5)

    def summary(self) -> dict:
        self.stop.set()
        loads = [s[0] for s in self.samples] or [os.getloadavg()[0]]
        mems = [s[1] for s in self.samples] or [_mem_available_gib()]
        return {"load_mean": round(statistics.mean(loads), 2), "load_max": round(max(loads), 2),
                "mem_available_min_gib": round(min(mems), 1)}


def _mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


class Fleet:
    """N boxes of one lab, the commands that run against them, and the measurements."""

    def __init__(self, lab, n: int, suite: str, ansible):
        self.lab, self.n, self.suite, self.ansible = lab, n, suite, ansible
        self.base = lab.pyinfra_argv() + ["-y", "--parallel", str(n)]
        self.usage = Path(tempfile.mkdtemp(prefix="lockdown-bench-"))
        self.ssh_errors: list[str] = []

    def boxes_cpu(self) -> float:
        """CPU seconds the boxes used so far (each box's cgroup, unified hierarchy)."""
        total = 0
        for stat in CGROUP_ROOT.glob(f"{self.lab.config.netns}-box*/cpu.stat"):
            for line in stat.read_text().splitlines():
                if line.startswith("usage_usec "):
                    total += int(line.split()[1])
        return total / 1e6

    def measure(self, argv: list[str], env: dict | None = None) -> tuple[dict, subprocess.CompletedProcess]:
        out = self.usage / "run.json"
        boxes_before = self.boxes_cpu()
        result = self.lab.run([sys.executable, "-m", "bench.rusage", str(out), "--", *argv],
                              env={**CREDENTIALS, **(env or {})}, timeout=1800)
        self.ssh_errors += [line for line in result.stderr.splitlines() if SSH_ERRORS.search(line)]
        usage = json.loads(out.read_text())
        usage["boxes_cpu"] = self.boxes_cpu() - boxes_before
        return usage, result

    def lockdown(self, kind: str, extra: list[str] | None = None) -> dict:
        usage, result = self.measure(self.base + (extra or []) + LOCKDOWN_TAILS[kind])
        if result.returncode != 0:
            raise SystemExit(f"bench: lockdown {kind} at N={self.n} failed:\n{result.stderr[-4000:]}")
        return usage

    def ansible_run(self, expect_changes: bool) -> dict:
        from bench.ansible_run import recap

        self.ansible.close_masters()  # each run starts cold, like a pyinfra run
        usage, result = self.measure(self.ansible.argv, self.ansible.env)
        if result.returncode != 0:
            raise SystemExit(f"bench: ansible-playbook at N={self.n} failed:\n{result.stdout[-4000:]}")
        changed = recap(result)
        every = all(changed.values()) if expect_changes else not any(changed.values())
        if len(changed) != self.n or not every:
            raise SystemExit(f"bench: ansible at N={self.n}: changed per host {changed}")
        return usage

    def fresh_boxes(self):
        for box in self.lab.boxes():
            self.lab.remove_box(box)
        return self.lab.up(self.n, timeout=600, suites=[self.suite] * self.n)


def first_converges(fleet: Fleet, rounds: int, ansible_factory) -> dict:
    """Alternating lockdown / Ansible first converges on fresh boxes; lockdown's set stays up."""
    samples = {"first": [], "ansible-first": []}
    for attempt in range(rounds):
        # the last round ends with lockdown, whose converged boxes the re-runs use
        order = ["ansible", "lockdown"] if (rounds - 1 - attempt) % 2 == 0 else ["lockdown", "ansible"]
        for tool in order:
            boxes = fleet.fresh_boxes()
            if tool == "lockdown":
                fleet.lab.standin.clear()
                samples["first"].append(fleet.lockdown("first"))
            else:
                fleet.ansible = ansible_factory(boxes)
                samples["ansible-first"].append(fleet.ansible_run(expect_changes=True))
            print(f"bench: N={fleet.n} {tool} first converge {samples['first' if tool == 'lockdown' else 'ansible-first'][-1]['wall']:.2f}s",
                  flush=True)
    fleet.ansible = ansible_factory(fleet.lab.boxes())
    return samples


def fleet_checks(fleet: Fleet) -> dict:
    """Every host converged (the first converge exited 0), relays mail, and nothing SSH failed."""
    from tests.lab.deploy_helpers import canaries, not_canaries, send_mail, wait_for

    standin = fleet.lab.standin
    boxes = fleet.lab.boxes()
    canary_hosts = len(canaries(standin.messages()))
    for box in boxes:
        send_mail(box, subject=f"bench {box.name}")
    wait_for(lambda: len(not_canaries(standin.messages())) >= len(boxes), timeout=120)
    relayed = {m["data"].split("Subject: bench ", 1)[1].split()[0]
               for m in not_canaries(standin.messages()) if "Subject: bench " in m["data"]}
    return {"hosts": len(boxes), "converged": len(boxes), "canaries_arrived": canary_hosts,
            "mail_relayed": len(relayed), "audit_passed": None, "ssh_errors": len(fleet.ssh_errors)}


def reruns(fleet: Fleet, repeat: int) -> dict:
    samples = {kind: [] for kind in RERUNS}
    for round_ in range(repeat):
        shift = round_ % len(RERUNS)
        for kind in RERUNS[shift:] + RERUNS[:shift]:
            if kind == "ansible-noop":
                samples[kind].append(fleet.ansible_run(expect_changes=False))
            else:
                samples[kind].append(fleet.lockdown(kind))
        print(f"bench: N={fleet.n} round {round_ + 1}/{repeat}: " + ", ".join(
            f"{k} {samples[k][-1]['wall']:.2f}s" for k in RERUNS), flush=True)
    return samples


def remote_commands(fleet: Fleet, kind: str) -> float:
    result = fleet.lab.run(fleet.base + ["-vvv"] + LOCKDOWN_TAILS[kind], env=CREDENTIALS, timeout=900)
    return len(re.findall(r"\[\w+\]\s+>>> ", result.stderr)) / fleet.n


def operation_timeline(fleet: Fleet, kind: str) -> list[tuple[str, float]]:
    """Wall time between pyinfra's phase and operation lines (-vv) of one run: where a run's
    time goes, remote waits included. Lines are timestamped as they arrive."""
    from lab.network import in_netns

    argv = in_netns(fleet.lab.config.netns, fleet.base + ["-vv"] + LOCKDOWN_TAILS[kind])
    env = {**os.environ, **fleet.lab.config.env(), **CREDENTIALS, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    marks = [("start (interpreter, imports)", started)]
    with subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as child:
        for line in child.stderr:
            line = line.strip()
            if line.startswith("--> "):
                marks.append((line[4:].rstrip(". "), time.monotonic()))
    marks.append(("end", time.monotonic()))
    return [(name, round(marks[i + 1][1] - at, 3)) for i, (name, at) in enumerate(marks[:-1])]


def controller_profile(fleet: Fleet, kind: str, path: Path) -> str | None:
    """bench.profile_run's view of one run's controller process (where its CPU goes)."""
    argv = [sys.executable, "-m", "bench.profile_run", str(path), *fleet.base[1:], *LOCKDOWN_TAILS[kind]]
    fleet.lab.run(argv, env=CREDENTIALS, timeout=900)
    return str(path.relative_to(REPO_ROOT)) if path.exists() else None


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text()
    total = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) / 1024 / 1024
    release = Path("/etc/os-release").read_text()
    pretty = re.search(r'PRETTY_NAME="([^"]+)"', release)
    return {"cpus": os.cpu_count(), "mem_gib": round(total, 1), "kernel": platform.release(),
            "os": pretty.group(1) if pretty else "?", "python": platform.python_version()}


def versions(lab) -> dict:
    from importlib.metadata import version

    from bench.ansible_run import ansible_version

    box = lab.boxes()[0]
    postfix = box.root("postconf -h mail_version").stdout.strip()
    ufw = box.root("ufw version | head -n 1").stdout.strip()
    return {"pyinfra": version("pyinfra"), "ansible": ansible_version(), "postfix": postfix, "ufw": ufw}


def bench_n(n: int, args, playbook_bin, vars_file_text: str) -> dict:
    from bench.ansible_run import Runner, write_inventory

    sampler = LoadSampler()
    sampler.start()
    started = time.monotonic()
    with bench_lab(LAB_DIR, LAB_NETNS) as lab:
        vars_file = lab.config.state_dir / "ansible" / "vars.json"
        vars_file.parent.mkdir(parents=True, exist_ok=True)
        vars_file.write_text(vars_file_text)

        def ansible_factory(boxes):
            return Runner(lab, playbook_bin, write_inventory(lab.config, boxes), vars_file,
                          forks=n, strategy="linear")

        fleet = Fleet(lab, n, args.suite, None)
        firsts = first_converges(fleet, FIRSTS_AT.get(n, args.firsts), ansible_factory)
        checks = fleet_checks(fleet)
        samples = {**firsts, **reruns(fleet, REPEATS_AT.get(n, args.repeat))}
        checks["audit_passed"] = len(fleet.lab.boxes())  # every audit run above exited 0
        commands = {kind: remote_commands(fleet, kind) for kind in ("noop", "audit-facts", "audit")}
        block = {"n": n, "samples": samples, "checks": checks, "remote_commands_per_host": commands,
                 "versions": versions(lab), "fleet": fleet}
        block["medians"] = {kind: round(statistics.median(s["wall"] for s in runs), 3)
                            for kind, runs in samples.items()}
        block["lockdown_resources"] = {
            kind: {"peak_rss_mib": round(max(s["maxrss_mib"] for s in samples[kind]), 1),
                   "cpu_s_per_host": round(statistics.median(s["cpu"] for s in samples[kind]) / n, 3),
                   "box_cpu_s_per_host": round(statistics.median(s["boxes_cpu"] for s in samples[kind]) / n, 3)}
            for kind in ("floor", "first", "noop", "dry", "audit-facts", "audit", "ansible-first", "ansible-noop")}
        block["profiles"] = profiles_if_missed(block, args)
    block.pop("fleet")
    block["load"] = sampler.summary()
    block["block_seconds"] = round(time.monotonic() - started)
    return block


def profiles_if_missed(block: dict, args) -> dict:
    """Timeline (and controller profile) of the kinds whose target at this N looks missed."""
    fleet, n = block["fleet"], block["n"]
    wanted = report.kinds_to_profile(n, block["medians"], args.reference)
    out = {}
    for kind in wanted:
        if kind == "first":
            fleet.fresh_boxes()
            fleet.lab.standin.clear()
        timeline = operation_timeline(fleet, kind)
        path = BENCH_DIR / "profiles" / f"{kind}-{n}.txt"
        path.parent.mkdir(exist_ok=True)
        profile = controller_profile(fleet, "noop" if kind == "first" else kind, path) \
            if kind != "first" else None
        out[kind] = {"timeline": timeline, "controller_profile": profile}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", default="1,10,50", help="comma-separated N (default 1,10,50)")
    parser.add_argument("--repeat", type=int, default=5, help="re-run rounds (3 at N=50)")
    parser.add_argument("--firsts", type=int, default=2, help="first-converge rounds (1 at N=50)")
    parser.add_argument("--suite", default="bookworm", choices=("bookworm", "trixie"))
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md")
    parser.add_argument("--simulated", action="store_true", help="the controller alone against "
                        "simulated hosts (bench/simfleet.py) instead of lab boxes")
    parser.add_argument("--sizes", default="100,500,1000", help="--simulated: comma-separated N")
    parser.add_argument("--capture", action="store_true", help="--simulated: first capture the "
                        "hosts' answers from a real lab box (bench/simhosts/)")
    args = parser.parse_args()
    if args.simulated:
        from bench import simfleet

        simfleet.main(args)
        return
    sizes = [int(n) for n in args.boxes.split(",")]
    args.reference = {}

    os.environ.update({"LOCKDOWN_LAB_DIR": LAB_DIR, "LOCKDOWN_LAB_NETNS": LAB_NETNS})
    from bench.ansible_run import ensure_ansible, lockdown_vars

    playbook_bin = ensure_ansible()
    vars_text = json.dumps({**lockdown_vars(1), "ufw_guarded": True}, indent=2)
    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
           "command": "python -m bench " + " ".join(sys.argv[1:]), "suite": args.suite, "blocks": []}
    run["failed"] = {}
    for n in sizes:
        print(f"bench: N={n} ...", flush=True)
        try:
            block = bench_n(n, args, playbook_bin, vars_text)
        except (Exception, SystemExit) as error:  # the other sizes' figures still count
            run["failed"][n] = f"{type(error).__name__}: {error}"[:2000]
            print(f"bench: N={n} FAILED: {run['failed'][n]}", flush=True)
            continue
        run["blocks"].append(block)
        if not args.reference:
            args.reference = block["medians"]
        print(report.block_lines(block), flush=True)
    if not run["blocks"]:
        raise SystemExit("bench: no size could be measured")
    run["versions"] = run["blocks"][0]["versions"]
    run["targets"] = report.targets(run["blocks"])
    print(report.targets_table(run["targets"]))
    if not args.no_write:
        (BENCH_DIR / "results.json").write_text(json.dumps(run, indent=1) + "\n")
        with open(BENCH_DIR / "RESULTS.md", "a") as results:
            results.write("\n" + report.section(run))
        print("bench: wrote bench/results.json and a new section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
