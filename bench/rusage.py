"""Run a command and write its wall time, CPU seconds and peak RSS (JSON) to a file.

    python -m bench.rusage OUT.json -- ARGV...

The child is the only process this wrapper waits for, so RUSAGE_CHILDREN is the child's own
(with every descendant it waited for): CPU = user + system seconds, peak = the largest RSS of
one process (pyinfra is one process: SSH is paramiko, in-process). Exits with the child's status.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    out, separator, command = argv[0], argv[1], argv[2:]
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    started = time.monotonic()
    status = subprocess.call(command)
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as handle:
        json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                   "maxrss_mib": usage.ru_maxrss / 1024, "status": status}, handle)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
