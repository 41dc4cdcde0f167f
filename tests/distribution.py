"""Building lockdown the way a release does: an sdist, then the wheel built from that sdist
(``python -m build``), plus a wheel built straight from the source tree to compare it with.

Each build runs in a fresh copy of the checkout without what .gitignore names (venvs, build/,
egg-info, caches), so nothing a developer left lying around can reach a distribution, and the
checkout itself is never written to. ``--no-isolation``: the build uses the setuptools that
requirements-test.lock pins with its hashes, already in the test venv, instead of fetching one
into a throwaway environment on every run (pyproject.toml's build-system floor still applies:
``build`` checks it)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALWAYS_LEFT_OUT = (".git",)


@dataclass(frozen=True)
class Release:
    sdist: Path
    wheel: Path  # built from the sdist: what a release publishes
    tree_wheel: Path  # built straight from the source tree


def ignored_patterns() -> list[str]:
    patterns = [line.strip().rstrip("/") for line in (REPO / ".gitignore").read_text().splitlines()]
    return [p for p in patterns if p and not p.startswith("#")] + list(ALWAYS_LEFT_OUT)


def clean_copy(destination: Path) -> Path:
    shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(*ignored_patterns()),
                    symlinks=True)
    return destination


def _build(source: Path, out: Path, *what: str) -> None:
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", *what, "--outdir", str(out),
                    str(source)], check=True, capture_output=True, text=True, timeout=600)


def build_release(work: Path) -> Release:
    """sdist and wheel-from-sdist into work/release, a wheel from the tree into work/tree."""
    release, tree = work / "release", work / "tree"
    _build(clean_copy(work / "src-release"), release)  # no --sdist/--wheel: sdist, then its wheel
    _build(clean_copy(work / "src-tree"), tree, "--wheel")
    return Release(sdist=_one(release, "*.tar.gz"), wheel=_one(release, "*.whl"),
                   tree_wheel=_one(tree, "*.whl"))


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, (folder, pattern, found)
    return found[0]


def wheel_contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def sdist_names(sdist: Path) -> set[str]:
    """Member paths below the sdist's top folder (``pyinfra_lockdown-X.Y.Z/``)."""
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames()
                if "/" in name and archive.getmember(name).isfile()}


def main(out: Path) -> None:
    """``make dist``: the release into ``out`` (sdist and its wheel), checked by twine."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        release = build_release(Path(work))
        out.mkdir(exist_ok=True)
        for artefact in (release.sdist, release.wheel):
            shutil.copy2(artefact, out / artefact.name)
            print(out / artefact.name)
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                    str(out / release.sdist.name), str(out / release.wheel.name)], check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "dist")
