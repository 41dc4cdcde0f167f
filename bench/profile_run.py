"""Run the pyinfra CLI under a sampling profiler and write where the controller's time goes.

    python -m bench.profile_run OUT.txt PYINFRA-ARGS...

pyinfra runs every host in gevent greenlets of ONE OS thread (paramiko's transport "threads"
too, once gevent has patched threading), which thread-based profilers (pyinstrument, cProfile)
cannot follow: pyinstrument saw 1.3 s of a 16 s run. A sampling thread cannot either: it gets
the GIL mostly while the main thread sits in a system call, so it over-counts send/recv. This
one samples CPU time: ITIMER_PROF sends SIGPROF every millisecond of the process's CPU, and the
handler (run by the main thread) records the frame it interrupted, whichever greenlet runs.
Written: own CPU time per package and per function, and the CPU time of lockdown's and
pyinfra's functions including what they call (the greenlet's stack only).
"""
from __future__ import annotations

import os
import signal
import sys
from collections import Counter

from gevent import monkey

monkey.patch_all()

INTERVAL = 0.001


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
    for ours in ("pyinfra_lockdown", "operations", "facts", "deploys", "bench", "lab", "inventories"):
        if f"/{ours}/" in filename:
            return "lockdown"
    return "python stdlib" if filename.startswith(("/usr", sys.base_prefix)) else filename


def _where(code) -> str:
    return f"{code.co_name}  {os.path.relpath(code.co_filename) if 'site-packages' not in code.co_filename else code.co_filename.split('site-packages/', 1)[1]}:{code.co_firstlineno}"


class Sampler:
    def __init__(self):
        self.own: Counter = Counter()  # innermost frame -> samples
        self.packages: Counter = Counter()
        self.inclusive: Counter = Counter()  # any frame on the stack -> samples
        self.samples = 0

    def start(self) -> None:
        monkey.get_original("signal", "signal")(signal.SIGPROF, self.on_signal)
        signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def on_signal(self, signum, frame) -> None:
        if frame is not None:
            self.record(frame)

    def record(self, frame) -> None:
        self.samples += 1
        code = frame.f_code
        self.own[_where(code)] += 1
        self.packages[_package(code.co_filename)] += 1
        seen = set()
        while frame is not None:
            where = _where(frame.f_code)
            if where not in seen:
                seen.add(where)
                self.inclusive[where] += 1
            frame = frame.f_back

    def report(self, wall: float, cpu: float) -> str:
        per = cpu / max(self.samples, 1)
        lines = [f"wall {wall:.3f} s, CPU {cpu:.3f} s (this process), {self.samples} samples, one "
                 f"per {per * 1000:.2f} ms of CPU", "", "Own CPU time per package:"]
        lines += [f"  {n * per:8.3f} s  {100 * n / self.samples:5.1f}%  {name}"
                  for name, n in self.packages.most_common()]
        lines += ["", "Own CPU time per function (top 40):"]
        lines += [f"  {n * per:8.3f} s  {100 * n / self.samples:5.1f}%  {name}"
                  for name, n in self.own.most_common(40)]
        lines += ["", "CPU time including callees, lockdown's and pyinfra's functions (top 60):"]
        ours = [(name, n) for name, n in self.inclusive.most_common()
                if "pyinfra" in name or "lockdown" in name or name.split("  ")[1].startswith(
                    ("operations/", "facts/", "deploys/", "bench/", "inventories/"))]
        lines += [f"  {n * per:8.3f} s  {100 * n / self.samples:5.1f}%  {name}" for name, n in ours[:60]]
        return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    import resource
    import time

    out, args = argv[0], argv[1:]
    sampler = Sampler()
    sys.argv = ["pyinfra", *args]
    status = 0
    started = time.monotonic()
    sampler.start()
    try:
        from pyinfra_cli.main import main as pyinfra_main

        pyinfra_main()
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else 0
    finally:
        sampler.stop()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(out, "w") as handle:
            handle.write(f"python -m bench.profile_run {' '.join(args)}\n")
            handle.write(sampler.report(time.monotonic() - started, usage.ru_utime + usage.ru_stime))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
