"""Every exposed port (issue 25), on a converged box of each release, judged from the lab's
prober: a port published the way dockerd publishes one (lab/docker_style.py: docker0, a
"container" netns, dockerd's exact netfilter rules) and a stray listener on 0.0.0.0 let in by
a hand-made ufw rule both answer from outside; the audit FAILs each one by port, naming who
(Docker's DNAT, the process) and the fix, and reports a listener that ufw filters as PASS.
The fix: a converge puts lockdown's DOCKER-USER guard back (Docker flushes nothing, a user
may), `firewall_prune: all` removes the hand-made rule: both ports are then filtered from
outside and the audit passes; a declared port stays reachable through the guard."""
import json

import pytest
from pyinfra_lockdown.exposure import GUARD_BEGIN, GUARD_END

from lab.docker_style import publish_like_docker, stray_listener_script
from tests.lab.deploy_helpers import converge, new_credentials, report_path
from tests.lab.test_audit import assert_report_is_the_end, audit_from_probe_host
from tests.lab.test_firewall import cli_data

pytestmark = pytest.mark.lab
PUBLISHED, STRAY, FILTERED = 8088, 9099, 9100
# a process name chosen by a hostile local user: printed escaped, never trusted
HOSTILE_NAME = "db\x1b[2J\"x"


def audit(lab, box, env, **data):
    json_path = report_path()
    argv = lab.pyinfra_argv(hosts=[box]) + ["-y", "deploys/audit.py", "--data",
                                            f"audit_json={json_path}"]
    for key, value in cli_data(data).items():
        argv += ["--data", f"{key}={value}"]
    result = lab.run(argv, env=env, timeout=300)
    with open(json_path) as handle:
        report = json.load(handle)
    checks = {c["id"]: c for c in report["hosts"][0]["checks"]}
    return result, checks


def open_v4(lab, box, ports) -> set[int]:
    """The ports that answer the prober on the box's IPv4 address (dockerd without ip6tables
    publishes IPv4 only; over IPv6 the same ports are ufw's, filtered)."""
    return {port for _, port in lab.probe.open_ports([(box.ipv4, p) for p in ports])}


def start_listener(box, port: int, name: str) -> None:
    result = box.root(["/bin/sh", "-c", stray_listener_script(port, name)])
    assert result.returncode == 0, result.stderr


def test_exposed_ports_fail_by_name_filtered_pass_and_the_fix_closes_them(lab, box, standin):
    env = new_credentials(standin)
    converge(lab, [box], env)
    clean, checks = audit(lab, box, env)
    assert_report_is_the_end(clean, clean=True)
    assert checks["outside.ports"]["verdict"] == "PASS", checks["outside.ports"]
    assert checks["ufw.docker_user"]["verdict"] == "PASS", checks["ufw.docker_user"]

    # Docker publishes 8088 the way dockerd does, two processes listen on 0.0.0.0: with the
    # guard in place, all three are filtered from outside, and the audit says so.
    publish_like_docker(box, PUBLISHED)
    start_listener(box, STRAY, HOSTILE_NAME)
    start_listener(box, FILTERED, "quiet-db")
    assert open_v4(lab, box, (PUBLISHED, STRAY, FILTERED)) == set()
    result, checks = audit(lab, box, env)
    assert_report_is_the_end(result, clean=True)
    for port in (PUBLISHED, STRAY, FILTERED):
        assert checks[f"outside.{port}/tcp"]["verdict"] == "PASS", checks[f"outside.{port}/tcp"]
    assert "quiet-db" in checks[f"outside.{FILTERED}/tcp"]["found"]

    # A host converged before the guard existed (the box): no block in after.rules,
    # DOCKER-USER as dockerd leaves it (empty); and a hand-made rule for the stray listener.
    strip = (f"sed -i '/^{GUARD_BEGIN}/,/^{GUARD_END}/d' /etc/ufw/after.rules "
             "/etc/ufw/after6.rules && iptables -F DOCKER-USER && ip6tables -F DOCKER-USER "
             f"&& ufw allow {STRAY}/tcp")
    assert box.root(strip).returncode == 0
    assert open_v4(lab, box, (PUBLISHED, STRAY, FILTERED)) == {PUBLISHED, STRAY}

    result, checks = audit(lab, box, env)
    assert_report_is_the_end(result, clean=False)
    published, stray = checks[f"outside.{PUBLISHED}/tcp"], checks[f"outside.{STRAY}/tcp"]
    assert published["verdict"] == "FAIL" and f"{box.ipv4}:{PUBLISHED}" in published["found"]
    assert "published by Docker" in published["found"] and "172.17.0.2:80" in published["found"]
    assert "DOCKER-USER guard" in published["found"]  # the fix is named
    assert stray["verdict"] == "FAIL" and f"{box.ipv4}:{STRAY}" in stray["found"]
    assert "firewall_allowed" in stray["found"] and "127.0.0.1" in stray["found"]
    assert checks[f"outside.{FILTERED}/tcp"]["verdict"] == "PASS"
    assert "filtered from outside" in checks[f"outside.{FILTERED}/tcp"]["found"]
    assert "quiet-db" in checks[f"outside.{FILTERED}/tcp"]["found"]
    assert checks["ufw.docker_user"]["verdict"] == "FAIL"
    table = result.stdout
    assert f"outside.{PUBLISHED}/tcp" in table and f"outside.{STRAY}/tcp" in table
    assert "\x1b" not in table and "db\\x1b[2J" in table  # the hostile name, escaped

    # The fix: one converge (guard back, the hand-made rule pruned); no second change.
    _, totals = converge(lab, [box], env, data={"firewall_prune": "all"})
    assert totals["success"] == 2, totals  # the hand-made rule pruned, the guard restored
    assert open_v4(lab, box, (PUBLISHED, STRAY, FILTERED)) == set()
    result, checks = audit(lab, box, env, firewall_prune="all")
    assert_report_is_the_end(result, clean=True)
    for port in (PUBLISHED, STRAY, FILTERED):
        assert checks[f"outside.{port}/tcp"]["verdict"] == "PASS", checks[f"outside.{port}/tcp"]
    _, totals = converge(lab, [box], env, data={"firewall_prune": "all"})
    assert totals["success"] == 0 and totals["error"] == 0, totals  # nothing left to change

    # A published port the user declares stays public through the guard; the audit then
    # has nothing undeclared to say about it.
    converge(lab, [box], env, data=cli_data({"firewall_prune": "all",
                                             "firewall_allowed": ["ssh", f"{PUBLISHED}/tcp"]}))
    assert open_v4(lab, box, (PUBLISHED, STRAY)) == {PUBLISHED}
    result, checks = audit(lab, box, env, firewall_prune="all",
                           firewall_allowed=["ssh", f"{PUBLISHED}/tcp"])
    assert_report_is_the_end(result, clean=True)
    assert f"outside.{PUBLISHED}/tcp" not in checks


def test_a_probes_group_host_probes_the_exposed_ports_in_one_command(lab, two_boxes, standin):
    """Production's outside view: the `probes` group's host tries the target's undeclared
    ports (PortProbe, one command for the run) after every host was read."""
    target, probe = two_boxes
    env = new_credentials(standin)
    converge(lab, [target], env)
    start_listener(target, STRAY, "stray-db")
    start_listener(target, FILTERED, "quiet-db")
    assert target.root(f"ufw allow {STRAY}/tcp").returncode == 0

    result, checks = audit_from_probe_host(lab, target, probe, env)
    assert_report_is_the_end(result, clean=False)
    stray, quiet = checks[f"outside.{STRAY}/tcp"], checks[f"outside.{FILTERED}/tcp"]
    assert stray["verdict"] == "FAIL" and f"{target.ipv4}:{STRAY}" in stray["found"]
    assert stray["value"]["via"] == probe.name and "stray-db" in stray["found"]
    assert quiet["verdict"] == "PASS" and f"via {probe.name}" in quiet["found"]
    assert checks["outside.smtp"]["verdict"] == "PASS"
