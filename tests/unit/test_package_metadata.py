"""The declarations a user and a packager read agree with what is tested and with each other
(issue 27): one version, the Python and pyinfra ranges, the two hashed locks, the changelog,
the security contact, the project URLs and the licence."""
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import pyinfra_lockdown

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M)


def pins(lock: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a pip-compile lock; fails on a requirement without hashes."""
    text = (REPO / lock).read_text()
    found = {m.group(1).lower(): (m.group(2), frozenset(re.findall(r"[0-9a-f]{64}", m.group(3))))
             for m in PIN.finditer(text)}
    requirements = [line for line in text.splitlines() if line and not line[0].isspace()
                    and not line.startswith("#")]
    assert len(requirements) == len(found), f"{lock}: a requirement without a pin and hashes"
    return found


def test_python_declared_is_the_python_tested():
    tested = f"{sys.version_info.major}.{sys.version_info.minor}"
    declared = {c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert declared == {tested}
    assert PROJECT["requires-python"] == f">={tested}"


def test_pyinfra_is_capped_at_the_newest_minor_tested():
    [requirement] = [Requirement(d) for d in PROJECT["dependencies"] if d.startswith("pyinfra")]
    newest = Version(pins("requirements.lock")["pyinfra"][0])
    lower = next(s.version for s in requirement.specifier if s.operator == ">=")
    upper = next(s.version for s in requirement.specifier if s.operator == "<")
    assert Version(upper) == Version(f"{newest.major}.{newest.minor + 1}")
    assert newest in requirement.specifier and Version(lower) in requirement.specifier
    assert requirement.specifier == SpecifierSet(f">={lower},<{upper}")


def test_the_locks_separate_runtime_and_tests_and_pin_every_hash():
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert "pyinfra" in runtime
    assert {name: test[name] for name in runtime} == runtime  # same versions, same hashes
    tools = {Requirement(r).name.lower() for r in PROJECT["optional-dependencies"]["test"]}
    assert tools <= set(test) and not tools & set(runtime)


def test_one_version_and_the_changelog_opens_with_it():
    changelog = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[([^\]]+)\] - (\S+)", changelog, re.M)
    assert releases and releases[0][0] == pyinfra_lockdown.__version__
    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT


def test_the_security_contact_is_the_authors_address():
    [author] = PROJECT["authors"]
    assert f"**{author['email']}**" in (REPO / "SECURITY.md").read_text()


def test_project_urls_share_one_base_and_name_files_that_exist():
    base = PROJECT["urls"]["Repository"]
    for label, url in PROJECT["urls"].items():
        assert url.startswith(base), label
        path = url[len(base):].removeprefix("/blob/main/")
        assert not path or (REPO / path).is_file(), (label, path)


def test_the_licence_file_is_the_declared_one():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_make_deps_installs_only_hashed_pins():
    makefile = (REPO / "Makefile").read_text()
    rule = re.search(r"^\$\(VENV\)/\.installed:(.*?)\n\n", makefile, re.M | re.S).group(1)
    assert "requirements-test.lock" in rule.splitlines()[0] and "requirements.lock" in rule
    installs = [line for line in rule.splitlines() if "pip install" in line]
    assert "--require-hashes -r requirements-test.lock" in installs[0]
    assert all("--no-deps" in line for line in installs[1:])  # nothing resolved outside the lock
