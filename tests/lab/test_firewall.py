"""The ufw lockdown on real booted boxes, probed from outside (the lab's prober) over IPv4 and
IPv6: only declared services get in, runs are idempotent and never drop the firewall, the
lockout guard and the dead-man switch keep SSH, and the rules survive a reboot."""
import json
import subprocess
import time

import pytest

from lab import network
from tests.lab.deploy_helpers import (
    converge, new_credentials, pyinfra, send_mail, wait_for, wait_for_mail,
)

pytestmark = pytest.mark.lab
FIREWALL = "deploys/firewall.py"
DEADMAN_UNIT = "lockdown-ufw-deadman"


def firewall(lab, box, **data):
    """Run the firewall deploy alone (no relay credentials needed); fails loudly."""
    return converge(lab, [box], env={}, data=cli_data(data), deploy=FIREWALL)


def cli_data(data: dict) -> dict:
    """Lists travel as JSON through `pyinfra --data` (which parses JSON values)."""
    return {key: json.dumps(value) if isinstance(value, list) else value
            for key, value in data.items()}


def reachable(lab, box, ports) -> dict:
    """{(address, port): bool} from the prober, both families, every target at once in one
    prober process (each connect with its own 2 s limit), not a process per target."""
    targets = [(address, port) for address in (box.ipv4, box.ipv6) for port in ports]
    opened = set(lab.probe.open_ports(targets))
    return {target: target in opened for target in targets}


def assert_open(lab, box, opened=(), closed=()):
    seen = reachable(lab, box, [*opened, *closed])
    wrong = {target: is_open for target, is_open in seen.items()
             if is_open != (target[1] in opened)}
    assert not wrong, f"expected open {list(opened)}, closed {list(closed)}; wrong: {wrong}"


def ufw_status(box) -> str:
    return box.root("ufw status verbose").stdout


def deadman_timer_state(box) -> str:
    return box.root(f"systemctl is-active {DEADMAN_UNIT}.timer").stdout.strip()


def deadman_firings(box) -> int:
    """How often the dead-man timer fired (its service started), from the box's journal."""
    journal = box.root(f"journalctl -q --no-pager -u {DEADMAN_UNIT}.service").stdout
    return sum(f"Starting {DEADMAN_UNIT}.service" in line for line in journal.splitlines())


def test_fresh_box_only_declared_ports_reachable_and_mail_still_relays(lab, box, standin):
    for port in (80, 8080, 9999):
        box.listen(port)
    assert_open(lab, box, opened=(8080,))  # no firewall yet: the listeners are reachable

    env = new_credentials(standin)
    converge(lab, [box], env, data=cli_data({"firewall_allowed": ["ssh", "http/tcp"]}))
    box.listen(25)  # postfix listens on nothing outside loopback: a stand-in listener on 25

    assert "Status: active" in ufw_status(box)
    assert "deny (incoming)" in ufw_status(box)
    assert_open(lab, box, opened=(22, 80), closed=(25, 8080, 9999))
    assert deadman_timer_state(box) != "active", "the dead-man timer was not cancelled"

    send_mail(box, subject="through the firewall")
    messages = wait_for_mail(standin, 1, timeout=15)
    assert ["Subject: through the firewall" in m["data"] for m in messages] == [True]


def test_second_run_reports_no_changes(lab, box, standin):
    env = new_credentials(standin)
    converge(lab, [box], env)
    started = time.monotonic()
    _, totals = converge(lab, [box], env)
    elapsed = time.monotonic() - started
    print(f"\nre-converge (mail + firewall, no changes): {elapsed:.1f} s")
    assert totals["success"] == 0 and totals["error"] == 0, totals


def test_pruning_and_closing_never_take_the_firewall_down(lab, box):
    for port in (80, 8080):
        box.listen(port)
    firewall(lab, box, firewall_allowed=["ssh", "http/tcp"])
    assert box.root("ufw allow 8080/tcp").returncode == 0  # a rule added by hand
    assert_open(lab, box, opened=(22, 80, 8080))

    def run(**data):
        result = pyinfra(lab, [box], FIREWALL, "-vv", data=cli_data(data))
        assert result.returncode == 0, result.stderr[-3000:]
        output = result.stdout + result.stderr
        assert "reset" not in output and "ufw disable" not in output and "--force disable" \
            not in output, output[-3000:]
        assert "Status: active" in ufw_status(box), "ufw went inactive"

    run(firewall_allowed=["ssh", "http/tcp"], firewall_prune="off")
    assert_open(lab, box, opened=(22, 80, 8080))
    run(firewall_allowed=["ssh", "http/tcp"], firewall_prune="all")
    assert_open(lab, box, opened=(22, 80), closed=(8080,))
    run(firewall_allowed=["ssh"])  # http removed from host data
    assert_open(lab, box, opened=(22,), closed=(80, 8080))
    assert "80/tcp" not in ufw_status(box)


def test_sshd_real_ports_are_opened_and_pyinfra_follows_sshd_to_2222(lab, box):
    def sshd_ports(*ports):
        lines = "".join(f"Port {port}\n" for port in ports)
        result = box.root(f"printf '{lines}' > /etc/ssh/sshd_config.d/lab-port.conf && "
                          "systemctl restart ssh")
        assert result.returncode == 0, result.stderr

    sshd_ports(22, 2222)
    firewall(lab, box)  # default firewall_allowed: ["ssh"]
    assert_open(lab, box, opened=(22, 2222))
    assert "2222/tcp" in ufw_status(box)

    sshd_ports(2222)  # sshd leaves 22: the deploy reaches it on 2222 and closes 22
    _, totals = firewall(lab, box, ssh_port=2222)
    assert totals["success"] == 1 and totals["error"] == 0, totals
    rules = [line.split()[0] for line in ufw_status(box).splitlines() if "ALLOW" in line]
    assert sorted(rules) == ["2222/tcp", "2222/tcp"], ufw_status(box)  # v4 + v6, no 22
    assert_open(lab, box, opened=(2222,))


def test_rules_without_ssh_are_refused_and_nothing_changes(lab, box):
    def snapshot():
        return box.root("ufw status verbose; cat /etc/ufw/user.rules /etc/ufw/user6.rules "
                        "/etc/default/ufw /etc/ufw/ufw.conf").stdout

    def refused(**data):
        before = snapshot()
        result = pyinfra(lab, [box], FIREWALL, data=cli_data(data))
        assert result.returncode != 0
        assert "`firewall_allowed`" in result.stderr and "refusing" in result.stderr, \
            result.stderr[-2000:]
        assert snapshot() == before

    refused(firewall_allowed=["http/tcp"])  # would enable without SSH
    firewall(lab, box, firewall_default_incoming="allow", firewall_allowed=["http/tcp"])
    refused(firewall_allowed=["http/tcp"])  # would switch the incoming default to deny
    firewall(lab, box)
    refused(firewall_allowed=["http/tcp"], firewall_prune="all")  # would prune ssh
    assert box.ssh("true").returncode == 0


def test_ssh_session_opened_before_the_enable_survives_it(lab, box):
    script = "touch /tmp/lab-ready; while [ ! -e /tmp/lab-go ]; do sleep 0.2; done; echo survived"
    session = subprocess.Popen(network.in_netns(lab.config.netns, box.ssh_argv() + [script]),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: box.root("test -e /tmp/lab-ready").returncode == 0, 15)
        firewall(lab, box)
        assert "Status: active" in ufw_status(box)
        box.root("touch /tmp/lab-go")
        stdout, stderr = session.communicate(timeout=30)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    assert session.returncode == 0 and stdout.strip() == "survived", (stdout, stderr)


@pytest.mark.quiet_machine  # a re-run must beat a 20/30 s timer: only waiting tests beside it
def test_deadman_switch_restores_access_when_a_new_connection_fails(lab, box):
    box.listen(8080)
    result = pyinfra(lab, [box], FIREWALL, data={
        "firewall_deadman_seconds": 20,  # the shortest delay settings accept
        "firewall_deadman_check_port": 2299,  # nothing listens there: the check fails
    })
    assert result.returncode != 0
    assert "dead-man check FAILED" in result.stderr and "within 20 s" in result.stderr, \
        result.stderr[-3000:]
    assert "Status: active" in ufw_status(box)  # enabled, and the timer still armed
    assert deadman_timer_state(box) == "active"
    # A re-run before the timer fires still sees the failed check and leaves it armed.
    rerun = pyinfra(lab, [box], FIREWALL, data={
        "firewall_deadman_seconds": 20, "firewall_deadman_check_port": 2299})
    assert rerun.returncode != 0 and "dead-man check FAILED" in rerun.stderr
    assert deadman_timer_state(box) == "active"
    assert deadman_firings(box) == 0, "the first timer fired before the re-run armed it again"

    assert wait_for(lambda: "Status: inactive" in ufw_status(box), 35), ufw_status(box)
    assert deadman_firings(box) == 1  # the timer did it
    assert_open(lab, box, opened=(22, 8080))  # access restored (everything, as before)
    assert box.ssh("true").returncode == 0

    firewall(lab, box, firewall_deadman_seconds=20)  # a working check cancels the timer
    assert "Status: active" in ufw_status(box)
    assert deadman_timer_state(box) != "active"
    assert box.root("ls /var/lib/lockdown").stdout.split() == []  # no marker left
    time.sleep(21)
    assert "Status: active" in ufw_status(box)
    assert deadman_firings(box) == 1  # not again


@pytest.mark.quiet_machine  # a re-run must beat a 20/30 s timer: only waiting tests beside it
def test_rerun_while_the_deadman_timer_is_pending_cancels_it_after_a_good_check(lab, box):
    failed = pyinfra(lab, [box], FIREWALL, data={
        "firewall_deadman_seconds": 30, "firewall_deadman_check_port": 2299})
    assert failed.returncode != 0 and deadman_timer_state(box) == "active"
    assert "Status: active" in ufw_status(box)
    firewall(lab, box)  # ufw already active, but the pending timer must not stay armed
    assert deadman_timer_state(box) != "active"
    assert "Status: active" in ufw_status(box)
    assert deadman_firings(box) == 0, "the timer fired before the re-run: it was not pending"


def test_firewall_is_back_with_the_same_rules_after_a_reboot(lab, box):
    firewall(lab, box, firewall_allowed=["ssh", "http/tcp"])
    before = ufw_status(box)
    lab.restart_box(box)
    assert ufw_status(box) == before and "Status: active" in before
    for port in (80, 8080):
        box.listen(port)
    assert_open(lab, box, opened=(22, 80), closed=(8080,))
    _, totals = firewall(lab, box, firewall_allowed=["ssh", "http/tcp"])
    assert totals["success"] == 0 and totals["error"] == 0, totals
