"""lockdown as users get it: the release's artefacts (tests/distribution.py builds the sdist
and, from it, the wheel; tests/package checks them) installed into a fresh venv in a directory
that has nothing of this repository, called from a user project of its own (examples/ plus its
own `deploys/`, `facts/` and `operations/` packages, which must never be imported), converging
a lab box, relaying a mail and auditing it. The box is then checked with testinfra.

Run with both ends of the pyinfra range pyproject.toml declares: the newest is the locked
release (requirements.lock, installed with --require-hashes, then the wheel), the oldest is the
range's lower bound (installed by pip together with the sdist, which pip builds itself)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.version import Version

from lab.config import REPO_ROOT
from pyinfra_lockdown.renamed import RENAMED_ENV
from tests.distribution import Release, build_release, wheel_contents
from tests.lab.deploy_helpers import (
    LOGIN, new_credentials, send_mail, ssh_testinfra_host, wait_for_mail,
)

pytestmark = pytest.mark.lab
FORWARD = "ops@user.test"
SHADOWS = ("deploys", "facts", "operations")  # the user's own packages, next to deploy.py


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Release:
    return build_release(tmp_path_factory.mktemp("dist"))


def oldest_pyinfra() -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    spec = next(d for d in project["dependencies"] if d.startswith("pyinfra"))
    return re.search(r">=\s*([0-9.]+)", spec).group(1)


@pytest.fixture(scope="module", params=["newest", "oldest"])
def user_venv(request, tmp_path_factory, release) -> Path:
    venv = tmp_path_factory.mktemp(f"user-{request.param}") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    if request.param == "newest":
        subprocess.run([*pip, "--require-hashes", "-r", str(REPO_ROOT / "requirements.lock")],
                       check=True, timeout=600)
        subprocess.run([*pip, "--no-deps", str(release.wheel)], check=True, timeout=600)
    else:
        subprocess.run([*pip, f"pyinfra=={oldest_pyinfra()}", str(release.sdist)],
                       check=True, timeout=600)
    subprocess.run([str(venv / "bin" / "pip"), "check"], check=True, timeout=120)
    assert installed_files(venv) == product_files(release.wheel), request.param
    version = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import pyinfra.version as v; print(v.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    wanted = (re.search(r"^pyinfra==([^\s\\]+)", (REPO_ROOT / "requirements.lock").read_text(),
                        re.M).group(1) if request.param == "newest" else oldest_pyinfra())
    assert Version(version) == Version(wanted), (request.param, version)
    return venv


def product_files(wheel: Path) -> dict[str, bytes]:
    return {name: data for name, data in wheel_contents(wheel).items()
            if name.startswith("pyinfra_lockdown/")}


def installed_files(venv: Path) -> dict[str, bytes]:
    """The package as installed in the venv (from the wheel or from the sdist): same files."""
    site = next(venv.glob("lib/python*/site-packages"))
    return {str(p.relative_to(site)): p.read_bytes()
            for p in (site / "pyinfra_lockdown").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def _user_project(root: Path, box, key: Path) -> Path:
    project = root / "project"
    project.mkdir()
    for name in ("deploy.py", "audit.py"):  # the files a user copies, unchanged
        shutil.copy(REPO_ROOT / "examples" / name, project / name)
    for package in SHADOWS:
        (project / package).mkdir()
        (project / package / "__init__.py").write_text(
            f"raise ImportError('lockdown imported the user project\\'s own {package}/')\n")
    data = {
        "ssh_user": "deploy", "ssh_key": str(key),  # no _sudo: deploy.py passes _sudo=True
        "ssh_known_hosts_file": "/dev/null", "ssh_strict_host_key_checking": "off",
        "mail_root_forward": FORWARD, "apt_update": False,
    }
    (project / "inventory.py").write_text(f"mail_servers = [({box.ipv4!r}, {data!r})]\n")
    return project


def test_a_user_project_converges_relays_and_audits_a_box(lab, box, standin, user_venv,
                                                         tmp_path):
    project = _user_project(tmp_path, box, lab.config.ssh_key)
    credentials = new_credentials(standin)
    # A user of 0.1.0 upgrading: the old MAILGUN_SMTP_* names only (a new name exported in
    # this shell must not stand beside them)
    old_names = {old: credentials[new] for old, new in RENAMED_ENV.items()}
    env = {**old_names, **dict.fromkeys(RENAMED_ENV.values(), ""), "PYTHONPATH": ""}

    def pyinfra(*args: str) -> subprocess.CompletedProcess:
        return lab.run([str(user_venv / "bin" / "pyinfra"), "-y", "inventory.py", *args],
                       env=env, cwd=project, timeout=300)

    first = pyinfra("--json", "deploy.py")
    assert first.returncode == 0, first.stderr[-4000:]
    assert json.loads(first.stdout)["results"]["totals"]["success"] > 0
    # The old names still work and warn once per run each, with the new name.
    for old, new in RENAMED_ENV.items():
        assert first.stderr.count(f"variable {old} (in the environment) is an old name, "
                                  f"use {new}") == 1, first.stderr[-4000:]
    env = {**credentials, "PYTHONPATH": ""}

    send_mail(box, to="root", subject="from a user project")
    messages = wait_for_mail(standin, 1, timeout=15)
    assert [(m["login"], m["tls"], m["rcpt_tos"]) for m in messages] == [(LOGIN, True, [FORWARD])]

    again = pyinfra("--json", "deploy.py")
    assert again.returncode == 0, again.stderr[-4000:]
    totals = json.loads(again.stdout)["results"]["totals"]
    assert totals["success"] == 0 and totals["error"] == 0, totals
    assert "is an old name" not in again.stderr  # the new names: nothing to warn about

    report_file = tmp_path / "audit.json"
    audit = pyinfra("--data", f"audit_json={report_file}", "audit.py")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["ok"] and report["failing_hosts"] == []
    assert {c["verdict"] for c in report["hosts"][0]["checks"]} <= {"PASS", "N/A"}

    # The box as testinfra sees it, over a real SSH login started inside the lab namespace.
    host = ssh_testinfra_host(lab, box, tmp_path)
    assert host.service("postfix").is_running
    assert host.service("postfix").is_enabled
    secret = host.file("/etc/postfix/sasl_passwd")
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)
    listening = [s for s in host.socket.get_listening_sockets() if s.startswith("tcp")]
    assert any(s.endswith(":22") for s in listening), listening  # sshd, seen the same way
    smtp = [s for s in listening if s.rsplit(":", 1)[1] in ("25", "465", "587")]
    assert all("127.0.0.1" in s or "::1" in s for s in smtp), smtp
    assert "Status: active" in host.check_output("ufw status")
