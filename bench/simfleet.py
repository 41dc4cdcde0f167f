"""The controller measured alone at 100, 500 and 1,000 hosts (issue 28 item 2).

    python -m bench --simulated [--sizes 100,500,1000] [--repeat 2] [--capture] [--no-write]

The hosts are simulated (bench/simhosts.py): one local SSH server process on 127.0.0.1 that
answers every command exactly as a real lab box answered it. Its answers are captured from
real boxes with `--capture` (a lab of its own: one fresh Debian 12 box converged through a
recording proxy, then the floor, the no-op run and the facts-only audit on the converged box),
into bench/simhosts/{fresh,converged}.jsonl. Then, per size N, rounds of the four runs in a
rotated order, each a whole CLI run (`pyinfra -y --parallel N bench/sim_inventory.py ...`,
`bench.rusage`: wall, CPU seconds, peak RSS of the pyinfra process alone) against a fresh
server (so each host's command counts start at zero): floor (`exec -- true`), no-op
(`deploys/mail.py` on converged hosts), facts-only audit, first converge (`deploys/mail.py`
on fresh hosts). A run counts only if it exited 0, every host ran commands and the server
missed none. At the largest N a CPU profile (bench/profile_run.py) of each of the four runs.
Appends a section to bench/RESULTS.md and writes bench/results-simulated.json.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.noop_run import CREDENTIALS
from lab.config import REPO_ROOT

BENCH_DIR = REPO_ROOT / "bench"
CAPTURES = BENCH_DIR / "simhosts"
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
KINDS = ("floor", "noop", "audit-facts", "first")
TAILS = {
    "floor": ["exec", "--", "true"],
    "noop": ["deploys/mail.py"],
    "audit-facts": ["--data", "audit_probe=off", "deploys/audit.py"],
    # The dead-man check's new connection waits up to half the delay (bench/sim_config.py)
    "first": ["--data", "firewall_deadman_seconds=600", "deploys/mail.py"],
}
CAPTURE_OF = {"floor": "converged", "noop": "converged", "audit-facts": "converged", "first": "fresh"}
TARGETS = {  # issue 28 item 3, at the largest size
    "noop / floor": 1.3, "audit-facts / floor": 1.3,
    "noop CPU s per host": 0.03, "first CPU s per host": 0.15, "peak RSS MiB": 1024,
}


def raise_open_files() -> None:
    """pyinfra needs ~3 descriptors per host at --parallel N; the server one per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """A replay server for one run, stopped by its PID (SIGTERM) when the run is done."""

    def __init__(self, capture: str, workdir: Path):
        self.ready = workdir / f"server-{time.monotonic_ns()}.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.simhosts", "replay", str(CAPTURES / f"{capture}.jsonl"),
             "--ready", str(self.ready)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.ready.exists() or not self.ready.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                raise SystemExit("bench: the simulated-host server did not start")
            time.sleep(0.05)
        self.port = json.loads(self.ready.read_text())["port"]

    def cpu(self) -> float:
        """CPU seconds the server has used (its threads: handshakes, answers)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict:
        cpu = self.cpu()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return {**json.loads(self.ready.read_text()), "cpu": cpu}


def ssh_key(workdir: Path) -> Path:
    key = workdir / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "simhosts", "-f", str(key)],
                       check=True)
    return key


def env_for(n: int, port: int, key: Path) -> dict:
    return {**os.environ, **CREDENTIALS, "SIMHOSTS_N": str(n), "SIMHOSTS_PORT": str(port),
            "SIMHOSTS_KEY": str(key), "PYTHONPATH": str(REPO_ROOT)}


def base_argv(n: int) -> list[str]:
    return [PYINFRA, "-y", "--parallel", str(n), "--config", "bench/sim_config.py",
            "bench/sim_inventory.py"]


def measured_run(kind: str, n: int, workdir: Path, key: Path) -> dict:
    server = Server(CAPTURE_OF[kind], workdir)
    out = workdir / "run.json"
    try:
        result = subprocess.run([sys.executable, "-m", "bench.rusage", str(out), "--",
                                 *base_argv(n), *TAILS[kind]], cwd=REPO_ROOT,
                                env=env_for(n, server.port, key), capture_output=True, text=True,
                                timeout=1800)
    finally:
        served = server.stop()
    if result.returncode != 0 or served["missed"] or served["hosts"] != n:
        errors = [line.strip() for line in result.stderr.splitlines()
                  if "FAILED" in line or "rror" in line and "executed 0 commands" not in line]
        raise SystemExit(f"bench: simulated {kind} at N={n}: exit {result.returncode}, "
                         f"{served['hosts']} hosts answered, {served['missed']} commands missed "
                         f"{served['misses'][:3]}; {len(errors)} error lines, e.g. "
                         f"{' | '.join(errors[:2])[:800]}\n{result.stderr[-3000:]}")
    usage = json.loads(out.read_text())
    usage["commands_per_host"] = served["commands"] / n
    usage["server_cpu"] = served["cpu"]
    return usage


def profile(kind: str, n: int, workdir: Path, key: Path) -> str:
    server = Server(CAPTURE_OF[kind], workdir)
    path = BENCH_DIR / "profiles" / f"simulated-{kind}-{n}.txt"
    try:
        subprocess.run([sys.executable, "-m", "bench.profile_run", str(path), *base_argv(n)[1:],
                        *TAILS[kind]], cwd=REPO_ROOT, env=env_for(n, server.port, key),
                       capture_output=True, text=True, timeout=1800)
    finally:
        server.stop()
    return str(path.relative_to(REPO_ROOT))


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of (n, value)."""
    mean_n = statistics.mean(n for n, _ in points)
    mean_v = statistics.mean(v for _, v in points)
    num = sum((n - mean_n) * (v - mean_v) for n, v in points)
    den = sum((n - mean_n) ** 2 for n, _ in points)
    return num / den if den else 0.0


def measure(sizes: list[int], repeat: int) -> dict:
    from bench.fleet import LoadSampler, machine

    raise_open_files()
    workdir = Path(tempfile.mkdtemp(prefix="lockdown-simfleet-"))
    key = ssh_key(workdir)
    run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
           "command": "python -m bench " + " ".join(sys.argv[1:]), "blocks": [], "failures": []}
    failures = run["failures"]
    for n in sizes:
        sampler = LoadSampler()
        sampler.start()
        samples = {kind: [] for kind in KINDS}
        for round_ in range(repeat):
            shift = round_ % len(KINDS)
            for kind in KINDS[shift:] + KINDS[:shift]:
                try:
                    samples[kind].append(measured_run(kind, n, workdir, key))
                except SystemExit as failure:  # counted, said in the section; the rest goes on
                    failures.append({"n": n, "kind": kind, "error": str(failure)[:1500]})
                    print(f"bench: simulated {kind} at N={n} FAILED", flush=True)
            print(f"bench: simulated N={n} round {round_ + 1}/{repeat}: " + ", ".join(
                f"{k} {samples[k][-1]['wall']:.2f}s cpu {samples[k][-1]['cpu']:.2f}s" for k in KINDS
                if samples[k]), flush=True)
        block = {"n": n, "samples": samples, "load": sampler.summary(), "medians": {
            kind: {"wall": round(statistics.median(s["wall"] for s in runs), 3),
                   "cpu": round(statistics.median(s["cpu"] for s in runs), 3),
                   "cpu_per_host": round(statistics.median(s["cpu"] for s in runs) / n, 4),
                   "peak_rss_mib": round(max(s["maxrss_mib"] for s in runs), 1),
                   "server_cpu": round(statistics.median(s["server_cpu"] for s in runs), 3),
                   "commands_per_host": runs[0]["commands_per_host"]}
            for kind, runs in samples.items() if runs}}
        run["blocks"].append(block)
        (BENCH_DIR / "results-simulated.json").write_text(json.dumps(run, indent=1) + "\n")
    run["slopes"] = {kind: {
        "wall_s_per_host": round(slope([(b["n"], b["medians"][kind]["wall"]) for b in run["blocks"]
                                        if kind in b["medians"]]), 5),
        "cpu_s_per_host": round(slope([(b["n"], b["medians"][kind]["cpu"]) for b in run["blocks"]
                                       if kind in b["medians"]]), 5)}
        for kind in KINDS if sum(kind in b["medians"] for b in run["blocks"]) > 1}
    largest = max(sizes)
    run["profiles"] = {kind: profile(kind, largest, workdir, key) for kind in KINDS}
    run["targets"] = targets(run["blocks"][-1])
    return run


def targets(block: dict) -> list[dict]:
    m = block["medians"]
    found = {}
    if {"noop", "floor"} <= m.keys():
        found["noop / floor"] = m["noop"]["wall"] / m["floor"]["wall"]
        found["noop CPU s per host"] = m["noop"]["cpu_per_host"]
    if {"audit-facts", "floor"} <= m.keys():
        found["audit-facts / floor"] = m["audit-facts"]["wall"] / m["floor"]["wall"]
    if "first" in m:
        found["first CPU s per host"] = m["first"]["cpu_per_host"]
    found["peak RSS MiB"] = max(k["peak_rss_mib"] for k in m.values())
    return [{"target": f"{name} <= {limit:g} at N={block['n']}", "measured": round(found[name], 3),
             "met": found[name] <= limit} for name, limit in TARGETS.items() if name in found]


def section(run: dict) -> str:
    lines = [f"## {run['date']}: the controller alone, simulated hosts (issue 28)", ""]
    mach = run["machine"]
    lines += [f"Machine: {mach['cpus']} cores, {mach['mem_gib']} GiB, {mach['os']}, kernel "
              f"{mach['kernel']}, Python {mach['python']}. Command: `{run['command']}`.", "",
              "Method: " + " ".join(__doc__.split("\n\n")[2].split()), ""]
    lines += ["| N | run | wall (median) | x floor (wall) | controller CPU | x floor (CPU) | "
              "CPU per host | peak RSS | server CPU | commands per host | load avg (mean/max) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for block in run["blocks"]:
        m = block["medians"]
        for kind in [k for k in KINDS if k in m]:
            lines.append(f"| {block['n']} | {kind} | {m[kind]['wall']:.2f} s | "
                         f"{m[kind]['wall'] / m['floor']['wall']:.2f}x | {m[kind]['cpu']:.2f} s | "
                         f"{m[kind]['cpu'] / m['floor']['cpu']:.2f}x | {m[kind]['cpu_per_host']:.4f} s | "
                         f"{m[kind]['peak_rss_mib']:.0f} MiB | {m[kind].get('server_cpu', 0):.2f} s | "
                         f"{m[kind]['commands_per_host']:g} | "
                         f"{block['load']['load_mean']} / {block['load']['load_max']} |")
    if run["slopes"]:
        lines += ["", "Per-host slope (least squares over the sizes):", "",
                  "| run | wall s per extra host | controller CPU s per extra host |", "|---|---|---|"]
        lines += [f"| {kind} | {s['wall_s_per_host']:.4f} s | {s['cpu_s_per_host']:.4f} s |"
                  for kind, s in run["slopes"].items()]
    for failure in run.get("failures", []):
        lines += ["", f"FAILED run: {failure['kind']} at N={failure['n']}: " +
                  " ".join(failure["error"].split())[:600]]
    lines += ["", "Targets (issue 28 item 3):", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']}{'' if 'MiB' in t['target'] else ('x' if '/' in t['target'] else ' s')} | "
              f"{'**met**' if t['met'] else 'missed'} |" for t in run["targets"]]
    lines += ["", "CPU profiles (bench/profile_run.py, one run each): " + ", ".join(
        f"`{path}`" for path in run["profiles"].values()), ""]
    return "\n".join(lines) + "\n"


def capture() -> None:
    """Record a fresh box's first converge and a converged box's runs through bench.simhosts."""
    from bench.noop_run import bench_lab
    from lab.network import in_netns

    lab_dir = os.environ.get("LOCKDOWN_LAB_DIR", "/tmp/lockdown-bench")
    netns = os.environ.get("LOCKDOWN_LAB_NETNS", "ldbench")
    CAPTURES.mkdir(exist_ok=True)
    with bench_lab(lab_dir, netns) as lab:
        box = lab.up(1)[0]
        subprocess.run(in_netns(netns, ["ip", "link", "set", "lo", "up"]), check=True)
        workdir = Path(tempfile.mkdtemp(prefix="lockdown-simcapture-"))
        key = ssh_key(workdir)
        for name, kinds in (("fresh", ["first"]), ("converged", ["floor", "noop", "audit-facts"] * 2)):
            out = CAPTURES / f"{name}.jsonl"
            out.unlink(missing_ok=True)
            ready = workdir / f"{name}.ready"
            proxy = subprocess.Popen(in_netns(netns, [
                sys.executable, "-m", "bench.simhosts", "record", str(out), "--forward", box.ipv4,
                "--key", str(lab.config.ssh_key), "--ready", str(ready)]), cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 30
                while not ready.exists() or not ready.read_text():
                    if time.monotonic() > deadline:
                        raise SystemExit("bench: the recording proxy did not start")
                    time.sleep(0.05)
                port = json.loads(ready.read_text())["port"]
                for kind in kinds:
                    result = lab.run(base_argv(1) + TAILS[kind], env=env_for(1, port, key), timeout=600)
                    if result.returncode != 0:
                        raise SystemExit(f"bench: capture of {kind} failed:\n{result.stderr[-3000:]}")
                    print(f"bench: captured {kind} ({name})", flush=True)
            finally:
                proxy.send_signal(signal.SIGTERM)
                proxy.wait(timeout=30)


def rewrite_section(path: Path = BENCH_DIR / "results-simulated.json") -> str:
    """The section of a finished run, from its JSON (after a change of the layout)."""
    return section(json.loads(path.read_text()))


def main(args) -> None:
    if args.capture:
        capture()
    sizes = [int(n) for n in args.sizes.split(",")]
    run = measure(sizes, args.repeat)
    print(section(run))
    if not args.no_write:
        (BENCH_DIR / "results-simulated.json").write_text(json.dumps(run, indent=1) + "\n")
        with open(BENCH_DIR / "RESULTS.md", "a") as results:
            results.write("\n" + section(run))
        print("bench: wrote bench/results-simulated.json and a new section of bench/RESULTS.md")
