"""The lab's package mirror: per Debian release, a signed repository holding exactly the
packages lockdown's deploys install plus whatever they pull in on a minimal or standard box,
served over HTTP from the lab namespace (http://mirror.lab.test/<suite>, i.e. 10.77.0.1:80).

Built on the host: for each mirrored image (minimal, standard) a throwaway overlay over the
cached rootfs, in a private mount namespace, runs ``apt-get install --download-only`` of the
product's packages against the Debian archive the image was built from; the union of what
was downloaded is indexed (dpkg-scanpackages) and cached under
``<cache>/mirrors/<suite>-<hash>`` (hash: the package list and the images' recipes).

The package list is the product's own: every ``pyinfra_lockdown`` module with a ``PACKAGES``
list (mail.py, firewall.py, ...), so a new module that installs packages is mirrored without
touching the lab.

Each lab serves its own ``<state>/mirror/<suite>/dists`` (Release signed by a lab key kept in
the cache; boxes trust it by ``Signed-By``), whose pool is the cache's: ``hide(package)`` drops
a package from the served index, ``restore()`` brings the full index back.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import pkgutil
import shutil
import sys
import time
from pathlib import Path

from . import addresses as A
from . import cache_lock, daemons, image, network, processes, waiting
from .config import LabConfig
from .errors import LabError
from .progress import step
from .state import StateStore

PORT = 80
KEYRING_IN_BOX = "/etc/apt/keyrings/lockdown-lab-mirror.gpg"
SOURCES_IN_BOX = "/etc/apt/sources.list.d/lockdown-lab-mirror.sources"
KEY_NAME = "lockdown lab mirror <mirror@lab.test>"
LOG_NAME = "mirror.log"


def deploy_packages() -> list[str]:
    """What the product's deploys may install: each pyinfra_lockdown module's PACKAGES."""
    import pyinfra_lockdown

    found: set[str] = set()
    for module in pkgutil.iter_modules(pyinfra_lockdown.__path__):
        packages = getattr(importlib.import_module(f"pyinfra_lockdown.{module.name}"), "PACKAGES", None)
        if isinstance(packages, (list, tuple)):
            found |= set(packages)
    return sorted(found)


def recipe_hash(suite: str) -> str:
    recipe = {"suite": image.check_suite(suite), "packages": deploy_packages(),
              "images": {f: image.recipe_hash(suite, f) for f in image.MIRRORED_FLAVORS},
              "builder": DOWNLOAD_SCRIPT}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir(cache: Path, suite: str) -> Path:
    return Path(cache) / "mirrors" / f"{suite}-{recipe_hash(suite)}"


def sources_file(suite: str) -> str:
    """deb822 sources of a mirrored box: the lab mirror only, trusted by the lab key only."""
    return (f"Types: deb\nURIs: http://{A.MIRROR_HOSTNAME}/{suite}\nSuites: {suite}\n"
            f"Components: main\nSigned-By: {KEYRING_IN_BOX}\n")


# --- building (host side) -------------------------------------------------------------------

def ensure_built(cache: Path, suite: str) -> Path:
    final = cache_dir(cache, suite)
    if (final / "complete").exists():
        return final
    with cache_lock.held(cache, final.name):  # other labs wait for this build, then use it
        if not (final / "complete").exists():
            _build(cache, suite, final)
    return final


def _build(cache: Path, suite: str, final: Path) -> None:
    rootfses = {f: image.ensure_image(cache, suite, f) for f in image.MIRRORED_FLAVORS}
    building = final.with_name(f"{final.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    (building / "pool").mkdir(parents=True)
    packages = deploy_packages()
    with step(f"building the {suite} package mirror ({', '.join(packages)} and dependencies)"):
        for flavor, rootfs in rootfses.items():
            _download_into(rootfs, building / "pool", packages, building / f"{flavor}.log")
        index = waiting.run(["dpkg-scanpackages", "--multiversion", "pool", "/dev/null"],
                            cwd=building, timeout=300)
        if index.returncode != 0:
            raise LabError("dpkg-scanpackages failed", "apt-get install -y dpkg-dev", detail=index.stderr)
        (building / "Packages").write_text(index.stdout)
        (building / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        shutil.rmtree(final, ignore_errors=True)  # an interrupted build's leftovers
        os.rename(building, final)


DOWNLOAD_SCRIPT = r"""
set -eu
root="$1" upper="$2" out="$3"; shift 3
mkdir -p "$upper/u" "$upper/w" "$upper/m"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$upper/u,workdir=$upper/w" "$upper/m"
m="$upper/m"
mount -t proc proc "$m/proc"
rm -f "$m/etc/resolv.conf"; cp /etc/resolv.conf "$m/etc/resolv.conf"
chroot "$m" apt-get update -q
rm -f "$m"/var/cache/apt/archives/*.deb
chroot "$m" env DEBIAN_FRONTEND=noninteractive apt-get install --download-only -y -q \
    --no-install-recommends "$@"
cp -n "$m"/var/cache/apt/archives/*.deb "$out"/ 2>/dev/null || true
"""


def _download_into(rootfs: Path, pool: Path, packages: list[str], log: Path) -> None:
    """apt-get --download-only in a throwaway overlay over ``rootfs``; mounts die with the
    private mount namespace (nothing is left mounted on the host)."""
    scratch = pool.parent / f"scratch-{rootfs.parent.name}"
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", DOWNLOAD_SCRIPT, "sh",
            str(rootfs), str(scratch), str(pool), *packages]
    result = waiting.run(argv, timeout=900)
    log.write_text(result.stdout + result.stderr)
    shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        raise LabError(f"downloading {', '.join(packages)} for the lab mirror failed",
                       f"read {log}; check that apt reaches the Debian archive, then retry",
                       detail=result.stderr[-1500:])


# --- the lab key -------------------------------------------------------------------------

def ensure_key(cache: Path) -> Path:
    """A lab-only signing key (gpg homedir in the cache); returns its public keyring file."""
    home = Path(cache) / "mirror-key"
    public = home / "mirror.gpg"
    if public.exists():
        return public
    with cache_lock.held(cache, "mirror-key"):
        if not public.exists():
            _make_key(home)
    return public


def _make_key(home: Path) -> None:
    public = home / "mirror.gpg"
    tmp = home.with_name(f"mirror-key.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    try:
        _gpg(tmp, "--passphrase", "", "--quick-gen-key", KEY_NAME, "ed25519", "sign", "never")
        exported = _gpg(tmp, "--export", KEY_NAME, text=False)
        (tmp / "mirror.gpg").write_bytes(exported)
    finally:
        _stop_agent(tmp)
    if not public.exists():
        shutil.rmtree(home, ignore_errors=True)
        os.rename(tmp, home)
    else:  # another process made one meanwhile (one without the lock)
        shutil.rmtree(tmp, ignore_errors=True)


def _gpg(home: Path, *args: str, text: bool = True):
    result = waiting.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode",
                          "loopback", *args], text=text, timeout=120)
    if result.returncode != 0:
        raise LabError(f"gpg {args[0]} failed", "is gnupg installed (apt-get install -y gnupg)?",
                       detail=str(result.stderr)[-1500:])
    return result.stdout


def _stop_agent(home: Path) -> None:
    waiting.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=30)


# --- the served tree (per lab) ---------------------------------------------------------------

def serve_dir(config: LabConfig) -> Path:
    return config.state_dir / "mirror" / "www"


def publish(config: LabConfig, suite: str, hidden: tuple[str, ...] = ()) -> None:
    """Write the suite's served index (without ``hidden`` packages), signed by the lab key."""
    built = ensure_built(config.cache_dir, suite)
    ensure_key(config.cache_dir)
    root = serve_dir(config) / suite
    dists = root / "dists" / suite
    binary = dists / "main" / "binary-amd64"
    binary.mkdir(parents=True, exist_ok=True)
    pool = root / "pool"
    if not pool.is_symlink():
        pool.symlink_to(built / "pool")
    elif pool.resolve() != (built / "pool").resolve():
        pool.unlink()
        pool.symlink_to(built / "pool")
    stanzas = [s for s in (built / "Packages").read_text().split("\n\n") if s.strip()]
    kept = [s for s in stanzas if _stanza_package(s) not in hidden]
    packages = ("\n\n".join(kept) + "\n") if kept else ""
    (binary / "Packages").write_text(packages)
    (binary / "Packages.gz").write_bytes(gzip.compress(packages.encode(), mtime=0))
    (dists / "Release").write_text(release_text(suite, {
        "main/binary-amd64/Packages": (binary / "Packages").read_bytes(),
        "main/binary-amd64/Packages.gz": (binary / "Packages.gz").read_bytes()}))
    home = Path(config.cache_dir) / "mirror-key"
    # One signer at a time: each stops the key's gpg-agent when done, which would cut off
    # another lab's signing midway.
    with cache_lock.held(config.cache_dir, "mirror-key"):
        try:
            _gpg(home, "--local-user", KEY_NAME, "--clearsign", "-o", str(dists / "InRelease"),
                 str(dists / "Release"))
            _gpg(home, "--local-user", KEY_NAME, "-abs", "-o", str(dists / "Release.gpg"),
                 str(dists / "Release"))
        finally:
            _stop_agent(home)


def _stanza_package(stanza: str) -> str:
    for line in stanza.splitlines():
        if line.startswith("Package:"):
            return line.split(":", 1)[1].strip()
    return ""


def release_text(suite: str, files: dict[str, bytes]) -> str:
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
    lines = ["Origin: lockdown-lab", "Label: lockdown-lab", f"Suite: {suite}", f"Codename: {suite}",
             f"Date: {date}", "Architectures: amd64", "Components: main", "SHA256:"]
    lines += [f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}" for name, data in files.items()]
    return "\n".join(lines) + "\n"


# --- the server process (in the lab namespace, recorded by PID) -----------------------------

def start(config: LabConfig, store: StateStore, timeout: float = 15) -> None:
    with store.update() as state:
        if processes.is_alive(state.mirror):
            return
        www = serve_dir(config)
        www.mkdir(parents=True, exist_ok=True)
        state.mirror = daemons.launch(
            config, "mirror", [sys.executable, "-m", "http.server", "--bind", A.GATEWAY_V4,
                               "--directory", str(www), str(PORT)], config.state_dir / "mirror" / LOG_NAME)
        record = state.mirror
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.is_alive(record):
            break
        probe = waiting.run(network.in_netns(config.netns, [
            sys.executable, "-c", f"import socket; socket.create_connection(('{A.GATEWAY_V4}', {PORT}), 1)"]),
            timeout=10)
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    log_tail = (config.state_dir / "mirror" / LOG_NAME).read_text(errors="replace")[-2000:]
    raise LabError("the lab package mirror did not start", f"read {config.state_dir / 'mirror' / LOG_NAME}",
                   detail=log_tail)


def stop(config: LabConfig, store: StateStore) -> None:
    daemons.stop(config, store, "mirror")
