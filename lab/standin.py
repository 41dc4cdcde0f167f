"""Starting, stopping and steering the Mailgun stand-in from the lab side."""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from . import addresses as A
from . import cgroups, daemons, processes, tls
from .config import REPO_ROOT, LabConfig
from .errors import LabError
from .shell import run
from .standin_server import DEFAULT_CONTROL, MODES, PROFILES, certificate_files
from .state import StateStore

LOG_NAME = "standin.log"


class Standin:
    """Control files of the running stand-in (it re-reads control.json at each connection)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def set(self, login: str | None = None, password: str | None = None, mode: str = "normal",
            provider: str | None = None) -> None:
        """Credentials, mode and (when given) the provider the stand-in behaves like."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if provider is not None and provider not in PROFILES:
            raise ValueError(f"provider must be one of {sorted(PROFILES)}, not {provider!r}")
        control = self.control()
        control.update({k: v for k, v in (("login", login), ("password", password),
                                          ("provider", provider)) if v is not None})
        control["mode"] = mode
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / ".control.json.tmp"
        tmp.write_text(json.dumps(control, indent=2) + "\n")
        os.replace(tmp, self.directory / "control.json")

    def control(self) -> dict:
        try:
            return {**DEFAULT_CONTROL, **json.loads((self.directory / "control.json").read_text())}
        except (OSError, ValueError):
            return dict(DEFAULT_CONTROL)

    def messages(self) -> list[dict]:
        return _read_jsonl(self.directory / "messages.jsonl")

    def events(self) -> list[dict]:
        return _read_jsonl(self.directory / "events.jsonl")

    def clear(self) -> None:
        for name in ("messages.jsonl", "events.jsonl"):
            (self.directory / name).unlink(missing_ok=True)

    def wait_for_messages(self, count: int = 1, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages()
            if len(messages) >= count:
                return messages
            time.sleep(0.2)
        return self.messages()


def start(config: LabConfig, store: StateStore, timeout: float = 15) -> None:
    with store.update() as state:
        if processes.is_alive(state.standin):
            return
        directory = config.standin_dir
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ready").unlink(missing_ok=True)
        issue_certificates(config)
        state.standin = daemons.launch(
            config, "standin", [sys.executable, "-m", "lab.standin_server", str(directory)],
            directory / LOG_NAME, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (directory / "ready").exists():
            return
        if not processes.is_alive(state.standin):
            break
        time.sleep(0.05)
    log_tail = (directory / LOG_NAME).read_text(errors="replace")[-2000:]
    raise LabError("the Mailgun stand-in did not start", f"read {directory / LOG_NAME}", detail=log_tail)


@contextmanager
def second(config: LabConfig, address: str = A.SECOND_RELAY_V4, timeout: float = 15):
    """A second stand-in (another relay: its own credentials, messages and events) on
    ``address``, which is on the lab bridge only meanwhile. Stopped by its PID at the end."""
    directory = config.state_dir / "standin-second"
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ready", "messages.jsonl", "events.jsonl", "control.json"):
        (directory / name).unlink(missing_ok=True)
    issue_certificates(config, directory)
    ip = ["ip", "-n", config.netns]
    run(ip + ["addr", "del", f"{address}/24", "dev", A.BRIDGE], check=False)  # a crashed run's
    run(ip + ["addr", "add", f"{address}/24", "dev", A.BRIDGE])
    record = None
    try:
        record = daemons.launch(
            config, "standin-second",
            [sys.executable, "-m", "lab.standin_server", str(directory), address],
            directory / LOG_NAME, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        deadline = time.monotonic() + timeout
        while not (directory / "ready").exists():
            if time.monotonic() > deadline or not processes.is_alive(record):
                raise LabError("the second stand-in did not start", f"read {directory / LOG_NAME}",
                               detail=(directory / LOG_NAME).read_text(errors="replace")[-2000:])
            time.sleep(0.05)
        yield Standin(directory)
    finally:
        processes.stop(record, timeout=5)
        for path in cgroups.discover(config.netns):
            if path.name == config.cgroup_name("standin-second"):
                cgroups.remove(path)
        run(ip + ["addr", "del", f"{address}/24", "dev", A.BRIDGE])


def issue_certificates(config: LabConfig, directory: Path | None = None) -> None:
    """The genuine certificate (lab CA, trusted by every box) and the impostor's (same names,
    a CA no box trusts), issued afresh at every start, into a stand-in's directory."""
    directory = directory or config.standin_dir
    genuine = tls.ensure_lab_ca(config.cache_dir)
    impostor = tls.ensure_impostor_ca(config.state_dir)
    for profile, ca in (("genuine", genuine), ("impostor", impostor)):
        tls.issue_relay_certificate(ca, *certificate_files(directory, profile))


def stop(config: LabConfig, store: StateStore) -> None:
    daemons.stop(config, store, "standin")


def _read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
