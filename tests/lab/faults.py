"""Helper of the lab tests (no tests here).

What the fault tests share: a pyinfra run stopped at a breakpoint, and the box judged from
outside after a fault (SSH, SMTP, secrets), then re-run, no-op run and a relayed mail."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab import network, waiting
from lab.config import REPO_ROOT
from tests.lab.deploy_helpers import send_mail, wait_for, wait_for_mail

# `make test` runs a fault test on the lab's default image (Debian 12); `make test-faults`
# also on Debian 13 (the `faults` marker is deselected by default, see pyproject.toml).
DEFAULT_RELEASE_IN_MAKE_TEST = pytest.mark.parametrize("box", [
    pytest.param("bookworm"), pytest.param("trixie", marks=pytest.mark.faults)], indirect=True)

SMTP_PORTS = (25, 465, 587)
# Where the relay password may live: root-only, nowhere else (README, "Secrets").
SECRET_HOMES = ("/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db",
                "/etc/postfix/sasl_passwd.lmdb")
# Box directories not in the overlay's upper dir (tmpfs inside the box).
VOLATILE_DIRS = ("/run", "/tmp", "/var/tmp", "/dev/shm")


class Controller:
    """A pyinfra run under tests/lab/breakpoints.py, in the lab namespace, in the background."""

    def __init__(self, lab, boxes, where: str, env: dict, data: dict | None = None,
                 deploy: str = "deploys/mail.py"):
        self.dir = Path(tempfile.mkdtemp(prefix="lockdown-break-"))
        argv = [sys.executable, "-m", "tests.lab.breakpoints", str(self.dir), where, "--",
                *lab.pyinfra_argv(hosts=list(boxes))[1:], "-y"]
        for key, value in (data or {}).items():
            argv += ["--data", f"{key}={value}"]
        argv.append(deploy)
        self._out = open(self.dir / "output", "w")
        self.process = subprocess.Popen(
            network.in_netns(lab.config.netns, argv), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **lab.config.env(), **env})
        self.leader = waiting.leader_of(self.process)

    def wait_paused(self, timeout: float = 240) -> dict | None:
        """The breakpoint's {pid, where} once reached; None when the run ended before it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.dir / "paused").exists():
                text = (self.dir / "paused").read_text()
                if text:
                    return json.loads(text)
            if self.process.poll() is not None:
                return None
            time.sleep(0.1)
        raise TimeoutError(f"breakpoint not reached in {timeout}s:\n{self.output()[-3000:]}")

    def kill(self, pid: int) -> None:
        """SIGKILL the paused controller (pid from its breakpoint: our own child)."""
        os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def resume(self) -> None:
        (self.dir / "resume").write_text("go\n")

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the run if it still goes; keep its output and trace, remove its files."""
        if self.process.poll() is None:
            waiting.stop(self.process, self.leader)
        if not self._out.closed:
            self._output, self._trace = self.output(), self.trace()
            self._out.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        if self._out.closed:
            return self._output
        return (self.dir / "output").read_text(errors="replace")

    def trace(self) -> list[dict]:
        if self._out.closed:
            return self._trace
        path = self.dir / "trace.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def traced_run(lab, boxes, env: dict, data: dict | None = None) -> list[dict]:
    """A whole run with the trace on: every operation, its names and commands, in order."""
    run = Controller(lab, boxes, "none", env, data)
    code = run.wait()
    assert code == 0, f"reference run failed:\n{run.output()[-4000:]}"
    return run.trace()


def break_points(trace: list[dict]) -> list[tuple[str, str]]:
    """(breakpoint, description) for every boundary after an operation and every point between
    two commands of an operation running several."""
    total = len(trace)
    points = []
    for op in trace:
        name = op["names"][0].split(" | ")[-1] if op["names"] else "?"
        for command in range(1, op["commands"]):
            points.append((f"op:{op['op']}.{command}",
                           f"op {op['op']}/{total} after command {command}/{op['commands']} "
                           f"({name})"))
        points.append((f"op:{op['op']}", f"after op {op['op']}/{total} ({name})"))
    return points


# --- the link drops -------------------------------------------------------------------

CUT_TAG = "lockdown-lab-link-cut"


def set_link(box, up: bool) -> None:
    """Drop every packet in and out of the box's eth0 (or stop dropping), inside its network
    namespace: raw-table rules, which the box's own ufw never touches."""
    for tool in ("iptables-nft", "ip6tables-nft"):
        for chain, match in (("PREROUTING", ["-i", "eth0"]), ("OUTPUT", ["-o", "eth0"])):
            rule = [chain, *match, "-j", "DROP", "-m", "comment", "--comment", CUT_TAG]
            action = "-D" if up else "-I"
            argv = network.in_netns(box.netns, [tool, "-w", "-t", "raw", action, *rule])
            result = waiting.run(argv, timeout=30)
            assert result.returncode == 0, result.stderr


def box_runs(box, marker: bytes) -> bool:
    """Whether a process of the box has ``marker`` in its command line (read from the host's
    /proc: the box's processes are visible there, in the box's PID namespace)."""
    from lab.boxes import container_leader

    leader = container_leader(box.record.process)
    if leader is None:
        return False
    box_pidns = os.readlink(f"/proc/{leader}/ns/pid")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if marker in cmdline.read() and os.readlink(f"/proc/{pid}/ns/pid") == box_pidns:
                    return True
        except OSError:
            continue
    return False


def cut_while(box, marker: bytes, seconds: float, timeout: float = 120) -> dict:
    """Wait until the box runs a command with ``marker``, then cut its link for ``seconds``.
    Returns {"caught": the command was still running when the cut began, "cut_at": ...}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not box_runs(box, marker):
        time.sleep(0.01)
    set_link(box, up=False)
    caught = box_runs(box, marker)
    cut_at = time.monotonic()
    time.sleep(seconds)
    set_link(box, up=True)
    return {"caught": caught, "cut_at": cut_at}


# --- the outside view after a fault -------------------------------------------------------

@dataclass
class Outside:
    ssh: bool = False
    restored_s: float | None = None  # SSH came back only after this long (dead-man timer)
    smtp_open: list = field(default_factory=list)  # (address, port) answering from the prober
    relayed: bool = False  # a stranger's RCPT was accepted
    listening: list = field(default_factory=list)  # SMTP listeners on non-loopback addresses
    exposed: list = field(default_factory=list)  # files with the secret others can read
    leftovers: list = field(default_factory=list)  # files with the secret that should not exist

    @property
    def ok(self) -> bool:
        return self.ssh and not (self.smtp_open or self.relayed or self.listening
                                 or self.exposed or self.leftovers)

    def problems(self) -> str:
        found = ", ".join(f"{k}={v}" for k, v in vars(self).items()
                          if k not in ("restored_s", "ssh") and v)
        return found + ("" if self.ssh else " NO SSH")


def look_from_outside(lab, box, secrets: list[str], since: float | None = None,
                      deadman_seconds: float = 120) -> Outside:
    """SSH, SMTP and secrets of ``box`` right after a fault struck at ``since`` (monotonic)."""
    seen = Outside()
    seen.ssh, seen.restored_s = ssh_gets_in(box, since, deadman_seconds)
    targets = [(address, port) for address in (box.ipv4, box.ipv6) for port in SMTP_PORTS]
    seen.smtp_open = lab.probe.open_ports(targets)
    seen.relayed = any(lab.probe.smtp_relay_attempt(a, p)["accepted"] for a, p in seen.smtp_open)
    seen.listening = smtp_listeners(box)
    seen.exposed, seen.leftovers = secret_files(box, secrets)
    return seen


def ssh_gets_in(box, since: float | None, deadman_seconds: float) -> tuple[bool, float | None]:
    """(SSH works, seconds until it did when only the dead-man timer brought it back)."""
    if box.ssh("true", timeout=15).returncode == 0:
        return True, None
    since = since or time.monotonic()
    back = wait_for(lambda: box.ssh("true", timeout=10).returncode == 0, deadman_seconds + 20)
    return back, round(time.monotonic() - since, 1) if back else None


def smtp_listeners(box) -> list[str]:
    """Sockets listening on an SMTP port anywhere but loopback (seen inside the box)."""
    lines = box.root(["ss", "-Htln"]).stdout.splitlines()
    found = []
    for line in lines:
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        if int(port) in SMTP_PORTS and address.strip("[]") not in ("127.0.0.1", "::1"):
            found.append(local)
    return found


def secret_files(box, secrets: list[str]) -> tuple[list[str], list[str]]:
    """(files holding one of ``secrets`` that others can read, other files holding one): the
    box's written files (the overlay's upper dir) and its tmpfs directories. The secrets
    travel on stdin only, never on a command line."""
    patterns = "".join(secret + "\n" for secret in secrets)
    upper = Path(box.record.upper)
    found = waiting.run(["grep", "-rlsZF", "-f", "-", str(upper)], input=patterns,
                        timeout=120).stdout
    hits = {"/" + str(Path(p).relative_to(upper)): os.lstat(p) for p in found.split("\0") if p}
    volatile = box.root(["sh", "-c", 'grep -rlsZF -f - "$@" | xargs -0r stat -c "%a %u %n"',
                         "sh", *VOLATILE_DIRS], input=patterns).stdout
    exposed, leftovers = [], []
    for path, st in hits.items():
        if st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o077:
            exposed.append(f"{path} {stat.S_IMODE(st.st_mode):o} uid {st.st_uid}")
        elif path not in SECRET_HOMES:
            leftovers.append(path)
    for line in volatile.splitlines():
        mode, uid, path = line.split(" ", 2)
        (exposed if uid != "0" or int(mode, 8) & 0o077 else leftovers).append(f"{path} {mode}")
    return exposed, leftovers


# --- after the fault: one re-run converges, the next changes nothing, mail relays ---------

@dataclass
class Recovery:
    converged: bool
    noop: bool
    mail: dict  # box name -> copies arrived of its message
    detail: str = ""


def recover(lab, standin, boxes, env: dict, data: dict | None = None,
            subject: str = "after the fault") -> Recovery:
    """Re-run the deploy on all ``boxes`` at once, run it again (must change nothing), then
    send one mail from each and count its copies at the stand-in."""
    first = Controller(lab, boxes, "none", env, data)
    if first.wait() != 0:
        return Recovery(False, False, {}, first.output()[-4000:])
    second = Controller(lab, boxes, "none", env, data)
    code, changed = second.wait(), [op for op in second.trace() if op["commands"]]
    if code != 0 or changed:
        return Recovery(True, False, {}, f"no-op run: exit {code}, changed {changed}\n"
                        + second.output()[-3000:])
    standin.clear()
    subjects = {box.name: f"{subject} on {box.name}" for box in boxes}
    with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
        list(pool.map(lambda box: send_mail(box, subject=subjects[box.name]), boxes))
    messages = wait_for_mail(standin, len(boxes), timeout=60)
    copies = {name: sum(f"Subject: {s}" in m["data"].splitlines() for m in messages)
              for name, s in subjects.items()}
    return Recovery(True, True, copies)

