"""Helper of the lab tests (no tests here).

Running lockdown's deploys on lab boxes the way a user does: the pyinfra CLI over SSH."""
from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

LOGIN = "postmaster@mg.lab.test"


def new_credentials(standin) -> dict:
    """A random password, set on the stand-in and returned as the deploy's environment."""
    password = "pw-" + secrets.token_urlsafe(18)
    standin.set(login=LOGIN, password=password, mode="normal")
    return {"LOCKDOWN_RELAY_LOGIN": LOGIN, "LOCKDOWN_RELAY_PASSWORD": password}


def report_path() -> str:
    """A path of its own for an audit's JSON report: tests of other workers and other labs on
    the same machine audit boxes with the same names at the same time."""
    return str(Path(tempfile.mkdtemp(prefix="lockdown-audit-")) / "report.json")


def pyinfra(lab, boxes, deploy: str, *options: str, env: dict | None = None,
            data: dict | None = None) -> subprocess.CompletedProcess:
    argv = lab.pyinfra_argv(hosts=list(boxes)) + ["-y", *options]
    for key, value in (data or {}).items():
        argv += ["--data", f"{key}={value}"]
    return lab.run(argv + [deploy], env=env, timeout=300)


def converge(lab, boxes, env: dict, data: dict | None = None, deploy: str = "deploys/mail.py"):
    """Run the deploy with --json; returns (CompletedProcess, totals dict). Fails loudly."""
    result = pyinfra(lab, boxes, deploy, "--json", env=env, data=data)
    assert result.returncode == 0, f"deploy failed:\n{result.stderr[-4000:]}"
    return result, json.loads(result.stdout)["results"]["totals"]


def audit_checks(lab, box, env: dict, directory, data: dict | None = None) -> dict:
    """The audit's checks by id for one box (its JSON report, in ``directory``), without the
    outside probe."""
    report = directory / "audit.json"
    result = pyinfra(lab, [box], "deploys/audit.py", env=env,
                     data={**(data or {}), "audit_json": str(report), "audit_probe": "off"})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    return {c["id"]: c for c in json.loads(report.read_text())["hosts"][0]["checks"]}


def send_mail(box, to: str = "root", subject: str = "lockdown test", sender: str = "") -> None:
    flags = f"-r {sender} " if sender else ""
    result = box.root(f"echo 'body of {subject}' | mail {flags}-s '{subject}' {to}")
    assert result.returncode == 0, result.stderr


CANARY_HEADER = "X-Lockdown-Canary:"


def canaries(messages: list[dict]) -> list[dict]:
    """The stand-in's messages that are lockdown's relay canary (pyinfra_lockdown/canary.py)."""
    return [m for m in messages if CANARY_HEADER in m["data"]]


def not_canaries(messages: list[dict]) -> list[dict]:
    return [m for m in messages if CANARY_HEADER not in m["data"]]


def wait_for_mail(standin, count: int = 1, timeout: float = 30) -> list[dict]:
    """The stand-in's messages other than canaries, once ``count`` of them arrived (or the
    time is up)."""
    wait_for(lambda: len(not_canaries(standin.messages())) >= count, timeout)
    return not_canaries(standin.messages())


def queue(box) -> str:
    return box.root("postqueue -p").stdout


def wait_for(predicate, timeout: float = 20) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def ssh_testinfra_host(lab, box, directory):
    """The box as testinfra sees it: a real SSH login as deploy (sudo), started inside the lab
    namespace. ``directory``: where its ssh_config goes (a tmp_path)."""
    import testinfra

    ssh_config = directory / "ssh_config"
    ssh_config.write_text(
        f"Host {box.ipv4}\n  User deploy\n  IdentityFile {lab.config.ssh_key}\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"  ProxyCommand ip netns exec {lab.config.netns} nc %h %p\n")
    return testinfra.get_host(f"ssh://{box.ipv4}", ssh_config=str(ssh_config), sudo=True)
