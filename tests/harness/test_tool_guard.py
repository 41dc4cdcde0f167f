"""The guard that fails a run whose tests start a host tool the project does not install
(issue 21: the link-cut test ran iptables-nft, which only the Vagrant tier installed)."""
from __future__ import annotations

import shutil

import pytest

from tests import tool_guard


@pytest.mark.parametrize("argv, program", [
    (["ip", "-n", "x", "link"], "ip"),
    (["nsenter", "--net=/run/netns/ldtest-box1-3", "--", "iptables-nft", "-w"], "iptables-nft"),
    (["nsenter", "-t", "4242", "-m", "-u", "-n", "-p", "--", "postconf"], None),  # the box's own
    (["nsenter", "-t", "4242", "-mun", "--", "postconf"], None),
    (["ip", "netns", "exec", "ldlab", "nc", "-z", "10.77.0.11", "22"], "nc"),
    (["env", "A=1", "timeout", "5", "ssh", "box"], "ssh"),
    (["setsid", "systemd-nspawn", "-D", "/x"], "systemd-nspawn"),
    (["unshare", "--mount", "--", "chroot", "/x", "apt-get"], None),
    (["unshare", "--net", "--", "sysctl", "-w", "a=b"], "sysctl"),
    (["/usr/sbin/iptables-nft", "-L"], "/usr/sbin/iptables-nft"),
])
def test_the_program_that_really_runs_on_the_host(argv, program):
    assert tool_guard.host_program(argv) == program


def test_the_lab_list_installs_what_the_link_cut_runs():
    assert {"iptables", "iproute2", "systemd-container", "mmdebstrap"} <= tool_guard.lab_packages()


def test_the_deps_script_reads_the_same_list():
    script = (tool_guard.REPO / "lab" / "install-system-deps.sh").read_text()
    assert "system-packages.txt" in script


def test_only_the_vagrant_tier_may_use_the_vagrant_packages():
    assert "vagrant" in tool_guard.allowed_packages("vagrant")
    assert "vagrant" not in tool_guard.allowed_packages("lab")


def _log(tmp_path, *lines):
    log = tmp_path / "tools.log"
    log.write_text("".join(f"{tier}\t{program}\n" for tier, program in lines))
    return log


def test_a_tool_from_a_package_no_deps_script_lists_fails_the_run(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed (it is on this machine kind)")
    package, _ = tool_guard.package_of("make")
    assert package == "make" and not tool_guard.is_base_package("make")
    found = tool_guard.problems(_log(tmp_path, ("lab", "make")))
    assert len(found) == 1 and "package make" in found[0] and "lab tier" in found[0]


def test_a_tool_that_is_not_installed_fails_the_run(tmp_path):
    found = tool_guard.problems(_log(tmp_path, ("lab", "no-such-tool-lockdown")))
    assert len(found) == 1 and "not installed" in found[0]


def test_base_system_and_listed_tools_pass(tmp_path):
    lines = [("lab", "nsenter"), ("lab", "ip"), ("unit", "dpkg-query")]
    if shutil.which("iptables-nft"):
        lines.append(("lab", "iptables-nft"))
    assert tool_guard.problems(_log(tmp_path, *lines)) == []


def test_a_diverted_file_is_traced_to_its_owner_not_the_diversion():
    package, _ = tool_guard.package_of("/bin/sh")
    assert package in ("dash", "bash") and tool_guard.is_base_package(package)


def test_issue_21_iptables_from_the_vagrant_list_alone_fails_the_lab_tier(tmp_path, monkeypatch):
    """The state of issue 21: iptables installed (by the Vagrant tier), the lab list without it."""
    if shutil.which("iptables-nft") is None:
        pytest.skip("iptables is not installed yet (make deps installs it)")
    lab_list = tool_guard.lab_packages() - {"iptables"}
    monkeypatch.setattr(tool_guard, "lab_packages", lambda: lab_list)
    found = tool_guard.problems(_log(tmp_path, ("lab", "iptables-nft"), ("vagrant", "iptables-nft")))
    assert len(found) == 1 and "package iptables" in found[0] and "lab tier" in found[0]


def test_a_venv_made_from_this_interpreter_is_the_projects_own(tmp_path):
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "pyinfra").write_text("#!/bin/sh\n")
    assert tool_guard._project_owned(str(venv / "bin" / "pyinfra"))
    stranger = tmp_path / "other" / "bin"
    stranger.mkdir(parents=True)
    (stranger.parent / "pyvenv.cfg").write_text("home = /opt/elsewhere/bin\n")
    (stranger / "pyinfra").write_text("#!/bin/sh\n")
    assert not tool_guard._project_owned(str(stranger / "pyinfra"))
