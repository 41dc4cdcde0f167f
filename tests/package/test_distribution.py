"""What a release publishes, built and checked without the lab: ``python -m build`` makes the
sdist and, from it, the wheel; ``twine check --strict`` accepts both; the wheel built from the
sdist equals, file for file, the wheel built straight from the tree; the wheel holds the product
only and says what pyproject.toml declares. tests/lab/test_package.py installs these same
artefacts (the sdist and the wheel) and runs a user project against them."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from email.parser import Parser
from pathlib import Path

import pytest
import trove_classifiers

import pyinfra_lockdown
from tests.distribution import REPO, Release, build_release, sdist_names, wheel_contents

PRODUCT_PACKAGES = {  # import name -> folder of the checkout: the package holds its layers
    "pyinfra_lockdown": "pyinfra_lockdown",
    "pyinfra_lockdown/facts": "pyinfra_lockdown/facts",
    "pyinfra_lockdown/operations": "pyinfra_lockdown/operations",
    "pyinfra_lockdown/remote": "pyinfra_lockdown/remote",
}
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Release:
    return build_release(tmp_path_factory.mktemp("dist"))


def _metadata(release: Release):
    contents = wheel_contents(release.wheel)
    name = next(n for n in contents if n.endswith(".dist-info/METADATA"))
    return Parser().parsestr(contents[name].decode())


def test_twine_accepts_the_sdist_and_the_wheel(release):
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                              str(release.sdist), str(release.wheel)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_the_sdist_builds_the_same_wheel_as_the_tree(release):
    from_sdist, from_tree = wheel_contents(release.wheel), wheel_contents(release.tree_wheel)
    assert sorted(from_sdist) == sorted(from_tree)
    assert [name for name in from_sdist if from_sdist[name] != from_tree[name]] == []


def test_the_wheel_holds_the_product_only(release):
    contents = wheel_contents(release.wheel)
    dist_info = f"pyinfra_lockdown-{pyinfra_lockdown.__version__}.dist-info"
    assert {name.split("/")[0] for name in contents} == {"pyinfra_lockdown", dist_info}
    modules = {name for name in contents if not name.startswith(dist_info)}
    expected = {"pyinfra_lockdown/py.typed"}
    for package, folder in PRODUCT_PACKAGES.items():
        for source in (*(REPO / folder).glob("*.py"), *(REPO / folder).glob("*.sh")):
            expected.add(f"{package}/{source.name}")
            assert contents[f"{package}/{source.name}"] == source.read_bytes(), source
    assert modules == expected
    assert contents[f"{dist_info}/licenses/LICENSE"] == (REPO / "LICENSE").read_bytes()


def test_the_wheel_says_what_pyproject_declares(release):
    metadata = _metadata(release)
    assert metadata["Name"] == PROJECT["name"]
    assert metadata["Version"] == pyinfra_lockdown.__version__
    assert metadata["License-Expression"] == PROJECT["license"] == "MIT"
    assert metadata["Requires-Python"] == PROJECT["requires-python"]
    runtime = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert runtime == ["pyinfra<3.11,>=3.9"] and PROJECT["dependencies"] == ["pyinfra>=3.9,<3.11"]
    assert metadata.get_all("Classifier") == PROJECT["classifiers"]
    unknown = [c for c in PROJECT["classifiers"] if c not in trove_classifiers.classifiers]
    assert unknown == []  # an index refuses an upload with an unknown classifier
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert urls == PROJECT["urls"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().strip() == (REPO / "README.md").read_text().strip()


def test_the_sdist_holds_the_sources_and_the_documents(release):
    names = sdist_names(release.sdist)
    for document in ("README.md", "LICENSE", "CHANGELOG.md", "SECURITY.md", "pyproject.toml"):
        assert document in names
    sources = {f"{folder}/{p.name}" for folder in PRODUCT_PACKAGES.values()
               for p in (REPO / folder).glob("*.py")}
    assert sources <= names
    top = {name.split("/")[0] for name in names if "/" in name}
    assert top == {"pyinfra_lockdown", "pyinfra_lockdown.egg-info"}, top


def test_the_checkout_resolves_the_package_without_an_install():
    """From a bare checkout (no editable finder, no package-dir mapping) the package and its
    layers import from where they are, and the design's top-level facts/ is the package's own
    folder, a link (so no second copy can drift)."""
    facts = REPO / "facts"
    assert facts.is_symlink() and facts.resolve() == REPO / "pyinfra_lockdown" / "facts"
    assert not (REPO / "operations").exists()
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; import pyinfra_lockdown.facts.ufw as f, "
            "pyinfra_lockdown.operations.ufw as o, pyinfra_lockdown as p; "
            "print(p.__file__, f.__file__, o.__file__)")
    # -S: no site-packages .pth, so the editable install's finder cannot help; pyinfra comes
    # from the venv's site-packages, put after the checkout by hand.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    found = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)],
                           capture_output=True, text=True, timeout=60,
                           env={"PYTHONPATH": site}, cwd="/")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [str(REPO / "pyinfra_lockdown" / m) for m in
                                    ("__init__.py", "facts/ufw.py", "operations/ufw.py")]
