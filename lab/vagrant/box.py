"""The local Vagrant box: a Debian 13 (trixie) VM image built offline-capable by mmdebstrap.

Same package set as the lab's nspawn image plus a kernel, cached by a hash of its recipe in
`$LOCKDOWN_LAB_CACHE/vagrant-boxes/<hash>/` (default /var/cache/lockdown-lab):

    rootfs/  ->  root.raw (mkfs.ext4 -d, no loop mount)  ->  box.img (qcow2)
    vmlinuz, initrd.img        copied out of the rootfs for direct kernel boot
    lockdown.box               tar of metadata.json + Vagrantfile + box.img + vmlinuz + initrd.img

The box's own Vagrantfile points libvirt's kernel/initrd at the files inside the box, so the
project Vagrantfile needs no paths.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from .. import image as lab_image
from .. import cache_lock, waiting
from ..errors import LabError
from ..progress import say
from .system_deps import vagrant_public_key

SUITE = "trixie"  # what a new VPS or `vagrant up` with the project's Vagrantfile gets today
EXTRA_PACKAGES = ["linux-image-amd64", "initramfs-tools", "e2fsprogs", "udev"]
PACKAGES = sorted(set(lab_image.PACKAGES) | set(EXTRA_PACKAGES))
DISK_GB = 3
CMDLINE = "console=ttyS0 root=/dev/vda rw net.ifnames=0"
PREP_SCRIPT = Path(__file__).with_name("box_prep.sh")
BOX_VAGRANTFILE = f"""\
# Written by lab/vagrant/box.py: direct kernel boot from the files shipped in this box.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.expand_path("../vmlinuz", __FILE__)
    libvirt.initrd = File.expand_path("../initrd.img", __FILE__)
    libvirt.cmd_line = "{CMDLINE}"
  end
end
"""


def recipe_hash() -> str:
    recipe = {
        "suite": SUITE, "packages": PACKAGES, "preseed": lab_image.DEBCONF_PRESEED,
        "dpkg": lab_image.DPKG_OPTIONS, "prep": PREP_SCRIPT.read_text(), "disk_gb": DISK_GB,
        "box_vagrantfile": BOX_VAGRANTFILE, "key": vagrant_public_key().read_text().strip(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def box_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "vagrant-boxes" / recipe_hash()


def box_name() -> str:
    """The name the box is added under; a new recipe gets a new name."""
    return f"lockdown-{SUITE}-{recipe_hash()}"


def box_file(cache_dir: Path) -> Path:
    return box_dir(cache_dir) / "lockdown.box"


def kernel_file(cache_dir: Path) -> Path:
    kernel = box_dir(cache_dir) / "vmlinuz"
    if not kernel.exists() and box_file(cache_dir).exists():
        with cache_lock.held(cache_dir, f"vagrant-kernel-{recipe_hash()}"):  # one extractor
            if not kernel.exists():
                with tarfile.open(box_file(cache_dir)) as tar:
                    tar.extract("vmlinuz", box_dir(cache_dir), filter="data")
    return kernel


def is_built(cache_dir: Path) -> bool:
    return (box_dir(cache_dir) / "complete").exists()


def ensure_box(cache_dir: Path) -> Path:
    """Return the cached .box file, building it first when the recipe changed."""
    final = box_dir(cache_dir)
    if is_built(cache_dir):
        say(f"vagrant box {final.name}: cached ({box_file(cache_dir)})")
        return box_file(cache_dir)
    with cache_lock.held(cache_dir, f"vagrant-box-{final.name}"):  # other labs wait, then use it
        if not is_built(cache_dir):
            _build(cache_dir, final)
    return box_file(cache_dir)


def _build(cache_dir: Path, final: Path) -> None:
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("mkfs.ext4", "e2fsprogs"), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed", f"apt-get install -y --no-install-recommends {package} "
                           "(or run `python -m lab.vagrant up`, which installs it)")
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.with_name(f"{final.name}.building-{os.getpid()}")
    log = final.with_name(f"{final.name}.log")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = time.monotonic()
    say(f"building vagrant box {final.name} (log: {log})")
    try:
        _stage(started, "mmdebstrap rootfs", log, _mmdebstrap_argv(work / "rootfs"), timeout=1800)
        _copy_kernel(work)
        _stage(started, "ext4 image", log, ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(work / "rootfs"),
                                            str(work / "root.raw"), f"{DISK_GB}G"])
        shutil.rmtree(work / "rootfs")
        _stage(started, "qcow2 image", log, ["qemu-img", "convert", "-O", "qcow2", str(work / "root.raw"),
                                             str(work / "box.img")])
        (work / "root.raw").unlink()
        _write_box(work)
        (work / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        if final.exists():
            shutil.rmtree(final)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"vagrant box {final.name} built in {time.monotonic() - started:.0f}s")


def _mmdebstrap_argv(target: Path) -> list[str]:
    preseed = lab_image.DEBCONF_PRESEED.replace("'", "")
    argv = [
        "mmdebstrap", "--variant=apt", "--mode=root", "--verbose",
        f"--include={','.join(PACKAGES)}",
        f"--essential-hook=printf '{preseed}' | chroot \"$1\" debconf-set-selections",
        f"--customize-hook=sh {PREP_SCRIPT} \"$1\" {vagrant_public_key()}",
    ]
    argv += [f"--dpkgopt={option}" for option in lab_image.DPKG_OPTIONS]
    # No mirror argument: mmdebstrap's default is the Debian mirror this host reaches.
    return argv + [SUITE, str(target)]


def _copy_kernel(work: Path) -> None:
    boot = work / "rootfs" / "boot"
    kernels, initrds = sorted(boot.glob("vmlinuz-*")), sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise LabError(f"no kernel/initrd in {boot}", "read the build log: linux-image-amd64 or "
                       "initramfs-tools failed to install")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(initrds[-1], work / "initrd.img")
    for name in ("vmlinuz", "initrd.img"):
        (work / name).chmod(0o644)


def _write_box(work: Path) -> None:
    (work / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format": "qcow2",
                                                    "virtual_size": DISK_GB}) + "\n")
    (work / "Vagrantfile").write_text(BOX_VAGRANTFILE)
    with tarfile.open(work / "lockdown.box", "w") as tar:
        for name in ("metadata.json", "Vagrantfile", "box.img", "vmlinuz", "initrd.img"):
            tar.add(work / name, arcname=name)
    for name in ("box.img", "initrd.img", "metadata.json", "Vagrantfile"):
        (work / name).unlink()  # the .box holds them; vagrant unpacks its own copy
    # vmlinuz stays next to the .box: lab/vagrant/accel.py boots it to test KVM


def _stage(started: float, title: str, log: Path, argv: list[str], timeout: float = 600) -> None:
    say(f"  [{time.monotonic() - started:5.0f}s] {title} ...")
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        # Output into the log file and a poll loop that checks the clock: holds under gevent too.
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        leader = waiting.leader_of(process)
        deadline, next_tick = time.monotonic() + timeout, time.monotonic() + 15
        try:
            while process.poll() is None:
                time.sleep(0.5)
                if time.monotonic() >= next_tick:
                    next_tick += 15
                    say(f"  [{time.monotonic() - started:5.0f}s] {title}: still running")
                if time.monotonic() > deadline:
                    raise LabError(f"{title} timed out after {timeout:.0f}s", f"read {log}, then retry")
        finally:
            waiting.stop(process, leader)  # stops it (and its process group) only if still running
    if process.returncode != 0:
        raise LabError(f"{title} failed (exit {process.returncode})",
                       f"read {log}; check that apt reaches the Debian mirror (apt-get update), then rerun "
                       "`python -m lab.vagrant build`", detail=_tail(log))


def _tail(log: Path, count: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-count:])
    except OSError:
        return ""
