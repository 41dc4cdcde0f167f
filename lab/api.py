"""Python API of the lab, for tests and the CLI.

    lab = Lab()
    lab.ensure_network(); lab.ensure_image(); lab.standin_start()
    box1, box2 = lab.up(2)
    box1.root("postqueue -p"); box1.ssh("id")
    lab.run(lab.pyinfra_argv(hosts=[box1]) + ["exec", "--", "hostname"])
    lab.down()
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import addresses as A
from . import boxes as box_ops
from . import image, limits, mirror, network, processes, resolver, standin, teardown, tls, waiting
from .boxes import Box
from .config import REPO_ROOT, LabConfig
from .errors import LabError
from .probe import Probe
from .progress import step
from .shell import run as run_host
from .state import BoxRecord, StateStore

# Boxes booting at once: systemd's boot is CPU work, so on a small machine 50 at once take as
# long in all as 10 at a time, but each one's wait for readiness would stretch 5-fold.
BOOT_PARALLEL = 10

class Lab:
    def __init__(self, config: LabConfig | None = None):
        self.config = config or LabConfig.from_env()
        self.store = StateStore(self.config.state_file, self.config.lock_file)
        self.standin = standin.Standin(self.config.standin_dir)
        self.probe = Probe(self.config.netns)

    # --- preconditions -------------------------------------------------------------------
    @staticmethod
    def missing_requirements() -> list[str]:
        """Why the lab cannot run here (empty list: it can)."""
        problems = []
        if os.geteuid() != 0:
            problems.append("the lab needs root (network namespaces, mounts, cgroups)")
        for tool, package in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap"),
                              ("nsenter", "util-linux"), ("ip", "iproute2"), ("ssh", "openssh-client")):
            if not _which(tool):
                problems.append(f"{tool} missing: apt-get install -y {package}")
        return problems

    def _require(self) -> None:
        problems = self.missing_requirements()
        if problems:
            raise LabError("the lab cannot run here: " + "; ".join(problems), "fix the above, then retry")

    # --- building blocks -----------------------------------------------------------------
    def ensure_network(self) -> None:
        self._require()
        network.ensure_lab(self.config.netns)
        with self.store.update() as state:
            state.netns = self.config.netns
        resolver.start(self.config, self.store)

    def ensure_image(self, suite: str = image.DEFAULT_SUITE, flavor: str = image.DEFAULT_FLAVOR) -> Path:
        self._require()
        rootfs = image.ensure_image(self.config.cache_dir, suite, flavor)
        if suite == image.DEFAULT_SUITE and flavor == image.DEFAULT_FLAVOR:
            with self.store.update() as state:
                state.image = str(rootfs)
        return rootfs

    def ensure_ssh_key(self) -> Path:
        key = self.config.ssh_key
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            run_host(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lockdown-lab", "-f", str(key)])
        return key

    def standin_start(self) -> None:
        self.ensure_network()
        standin.start(self.config, self.store)

    def standin_stop(self) -> None:
        standin.stop(self.config, self.store)

    def standin_running(self) -> bool:
        return processes.is_alive(self.store.load().standin)

    # --- the package mirror (boxes of the minimal and standard images install from it) -------
    def mirror_start(self, suites: list[str] | tuple[str, ...] = image.SUITES) -> None:
        """Build (once, cached) and publish each suite's mirror, then serve it."""
        self.ensure_network()
        for suite in suites:
            if not (mirror.serve_dir(self.config) / suite / "dists").exists():
                mirror.publish(self.config, suite)
        mirror.start(self.config, self.store)

    def mirror_stop(self) -> None:
        mirror.stop(self.config, self.store)

    def mirror_running(self) -> bool:
        return processes.is_alive(self.store.load().mirror)

    def mirror_hide(self, suite: str, *packages: str) -> None:
        """Serve the suite's index without ``packages`` (as if the mirror lacked them)."""
        mirror.publish(self.config, suite, hidden=packages)

    def mirror_restore(self, suite: str) -> None:
        mirror.publish(self.config, suite)

    # --- boxes ---------------------------------------------------------------------------
    def up(self, count: int = 1, timeout: float = 120,
           suites: list[str] | None = None, flavor: str = image.DEFAULT_FLAVOR) -> list[Box]:
        """Boot `count` fresh boxes in parallel; returns them when all are ready.

        ``suites``: the Debian release of each box (default: all bookworm), e.g.
        ``["bookworm", "trixie"]`` for a mixed pair. ``flavor``: the image (lab/image.py
        FLAVORS); boxes of ``minimal`` and ``standard`` install from the lab's mirror.
        """
        suites = list(suites or [image.DEFAULT_SUITE] * count)
        if len(suites) != count:
            raise LabError(f"{count} boxes but {len(suites)} suites", "give one suite per box")
        self.ensure_network()
        images = {suite: self.ensure_image(suite, flavor) for suite in dict.fromkeys(suites)}
        if flavor in image.MIRRORED_FLAVORS:
            self.mirror_start(list(dict.fromkeys(suites)))
        self.ensure_ssh_key()
        limits.raise_for_many_boxes()
        records = [self._allocate(suite, flavor) for suite in suites]
        with step(f"booting {', '.join(r.name for r in records)}"):
            # at most BOOT_PARALLEL boot at once: each box's timeout starts with its own boot
            with ThreadPoolExecutor(max_workers=max(1, min(count, BOOT_PARALLEL))) as pool:
                futures = [pool.submit(self._boot, record, images[record.suite], timeout)
                           for record in records]
                errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0] if len(failed) == 1 else LabError(
                f"{len(failed)} of {count} boxes failed to boot", "`python -m lab status`, then `python -m lab down`",
                detail="\n".join(str(e) for e in failed))
        return [self.box(record.name) for record in records]

    def add_box(self, timeout: float = 120, suite: str = image.DEFAULT_SUITE,
                flavor: str = image.DEFAULT_FLAVOR) -> Box:
        return self.up(1, timeout=timeout, suites=[suite], flavor=flavor)[0]

    def boxes(self) -> list[Box]:
        state = self.store.load()
        return [Box(record, self.config) for record in sorted(state.boxes.values(), key=lambda r: r.index)]

    def box(self, name: str) -> Box:
        record = self.store.load().boxes.get(name)
        if record is None:
            raise LabError(f"no box named {name!r}", "`python -m lab status` lists the boxes")
        return Box(record, self.config)

    def restart_box(self, box: Box, timeout: float = 120, ssh: bool = True) -> Box:
        """Halt and boot again on the same upper dir (state survives), with a new netns: a
        reboot. ``ssh=False``: ready once systemd finished booting, SSH may not get in."""
        with step(f"restarting {box.name}"):
            record = self.store.load().boxes[box.name]
            rootfs = self.ensure_image(record.suite, record.flavor)
            box_ops.stop(record, self.config)
            with self.store.update() as state:
                state.netns_serial += 1
                record = state.boxes[box.name]
                record.netns = self.config.box_netns(record.name, state.netns_serial)
                record.process, record.status = None, "stopped"
            self._boot(record, rootfs, timeout, fresh=False, ssh=ssh)
        restarted = self.box(box.name)
        box.record = restarted.record
        return restarted

    def remove_box(self, box: Box) -> None:
        record = self.store.load().boxes.get(box.name)
        if record is None:
            return
        box_ops.stop(record, self.config)
        shutil.rmtree(record.dir, ignore_errors=True)
        with self.store.update() as state:
            state.boxes.pop(box.name, None)

    def _allocate(self, suite: str = image.DEFAULT_SUITE, flavor: str = image.DEFAULT_FLAVOR) -> BoxRecord:
        with self.store.update() as state:
            index = A.next_free_index(state.last_box_index)
            state.last_box_index = index
            state.netns_serial += 1
            name = A.box_name(index)
            record = BoxRecord(
                name=name, index=index, ipv4=A.box_ipv4(index), ipv6=A.box_ipv6(index),
                netns=self.config.box_netns(name, state.netns_serial),
                dir=str(self.config.boxes_dir / name), suite=image.check_suite(suite),
                flavor=image.check_flavor(flavor),
            )
            state.boxes[name] = record
        return record

    def _boot(self, record: BoxRecord, rootfs: Path, timeout: float, fresh: bool = True,
              ssh: bool = True) -> None:
        box_ops.prepare_overlay(record, rootfs)
        if fresh:
            keyring = (mirror.ensure_key(self.config.cache_dir).read_bytes()
                       if record.flavor in image.MIRRORED_FLAVORS else None)
            box_ops.write_box_files(record, self.config.ssh_key.with_suffix(".pub").read_text(), keyring)
            ca_cert, _ = tls.ensure_lab_ca(self.config.cache_dir)
            box_ops.write_lab_ca(record, ca_cert.read_bytes())
        network.create_box_netns(self.config.netns, record.netns, record.name, record.ipv4, record.ipv6)
        record.process = box_ops.launch(record, self.config)
        self._save_record(record, "booting")
        box_ops.wait_ready(Box(record, self.config), timeout=timeout, ssh=ssh)
        if fresh:
            box_ops.trust_lab_ca(Box(record, self.config))
        self._save_record(record, "running")

    def _save_record(self, record: BoxRecord, status: str) -> None:
        record.status = status
        with self.store.update() as state:
            state.boxes[record.name] = record

    # --- running things inside the lab namespace -------------------------------------------
    def run(self, argv: list[str], *, env: dict | None = None, timeout: float | None = 600,
            cwd: Path | str = REPO_ROOT, input: str | None = None) -> subprocess.CompletedProcess:
        """Run argv inside the lab namespace (where the boxes are reachable)."""
        network.require(self.config.netns)
        return waiting.run(network.in_netns(self.config.netns, list(argv)),
                           env={**os.environ, **self.config.env(), **(env or {})}, cwd=cwd,
                           timeout=timeout, input=input)

    def pyinfra_argv(self, hosts: list[Box] | None = None) -> list[str]:
        """Base argv for pyinfra against lab boxes (add the operation/deploy and options).

        `inventories/lab.py` lists every running box; `hosts` restricts the run with one
        `--limit NAME` per box. Run it through `lab.run(...)`, from the repo root.
        """
        argv = [str(Path(sys.executable).parent / "pyinfra"), "inventories/lab.py"]
        for box in hosts or []:
            argv += ["--limit", box.name]
        return argv

    # --- teardown ------------------------------------------------------------------------
    def down(self) -> None:
        with step("tearing the lab down"):
            problems = teardown.down(self.config, self.store)
        if problems:
            raise LabError("some lab resources could not be removed", "run `python -m lab down` again; "
                           "if it persists, reboot or remove them by hand", detail="\n".join(problems))

    def status(self) -> dict:
        state = self.store.load()
        return {
            "netns": self.config.netns,
            "netns_present": network.exists(self.config.netns),
            "image": state.image,
            "standin": {"pid": state.standin.pid if state.standin else None,
                        "alive": processes.is_alive(state.standin)},
            "mirror": {"pid": state.mirror.pid if state.mirror else None,
                       "alive": processes.is_alive(state.mirror)},
            "resolver": {"pid": state.resolver.pid if state.resolver else None,
                         "alive": processes.is_alive(state.resolver)},
            "boxes": [
                {"name": r.name, "ipv4": r.ipv4, "ipv6": r.ipv6, "netns": r.netns, "status": r.status,
                 "suite": r.suite, "flavor": r.flavor,
                 "pid": r.process.pid if r.process else None, "alive": processes.is_alive(r.process)}
                for r in sorted(state.boxes.values(), key=lambda r: r.index)
            ],
        }


def _which(tool: str) -> bool:
    return shutil.which(tool) is not None
