"""A really fresh server (issue 12): boxes of the minimal image (a cloud/VPS image: no MTA, no
ufw) and the standard image (exim4 on loopback) install Postfix and ufw from the lab's package
mirror during the first run, with apt_update at its default. During the whole first converge
the outside prober connects to 25/465/587 over IPv4 and IPv6 every ~100 ms: never once may it
get in. Then the failures on the way: the mirror down, a package missing from it, an
interrupted dpkg.
"""
from __future__ import annotations

import contextlib
import re
import time

import pytest

from lab.config import REPO_ROOT
from tests.conftest import SUITES
from tests.lab.deploy_helpers import (
    converge, new_credentials, pyinfra, ssh_testinfra_host, wait_for_mail,
)

pytestmark = pytest.mark.lab
SMTP_PORTS = (25, 465, 587)
FRESH_IMAGES = [(suite, flavor) for suite in SUITES for flavor in ("minimal", "standard")]


def _report(request, line: str) -> None:
    """A line of its own in the test output (the terminal), whatever the capture mode."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(line)


def _standin_accepts(lab, env: dict) -> None:
    """The stand-in takes the credentials this box was converged with (other tests set others)."""
    lab.standin.set(login=env["LOCKDOWN_RELAY_LOGIN"], password=env["LOCKDOWN_RELAY_PASSWORD"])


class FirstConverge:
    """A fresh box after its first converge under the prober: what the tests look at."""

    def __init__(self, box, result, counts, env, started, ended):
        self.box, self.result, self.counts, self.env = box, result, counts, env
        self.seconds = ended - started
        self.remote_commands = len(re.findall(r"^\[\S+\] (?:nested )?>>> ", result.stderr, re.MULTILINE))


@pytest.fixture(scope="module", params=FRESH_IMAGES, ids=[f"{s}-{f}" for s, f in FRESH_IMAGES])
def first_converge(lab, request, tmp_path_factory):
    suite, flavor = request.param
    if not lab.standin_running():
        lab.standin_start()
    box = lab.add_box(suite=suite, flavor=flavor)
    try:
        env = new_credentials(lab.standin)
        out = tmp_path_factory.mktemp(f"probe-{suite}-{flavor}") / "counts.json"
        # 22 is probed too: the prober must see sshd, or its zero on SMTP proves nothing.
        with lab.probe.watching([box.ipv4, box.ipv6], out, ports=(22, *SMTP_PORTS)) as counts:
            started = time.monotonic()
            result = pyinfra(lab, [box], "deploys/mail.py", "-vv", env=env)
            ended = time.monotonic()
        converged = FirstConverge(box, result, counts, env, started, ended)
        smtp = {p: counts["by_port"][str(p)] for p in SMTP_PORTS}
        _report(request, (
            f"[fresh {suite} {flavor}] first converge {converged.seconds:.1f}s, "
            f"{converged.remote_commands} remote commands; prober {counts['rounds']} rounds, "
            f"SMTP {sum(c['attempts'] for c in smtp.values())} attempts / "
            f"{sum(c['connections'] for c in smtp.values())} connections "
            f"(25/465/587 x IPv4+IPv6), ssh {counts['by_port']['22']['connections']} connections"))
        yield converged
    finally:
        lab.remove_box(box)


def test_first_converge_succeeds(first_converge):
    assert first_converge.result.returncode == 0, first_converge.result.stderr[-4000:]


def test_first_converge_reads_the_host_once_then_once_per_install(first_converge):
    # The first read finds neither ufw nor Postfix; each install is followed by one read again
    # (docs/design.md). No operation reads a fact of its own.
    loaded = re.findall(r"Loaded fact (\S+)", first_converge.result.stderr)
    assert loaded == ["pyinfra_lockdown.facts.host_state.LockdownState"] * 3, loaded


def _stated_remote_commands(path: str) -> int:
    text = " ".join((REPO_ROOT / path).read_text().split())
    stated = re.findall(r"(\d+) remote commands in all", text)
    assert len(stated) == 1, f"{path} should state the first converge's count once: {stated}"
    return int(stated[0])


def test_the_first_converge_runs_the_remote_commands_the_docs_state(first_converge):
    """docs/design.md and the README say how many commands a fresh box's first converge runs
    (bench/RESULTS.md says what each is): a change to that count changes them too."""
    assert first_converge.result.returncode == 0, first_converge.result.stderr[-4000:]
    for path in ("docs/design.md", "README.md"):
        ran = first_converge.remote_commands
        assert _stated_remote_commands(path) == ran, (
            f"{path} states another count than this converge ran ({ran}): update it, "
            "README.md and bench/RESULTS.md's list of the commands")


def test_no_smtp_connection_from_outside_during_the_first_converge(first_converge):
    counts = first_converge.counts
    assert counts["by_port"]["22"]["connections"] > 0, "the prober never reached sshd: it saw nothing"
    for port in SMTP_PORTS:
        assert counts["by_port"][str(port)]["attempts"] >= 2 * 10, counts  # IPv4 + IPv6, rounds
    opened = [o for o in counts["opened"] if o[1] in SMTP_PORTS]
    assert sum(counts["by_port"][str(p)]["connections"] for p in SMTP_PORTS) == 0, opened


def test_postfix_and_ufw_are_installed_and_exim4_is_gone(lab, first_converge, tmp_path):
    host = ssh_testinfra_host(lab, first_converge.box, tmp_path)
    for name in ("postfix", "libsasl2-modules", "ufw"):
        assert host.package(name).is_installed, name
    # apt removes exim4 for Postfix (both provide mail-transport-agent). Its conffiles stay
    # (dpkg state "rc"), /etc/init.d/exim4 among them, so systemd still calls the generated unit
    # enabled: with no daemon binary left it can never run again.
    for name in ("exim4-daemon-light", "exim4-base", "exim4-config"):
        assert not host.package(name).is_installed, name
    assert not host.file("/usr/sbin/exim4").exists
    assert not host.service("exim4").is_running
    assert host.service("postfix").is_running and host.service("postfix").is_enabled
    assert "Status: active" in host.check_output("ufw status")
    listening = [s for s in host.socket.get_listening_sockets() if s.startswith("tcp")]
    smtp = [s for s in listening if s.rsplit(":", 1)[1] in ("25", "465", "587")]
    assert smtp == [], smtp  # a null client: nothing of Postfix or exim4 listens, not even loopback
    # The apt steps ran for real, against the lab mirror named by the box's own sources.
    assert "http://mirror.lab.test/" in host.check_output("apt-cache policy postfix")


def test_a_mail_relays_to_the_standin(lab, first_converge):
    box = first_converge.box
    _standin_accepts(lab, first_converge.env)
    lab.standin.clear()
    sent = box.root("printf 'Subject: fresh\\n\\nfrom a fresh server\\n' | /usr/sbin/sendmail root")
    assert sent.returncode == 0, sent.stderr
    messages = wait_for_mail(lab.standin, 1)
    assert messages and messages[0]["tls"] and messages[0]["rcpt_tos"] == ["admin@lab.test"], messages


def test_second_run_changes_nothing(lab, first_converge):
    box = first_converge.box
    before = box.root("md5sum /etc/postfix/main.cf /etc/postfix/master.cf /etc/ufw/user.rules "
                      "/etc/ufw/user6.rules /etc/ufw/ufw.conf").stdout
    _, totals = converge(lab, [box], first_converge.env)
    assert totals["success"] == 0 and totals["error"] == 0, totals
    assert box.root("md5sum /etc/postfix/main.cf /etc/postfix/master.cf /etc/ufw/user.rules "
                    "/etc/ufw/user6.rules /etc/ufw/ufw.conf").stdout == before


# --- failures on the way ------------------------------------------------------------------------

@pytest.fixture(scope="module", params=SUITES)
def recovering_box(lab, request):
    """One minimal box per release taken through the failures below, in file order."""
    if not lab.standin_running():
        lab.standin_start()
    box = lab.add_box(suite=request.param, flavor="minimal")
    box.env = new_credentials(lab.standin)
    try:
        yield box
    finally:
        lab.mirror_restore(box.suite)
        if not lab.mirror_running():
            lab.mirror_start()
        lab.remove_box(box)


def _smtp_listening_outside(box) -> list[str]:
    return [line for line in box.root("ss -Htln").stdout.splitlines()
            if re.search(r":(25|465|587)\s", line) and not re.search(r"(127\.0\.0\.1|\[::1\]):", line)]


def test_mirror_down_fails_naming_the_package_and_leaves_the_box_as_it_was(lab, recovering_box):
    box = recovering_box
    lab.mirror_stop()
    try:
        result = pyinfra(lab, [box], "deploys/mail.py", env=box.env)
    finally:
        lab.mirror_start()
    assert result.returncode != 0
    assert "lockdown: could not install ufw: `apt-get update` failed" in result.stderr, result.stderr[-3000:]
    assert "run the deploy again" in result.stderr
    installed = box.root("dpkg-query -W -f '${Package} ${db:Status-Status}\\n' postfix ufw 2>/dev/null").stdout
    assert " installed" not in installed, installed
    assert not _smtp_listening_outside(box)


def test_missing_package_fails_naming_it_with_the_firewall_up(lab, recovering_box):
    box = recovering_box
    lab.mirror_hide(box.suite, "libsasl2-modules")
    try:
        result = pyinfra(lab, [box], "deploys/mail.py", env=box.env)
    finally:
        lab.mirror_restore(box.suite)
    assert result.returncode != 0
    assert ("lockdown: package libsasl2-modules is not available from this host's package sources"
            in result.stderr), result.stderr[-3000:]
    assert "lockdown: could not install postfix libsasl2-modules" in result.stderr
    # Safely firewalled, Postfix not half-there.
    assert box.root("ufw status").stdout.startswith("Status: active")
    assert box.root("dpkg-query -W -f '${db:Status-Status}' postfix 2>/dev/null").stdout != "installed"
    assert not _smtp_listening_outside(box)


INTERRUPT = r"""
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get update -q >/dev/null 2>&1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix libsasl2-modules \
    >/tmp/interrupted-apt.log 2>&1 &
apt=$!
# Kill dpkg once it has journalled a change to its database (a package half-way through), not
# after a fixed delay: under load a delay struck before the first unpack or after the last one.
for i in $(seq 1 6000); do
    # a numbered journal entry is committed (tmp.i is one being written)
    if ls /var/lib/dpkg/updates 2>/dev/null | grep -q '^[0-9]' && pids=$(pidof dpkg); then
        kill -9 $pids; break
    fi
    kill -0 $apt 2>/dev/null || break
    sleep 0.01
done
wait $apt
tail -n 20 /tmp/interrupted-apt.log >&2
dpkg --audit
"""


def test_interrupted_dpkg_is_repaired_and_the_rerun_converges(lab, recovering_box):
    box = recovering_box
    interrupted = box.root(INTERRUPT, timeout=300)
    assert interrupted.stdout.strip(), f"dpkg was not left interrupted:\n{interrupted.stderr}"
    result = pyinfra(lab, [box], "deploys/mail.py", "-v", env=box.env)
    assert result.returncode == 0, result.stderr[-4000:]
    # ufw was installed already: its step only reports the repairing command (-v shows it);
    # Postfix's install repairs first, or apt would refuse ("dpkg was interrupted").
    assert "dpkg was interrupted on this host: run `sudo dpkg --configure -a`" in result.stderr
    assert box.root("dpkg --audit").stdout.strip() == ""
    assert box.root("dpkg-query -W -f '${db:Status-Status}' postfix").stdout == "installed"
    assert box.root("ufw status").stdout.startswith("Status: active")
    _standin_accepts(lab, box.env)
    lab.standin.clear()
    box.root("printf 'Subject: recovered\\n\\nafter the failures\\n' | /usr/sbin/sendmail root")
    assert wait_for_mail(lab.standin, 1), box.root("postqueue -p").stdout
