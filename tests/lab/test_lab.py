"""The lab itself: boxes, pyinfra reachability, the Mailgun stand-in, the prober, teardown."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lab.config import LabConfig

pytestmark = pytest.mark.lab


def run_python(lab, script: str) -> dict:
    """Run a Python snippet inside the lab namespace; it prints one JSON object."""
    result = lab.run([sys.executable, "-c", textwrap.dedent(script)], timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- boxes ------------------------------------------------------------------------------

def test_box_boots_with_only_postfix_failing(box):
    state = box.root("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded")
    failed = box.root("systemctl --failed --plain --no-legend").stdout.split("\n")
    units = [line.split()[0] for line in failed if line.strip()]
    # No main.cf on a fresh box ("No configuration"): postfix may fail, nothing else.
    assert all(unit.startswith("postfix") for unit in units), units
    assert box.root("test -e /etc/postfix/main.cf").returncode == 1


def test_box_identity_and_access(box):
    assert box.root("hostname").stdout.strip() == box.name
    hosts = box.root("cat /etc/hosts").stdout
    assert f"127.0.1.1\t{box.name}.lab.test {box.name}" in hosts
    assert "10.77.0.1\tsmtp.mailgun.lab.test" in hosts
    assert box.root("cat /etc/resolv.conf").stdout.strip() == "nameserver 10.77.0.1"
    addresses = box.root("ip -o addr show dev eth0").stdout
    assert f"{box.ipv4}/24" in addresses and f"{box.ipv6}/64" in addresses
    result = box.ssh("id -un; sudo -n id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["deploy", "0"]


def test_box_resolves_relay_names_to_the_standin_and_nothing_else(lab, box):
    """The lab's resolver: the presets' real names lead to the stand-in, any other name fails
    at once (NXDOMAIN, no upstream)."""
    found = box.root("getent ahostsv4 smtp.mailgun.org; getent ahostsv6 smtp.sendgrid.net").stdout
    assert "10.77.0.1" in found and "fd77::1" in found, found
    unknown = box.root("s=$(date +%s%N); getent hosts mirror.example.com; rc=$?; "
                       "echo rc=$rc ms=$(( ($(date +%s%N) - s) / 1000000 ))").stdout
    assert "rc=2" in unknown, unknown  # 2: not found (not a time-out)
    assert int(unknown.split("ms=")[1]) < 1000, unknown


def test_box_trusts_the_lab_ca_and_the_standin_proves_the_relay_names(lab, box, standin):
    """Verified TLS as in production: the stand-in's certificate for smtp.mailgun.org chains to
    the box's system bundle; the impostor's, for the same name, does not."""
    verify = ("echo QUIT | timeout 10 openssl s_client -starttls smtp -connect smtp.mailgun.org:587 "
              "-CAfile /etc/ssl/certs/ca-certificates.crt -verify_hostname smtp.mailgun.org "
              "-verify_return_error 2>&1 | grep -m1 'Verify return code'")
    assert "Verify return code: 0 (ok)" in box.root(verify).stdout
    standin.set(mode="impostor")
    assert "Verify return code: 0 (ok)" not in box.root(verify).stdout
    assert "lockdown-lab-ca" in box.root("ls /etc/ssl/certs").stdout


def test_box_names_are_never_reused(lab, box):
    second = lab.add_box(suite=box.suite)
    try:
        assert second.name != box.name
        assert int(second.name[3:]) > int(box.name[3:])
        assert second.ipv4 == f"10.77.0.{10 + int(second.name[3:])}"
    finally:
        lab.remove_box(second)


def test_restart_keeps_state_and_addresses(lab, box):
    box.root("echo kept > /root/marker")
    assert box.root("ufw allow 22/tcp && ufw --force enable").returncode == 0
    old_netns = box.netns
    restarted = lab.restart_box(box)
    assert (restarted.ipv4, restarted.ipv6) == (box.ipv4, box.ipv6)
    assert restarted.netns != old_netns  # a namespace is never reused
    assert restarted.root("cat /root/marker").stdout.strip() == "kept"
    assert restarted.ssh("true").returncode == 0
    # The firewall comes back from the box's own boot, not from a reused namespace.
    assert "Status: active" in restarted.root("ufw status").stdout
    restarted.listen(8080)
    assert lab.probe.tcp_open(restarted.ipv4, 22)
    assert not lab.probe.tcp_open(restarted.ipv4, 8080, timeout=1)


def host_firewall_rules(box) -> str:
    """The root namespace's netfilter rules, read with the box's own iptables binaries
    (the host has none): box mount namespace, host network namespace."""
    from lab.boxes import container_leader

    leader = str(container_leader(box.record.process))
    dumps = [
        subprocess.run(["nsenter", "-t", leader, "-m", "-r", "--", tool], capture_output=True,
                       text=True, check=True).stdout
        for tool in ("/usr/sbin/iptables-save", "/usr/sbin/ip6tables-save")
    ]
    return "".join(line for dump in dumps for line in dump.splitlines(True) if not line.startswith("#"))


def test_ufw_in_a_box_does_not_touch_the_host(lab, box):
    host_rules = host_firewall_rules(box)
    assert box.root("ufw --force enable").returncode == 0
    assert not lab.probe.tcp_open(box.ipv4, 22)  # default deny incoming, no allow rule
    assert box.root("echo still reachable").stdout.strip() == "still reachable"  # root() needs no network
    assert "ufw" in box.root("iptables-save").stdout
    assert host_firewall_rules(box) == host_rules
    assert "ufw" not in host_rules


# --- pyinfra ----------------------------------------------------------------------------

def test_pyinfra_reaches_two_boxes_at_once(lab, two_boxes):
    names = sorted(b.name for b in two_boxes)
    result = lab.run(lab.pyinfra_argv(hosts=two_boxes) + ["-y", "exec", "--", "hostname"], timeout=120)
    assert result.returncode == 0, result.stderr
    for name in names:
        assert f"[{name}] {name}" in result.stderr

    result = lab.run(lab.pyinfra_argv(hosts=two_boxes) + ["fact", "server.Hostname"], timeout=120)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stderr[result.stderr.index("{"):result.stderr.rindex("}") + 1])
    assert facts == {name: name for name in names}


def test_inventory_can_be_restricted_with_lab_hosts(lab, two_boxes):
    first = two_boxes[0].name
    result = lab.run(lab.pyinfra_argv() + ["-y", "exec", "--", "hostname"], env={"LAB_HOSTS": first})
    assert result.returncode == 0, result.stderr
    assert f"[{first}] {first}" in result.stderr
    assert f"[{two_boxes[1].name}]" not in result.stderr


# --- the Mailgun stand-in -----------------------------------------------------------------

SMTP_CLIENT = """
    import json, smtplib, ssl
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    report = {}
"""


def test_standin_accepts_starttls_and_auth(lab, standin):
    report = run_python(lab, SMTP_CLIENT + """
    with smtplib.SMTP("10.77.0.1", 587, timeout=10) as client:
        client.starttls(context=context)
        client.login("postmaster@lab.test", "lab-password")
        client.sendmail("app@box.lab.test", ["user@example.org"], "Subject: hello\\n\\nbody\\n")
    with smtplib.SMTP_SSL("fd77::1", 465, timeout=10, context=context) as client:
        client.login("postmaster@lab.test", "lab-password")
        client.sendmail("app@box.lab.test", ["other@example.org"], "Subject: implicit\\n\\nbody\\n")
    print(json.dumps(report))
    """)
    assert report == {}
    first, second = standin.messages()
    assert first["mail_from"] == "app@box.lab.test"
    assert first["rcpt_tos"] == ["user@example.org"]
    assert (first["login"], first["tls"], first["port"]) == ("postmaster@lab.test", True, 587)
    assert "Subject: hello" in first["data"]
    assert (second["login"], second["tls"], second["port"]) == ("postmaster@lab.test", True, 465)


def test_standin_refuses_auth_before_starttls(lab, standin):
    report = run_python(lab, SMTP_CLIENT + """
    import base64
    with smtplib.SMTP("10.77.0.1", 587, timeout=10) as client:
        client.ehlo()
        report["advertised_auth"] = client.has_extn("auth")
        plain = base64.b64encode(b"\\0postmaster@lab.test\\0lab-password").decode()
        report["auth"] = client.docmd("AUTH", "PLAIN " + plain)[0]
        report["mail"] = client.docmd("MAIL", "FROM:<a@lab.test>")[0]
    print(json.dumps(report))
    """)
    assert report == {"advertised_auth": False, "auth": 530, "mail": 530}
    assert standin.messages() == []
    auth = [e for e in standin.events() if e["event"] == "auth"]
    assert [(e["mechanism"], e["tls"]) for e in auth] == [("PLAIN", False)]


def test_standin_refuses_a_bad_password(lab, standin):
    report = run_python(lab, SMTP_CLIENT + """
    with smtplib.SMTP("10.77.0.1", 587, timeout=10) as client:
        client.starttls(context=context)
        try:
            client.login("postmaster@lab.test", "wrong")
        except smtplib.SMTPAuthenticationError as error:
            report["code"] = error.smtp_code
    print(json.dumps(report))
    """)
    assert report == {"code": 535}
    assert standin.messages() == []


def test_standin_modes_switch_without_restart(lab, standin):
    standin.set(login="other@lab.test", password="s3cret", mode="no_starttls")
    report = run_python(lab, SMTP_CLIENT + """
    import base64
    with smtplib.SMTP("10.77.0.1", 587, timeout=10) as client:
        client.ehlo()
        report["starttls_offered"] = client.has_extn("starttls")
        report["starttls"] = client.docmd("STARTTLS")[0]
        plain = base64.b64encode(b"\\0other@lab.test\\0s3cret").decode()
        report["auth"] = client.docmd("AUTH", "PLAIN " + plain)[0]
    print(json.dumps(report))
    """)
    assert report == {"starttls_offered": False, "starttls": 454, "auth": 538}

    standin.set(mode="reject_auth")
    report = run_python(lab, SMTP_CLIENT + """
    with smtplib.SMTP("10.77.0.1", 587, timeout=10) as client:
        client.starttls(context=context)
        try:
            client.login("other@lab.test", "s3cret")
            report["code"] = 235
        except smtplib.SMTPAuthenticationError as error:
            report["code"] = error.smtp_code
    print(json.dumps(report))
    """)
    assert report == {"code": 535}

    standin.set(mode="normal")
    report = run_python(lab, SMTP_CLIENT + """
    with smtplib.SMTP("10.77.0.1", 587, timeout=10) as client:
        client.starttls(context=context)
        report["code"] = client.login("other@lab.test", "s3cret")[0]
    print(json.dumps(report))
    """)
    assert report == {"code": 235}


def test_standin_down_and_up(lab, standin):
    lab.standin_stop()
    assert not lab.standin_running()
    assert not lab.probe.tcp_open("10.77.0.1", 587)
    lab.standin_start()
    assert lab.probe.tcp_open("10.77.0.1", 587)
    assert lab.probe.tcp_open("fd77::1", 465)


# --- the outside prober -------------------------------------------------------------------

def test_prober_sees_open_and_closed_ports(lab, box):
    for address in (box.ipv4, box.ipv6):
        assert lab.probe.tcp_open(address, 22), address
        assert not lab.probe.tcp_open(address, 8080), address
    box.listen(8080)
    for address in (box.ipv4, box.ipv6):
        assert lab.probe.tcp_open(address, 8080), address


def test_prober_smtp_relay_attempt_reports(lab, box):
    # A fresh box has no main.cf, so nothing listens on 25.
    report = lab.probe.smtp_relay_attempt(box.ipv6, 25)
    assert report["connected"] is False and report["accepted"] is False
    assert "refused" in report["error"].lower()


# --- teardown -------------------------------------------------------------------------------

def root_namespace_network() -> list[str]:
    return [subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            for argv in (["ip", "addr"], ["ip", "route"], ["ip", "-6", "route"])]


def lab_leftovers(config: LabConfig) -> dict:
    from lab import boxes, cgroups, network

    return {
        "netns": [n for n in network.list_netns() if n == config.netns or n.startswith(config.netns + "-")],
        "mounts": [m for m in boxes.mount_points() if m.startswith(str(config.state_dir) + "/")],
        "cgroups": [str(p) for p in cgroups.discover(config.netns)],
    }


@pytest.fixture
def scratch_lab(lab, tmp_path):
    """A second, separate lab (own namespace and state dir) that a test may tear down."""
    from lab.api import Lab

    # named after the session's lab (one per xdist worker, per person), never a fixed name
    config = LabConfig(state_dir=tmp_path / "state", cache_dir=lab.config.cache_dir,
                       netns=lab.config.netns + "x")
    scratch = Lab(config)
    try:
        yield scratch
    finally:
        scratch.down()


def alive(pid: int) -> bool:
    from lab.processes import start_time

    return start_time(pid) is not None


def test_down_removes_everything_and_is_idempotent(scratch_lab):
    before = root_namespace_network()
    scratch_lab.standin_start()
    boxes = scratch_lab.up(2)
    state = scratch_lab.store.load()
    pids = [state.standin.pid] + [state.boxes[b.name].process.pid for b in boxes]
    assert all(alive(pid) for pid in pids)
    assert lab_leftovers(scratch_lab.config)["mounts"]

    scratch_lab.down()
    assert lab_leftovers(scratch_lab.config) == {"netns": [], "mounts": [], "cgroups": []}
    assert not any(alive(pid) for pid in pids)
    assert scratch_lab.status()["boxes"] == []
    assert root_namespace_network() == before

    scratch_lab.down()  # twice: nothing left to do, no error


def test_down_cleans_up_after_a_lost_state_file(scratch_lab):
    """Crash mid-run: everything is found again under the lab's own names and paths."""
    box = scratch_lab.add_box()
    pid = scratch_lab.store.load().boxes[box.name].process.pid
    scratch_lab.config.state_file.unlink()

    scratch_lab.down()
    assert lab_leftovers(scratch_lab.config) == {"netns": [], "mounts": [], "cgroups": []}
    assert not alive(pid)


def test_down_after_a_half_finished_up(scratch_lab):
    """State names a box whose boot never got far: only some of its parts exist."""
    scratch_lab.ensure_network()
    scratch_lab.ensure_ssh_key()
    record = scratch_lab._allocate()  # allocated, overlay mounted, never launched
    from lab import boxes as box_ops
    box_ops.prepare_overlay(record, scratch_lab.ensure_image())

    scratch_lab.down()
    assert lab_leftovers(scratch_lab.config) == {"netns": [], "mounts": [], "cgroups": []}
