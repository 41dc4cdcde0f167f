"""The lab's JSON state file: what the lab created, so `down` can undo exactly that.

Read-modify-write goes through `StateStore.update()`, which holds an flock on a lock file
(several processes: pytest, the CLI) and a thread lock (boxes boot in parallel threads),
and replaces the file atomically.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

STATE_VERSION = 1


@dataclass
class ProcessRecord:
    """A process the lab started. `start_time` (from /proc/PID/stat) guards against PID reuse."""

    pid: int
    start_time: int


@dataclass
class BoxRecord:
    name: str
    index: int
    ipv4: str
    ipv6: str
    netns: str
    dir: str
    status: str = "creating"  # creating -> booting -> running -> stopped
    process: ProcessRecord | None = None
    suite: str = "bookworm"  # the Debian release of the box's image
    flavor: str = "preinstalled"  # the image flavor (lab/image.py FLAVORS)

    @property
    def upper(self) -> Path:
        return Path(self.dir) / "upper"

    @property
    def work(self) -> Path:
        return Path(self.dir) / "work"

    @property
    def merged(self) -> Path:
        return Path(self.dir) / "merged"

    @property
    def console_log(self) -> Path:
        return Path(self.dir) / "console.log"


@dataclass
class LabState:
    netns: str = ""
    image: str = ""  # path of the image rootfs the boxes run on
    last_box_index: int = 0
    netns_serial: int = 0
    boxes: dict[str, BoxRecord] = field(default_factory=dict)
    standin: ProcessRecord | None = None
    mirror: ProcessRecord | None = None  # the package mirror's HTTP server
    resolver: ProcessRecord | None = None  # the lab's DNS resolver (dnsmasq)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LabState":
        raw = json.loads(text)
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"unknown lab state version {raw.get('version')!r}")
        boxes = {}
        for name, box in raw.get("boxes", {}).items():
            process = box.pop("process", None)
            boxes[name] = BoxRecord(**box, process=ProcessRecord(**process) if process else None)
        standin = raw.get("standin")
        mirror = raw.get("mirror")
        resolver = raw.get("resolver")
        return cls(
            netns=raw.get("netns", ""),
            image=raw.get("image", ""),
            last_box_index=raw.get("last_box_index", 0),
            netns_serial=raw.get("netns_serial", 0),
            boxes=boxes,
            standin=ProcessRecord(**standin) if standin else None,
            mirror=ProcessRecord(**mirror) if mirror else None,
            resolver=ProcessRecord(**resolver) if resolver else None,
        )

    def running_boxes(self) -> list[BoxRecord]:
        return sorted(
            (b for b in self.boxes.values() if b.status == "running"), key=lambda b: b.index
        )


class StateStore:
    _thread_lock = threading.RLock()

    def __init__(self, path: Path, lock_path: Path):
        self.path = Path(path)
        self.lock_path = Path(lock_path)

    def load(self) -> LabState:
        try:
            return LabState.from_json(self.path.read_text())
        except FileNotFoundError:
            return LabState()

    def save(self, state: LabState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def update(self) -> Iterator[LabState]:
        """Load, let the caller change the state, save it (also if the caller raises)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.load()
            try:
                yield state
            finally:
                self.save(state)
