"""Which libvirt driver can boot the box's kernel here: "kvm" (hardware) or "qemu" (TCG)?

Measured, not assumed: some /dev/kvm (e.g. PVM, a software KVM variant) accept KVM_CREATE_VM
but hang a stock Debian kernel. The probe boots the box's kernel under -enable-kvm with no
disk and no network; a kernel that works panics on the missing root file system within a few
seconds. No panic message in time -> TCG. The result is cached per kernel in the state dir;
LOCKDOWN_VAGRANT_DRIVER (kvm|qemu) in the environment overrides it.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from .. import processes
from ..progress import say
from .paths import VagrantPaths

PROBE_SECONDS = 25
WORKS = ("Kernel panic", "VFS: Unable to mount root")


def driver(paths: VagrantPaths, kernel: Path) -> str:
    forced = os.environ.get("LOCKDOWN_VAGRANT_DRIVER")
    if forced in ("kvm", "qemu"):
        return forced
    key = hashlib.sha256(kernel.read_bytes()).hexdigest()[:16]
    try:
        cached = json.loads(paths.accel_file.read_text())
        if cached.get("kernel") == key:
            return cached["driver"]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    chosen, why = _probe(kernel)
    say(f"libvirt driver: {chosen} ({why})")
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.accel_file.write_text(json.dumps({"kernel": key, "driver": chosen, "why": why}) + "\n")
    return chosen


def _probe(kernel: Path) -> tuple[str, str]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "qemu", "no usable /dev/kvm"
    argv = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-m", "256", "-nodefaults",
            "-display", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1"]
    started = time.monotonic()
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    record = processes.record(child.pid) if child.poll() is None else None
    output, exited = b"", None
    try:
        os.set_blocking(child.stdout.fileno(), False)
        while time.monotonic() - started < PROBE_SECONDS:
            chunk = child.stdout.read() or b""
            output += chunk
            text = output.decode(errors="replace")
            if any(mark in text for mark in WORKS):
                return "kvm", f"kernel ran under KVM ({time.monotonic() - started:.1f}s to panic as expected)"
            if child.poll() is not None and not chunk:
                exited = child.returncode
                break
            time.sleep(0.2)
    finally:
        processes.stop(record, timeout=3)
        child.wait()
    lines = output.decode(errors="replace").strip().splitlines()
    last = lines[-1][:100] if lines else "no output"
    if exited is not None:
        return "qemu", f"qemu -enable-kvm exited ({exited}) before the kernel ran: {last}"
    return "qemu", f"kernel under KVM showed no sign of life in {PROBE_SECONDS}s: {last}"
