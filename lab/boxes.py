"""Booting and stopping boxes: systemd-nspawn on an overlay over the image, in its own
network namespace and cgroup.

A box's life: overlay mounted + per-box files written -> netns created -> nspawn launched
(PID recorded) -> wait for `systemctl is-system-running --wait` and an SSH login.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import addresses as A
from . import cgroups, network, processes, waiting
from .config import LabConfig
from .errors import LabError
from .state import BoxRecord, ProcessRecord

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    # Throwaway boxes that share one image's host keys: never record or check them.
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
]
READY_STATES = ("running", "degraded")


@dataclass
class Box:
    """Handle for one booted box, used by tests and the CLI."""

    record: BoxRecord
    config: LabConfig

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def ipv4(self) -> str:
        return self.record.ipv4

    @property
    def ipv6(self) -> str:
        return self.record.ipv6

    @property
    def suite(self) -> str:
        return self.record.suite

    @property
    def flavor(self) -> str:
        return self.record.flavor

    @property
    def netns(self) -> str:
        return self.record.netns

    def __repr__(self) -> str:
        return f"Box({self.name}, {self.ipv4}, {self.ipv6})"

    def root(self, command: str | list[str], *, timeout: float = 120,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run as root inside the box (nsenter into its init; needs neither SSH nor network)."""
        leader = container_leader(self.record.process)
        if leader is None:
            raise LabError(f"{self.name} is not running", "see `python -m lab status`; boot a new box")
        argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
        return waiting.run(
            ["nsenter", "-t", str(leader), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--",
             "/usr/bin/env", "-i", f"PATH={SAFE_PATH}", "HOME=/root", "LANG=C.UTF-8", *argv],
            timeout=timeout, input=input,
        )

    def ssh(self, command: str = "true", *, user: str = "deploy", timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run `command` through a real SSH login from the lab namespace."""
        return waiting.run(
            network.in_netns(self.config.netns, self.ssh_argv(user) + [command]),
            timeout=timeout, input=input,
        )

    def ssh_argv(self, user: str = "deploy") -> list[str]:
        return ["ssh", "-i", str(self.config.ssh_key), *SSH_OPTIONS, f"{user}@{self.ipv4}"]

    def listen(self, port: int) -> None:
        """Start a TCP listener on `port` (IPv4 and IPv6) inside the box, for "port open" tests.

        It runs as a transient systemd unit, so it lives and dies with the box.
        """
        unit = f"lab-listen-{port}"
        result = self.root(["systemd-run", f"--unit={unit}", "--quiet", "--",
                            "systemd-socket-activate", "--listen", str(port), "--accept", "--inetd", "/bin/cat"])
        if result.returncode != 0:
            raise LabError(f"could not start a listener on {self.name}:{port}", detail=result.stderr)
        for _ in range(50):
            if str(port) in self.root(["ss", "-Htln", f"sport = :{port}"]).stdout:
                return
            time.sleep(0.1)
        raise LabError(f"listener on {self.name}:{port} did not come up",
                       detail=self.root(["systemctl", "status", unit]).stdout)


def container_leader(process: ProcessRecord | None) -> int | None:
    """Host PID of the box's init: the child of nspawn living in another PID namespace."""
    if not processes.is_alive(process):
        return None
    assert process is not None
    own_pidns = os.readlink("/proc/self/ns/pid")
    for child in processes.children(process.pid):
        try:
            if os.readlink(f"/proc/{child}/ns/pid") != own_pidns:
                return child
        except OSError:
            continue
    return None


# --- building and booting ------------------------------------------------------------------

def prepare_overlay(record: BoxRecord, image: Path) -> None:
    for path in (record.upper, record.work, record.merged):
        path.mkdir(parents=True, exist_ok=True)
    if not is_mounted(record.merged):
        options = f"lowerdir={image},upperdir={record.upper},workdir={record.work}"
        _check(["mount", "-t", "overlay", "overlay", "-o", options, str(record.merged)],
               "could not mount the box overlay", "is overlayfs available? is the cache on a non-overlay filesystem?")


def write_box_files(record: BoxRecord, public_key: str, mirror_keyring: bytes | None = None) -> None:
    """Identity and access of this box; written through the overlay, so they land in its upper dir.
    With ``mirror_keyring``, the lab's package mirror becomes the box's only package source."""
    root = record.merged
    if mirror_keyring is not None:
        write_mirror_sources(root, record.suite, mirror_keyring)
    (root / "etc/hostname").write_text(record.name + "\n")
    (root / "etc/hosts").write_text(A.hosts_file(record.name))
    uid, gid = _passwd_ids(root, "deploy")
    keys = root / "home/deploy/.ssh/authorized_keys"
    keys.write_text(public_key.strip() + "\n")
    os.chown(keys, uid, gid)
    keys.chmod(0o600)


def write_lab_ca(record: BoxRecord, ca_pem: bytes) -> None:
    """The lab CA where an administrator puts a local CA (update-ca-certificates reads it)."""
    from .tls import CA_IN_BOX

    path = record.merged / CA_IN_BOX.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ca_pem)
    path.chmod(0o644)


def trust_lab_ca(box: Box) -> None:
    """``update-ca-certificates`` in the booted box: the lab CA joins the system bundle
    (/etc/ssl/certs/ca-certificates.crt), as it would on a server an administrator set up."""
    result = box.root(["update-ca-certificates"], timeout=120)
    if result.returncode != 0:
        raise LabError(f"{box.name}: update-ca-certificates failed", "is ca-certificates in the image?",
                       detail=result.stdout + result.stderr)


def write_mirror_sources(root: Path, suite: str, keyring: bytes) -> None:
    from . import mirror

    (root / "etc/apt/sources.list").unlink(missing_ok=True)  # the archive: unreachable from a box
    keyring_path = root / mirror.KEYRING_IN_BOX.lstrip("/")
    keyring_path.parent.mkdir(parents=True, exist_ok=True)
    keyring_path.write_bytes(keyring)
    keyring_path.chmod(0o644)
    (root / mirror.SOURCES_IN_BOX.lstrip("/")).write_text(mirror.sources_file(suite))


def nspawn_argv(record: BoxRecord) -> list[str]:
    return [
        "systemd-nspawn", "-D", str(record.merged), "--boot",
        # --register/--keep-unit: there is no systemd on the host to register with.
        "--register=no", "--keep-unit",
        "--capability=CAP_NET_ADMIN",  # ufw / iptables inside the box
        "--resolv-conf=off",
        f"--network-namespace-path={network.netns_path(record.netns)}",
        f"--machine={record.name}",
        "--console=read-only",
    ]


def launch(record: BoxRecord, config: LabConfig) -> ProcessRecord:
    """Start nspawn detached, from the box's own cgroup; returns the recorded process."""
    paths = cgroups.create(config.cgroup_name(record.name))
    script = cgroups.enter_command(paths) + 'exec "$@"'
    with open(record.console_log, "ab") as console:
        child = subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", *nspawn_argv(record)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    try:
        return processes.record(child.pid)
    except ProcessLookupError:
        raise LabError(f"{record.name}: systemd-nspawn exited at once",
                       "see the console log", detail=tail(record.console_log)) from None


def wait_ready(box: Box, timeout: float = 90, ssh: bool = True) -> str:
    """Wait until systemd finished booting (running/degraded) and (``ssh``) SSH accepts a login."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        if not processes.is_alive(box.record.process):
            raise LabError(f"{box.name} stopped while booting", "see its console log", detail=tail(box.record.console_log))
        if container_leader(box.record.process) is not None:
            result = box.root(["systemctl", "is-system-running", "--wait"], timeout=max(1, deadline - time.monotonic()))
            state = result.stdout.strip()
            if state in READY_STATES:
                break
        time.sleep(0.2)
    else:
        raise LabError(f"{box.name} did not finish booting within {timeout}s (state: {state or 'unknown'})",
                       f"look at {box.record.console_log}; `python -m lab ssh {box.name} systemctl --failed`",
                       detail=tail(box.record.console_log))
    if not ssh:
        return state
    last_error = ""
    while time.monotonic() < deadline:
        result = box.ssh("true", timeout=10)
        if result.returncode == 0:
            return state
        last_error = result.stderr
        time.sleep(0.2)
    raise LabError(f"{box.name} booted but SSH login as deploy failed", "check sshd in the box: "
                   f"`python -m lab exec -- true` works? console log: {box.record.console_log}", detail=last_error)


def stop(record: BoxRecord, config: LabConfig, timeout: float = 10) -> None:
    """Stop the box's nspawn (SIGTERM = clean halt), then free its mount, cgroups and netns."""
    processes.stop(record.process, timeout=timeout)
    unmount(record.merged)
    for path in cgroups.discover(config.netns):
        if path.name == config.cgroup_name(record.name):
            cgroups.remove(path)
    network.delete_veth(config.netns, record.name)
    network.delete(record.netns)


def is_mounted(path: Path) -> bool:
    return str(Path(path)) in mount_points()


def mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            points.append(line.split()[4].replace("\\040", " "))
    return points


def unmount(path: Path) -> None:
    path = Path(path)
    for attempt in range(20):
        if not is_mounted(path):
            return
        if waiting.run(["umount", str(path)], timeout=30).returncode == 0:
            return
        time.sleep(0.1)
    waiting.run(["umount", "--lazy", str(path)], timeout=30)


def tail(path: Path, count: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-count:])
    except OSError:
        return ""


def _passwd_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LabError(f"user {user} missing from the image", "rebuild it: `python -m lab build --force`")


def _check(argv: list[str], what: str, todo: str) -> None:
    result = waiting.run(argv, timeout=120)
    if result.returncode != 0:
        raise LabError(what, todo, detail=f"{shlex.join(argv)}\n{result.stderr}")
