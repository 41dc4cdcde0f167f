"""A host with IPv6 switched off (issue 26 item 3): `net.ipv6.conf.all.disable_ipv6=1`, as many
VPS images ship, set in the box's network namespace before the first converge. The box still
converges (ufw with IPV6=yes, Postfix loopback-only), relays a mail to the stand-in, audits
clean from inside and outside, and a second run changes nothing."""
import json
import subprocess

import pytest

from tests.lab.deploy_helpers import converge, new_credentials, pyinfra, queue, send_mail, wait_for_mail

pytestmark = pytest.mark.lab
IPV6_OFF = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


def switch_ipv6_off(box) -> None:
    """In the box's own network namespace (the box itself cannot write /proc/sys)."""
    for setting in IPV6_OFF:
        subprocess.run(["ip", "netns", "exec", box.netns, "sysctl", "-q", "-w", setting],
                       check=True, timeout=30)


def test_ipv6_off_host_converges_relays_audits_clean_and_reruns_unchanged(
        lab, box, standin, tmp_path):
    switch_ipv6_off(box)
    # Control: the box really has no IPv6 now, not even on loopback.
    assert box.root("cat /proc/sys/net/ipv6/conf/all/disable_ipv6").stdout.strip() == "1"
    assert box.root("ip -6 -o addr show").stdout.strip() == ""

    env = new_credentials(standin)
    result, totals = converge(lab, [box], env)
    assert totals["error"] == 0, totals
    assert "relay canary delivered" in result.stdout + result.stderr, result.stderr[-3000:]

    standin.clear()
    send_mail(box, subject="from an IPv6-off host")
    messages = wait_for_mail(standin, 1, timeout=30)
    assert len(messages) == 1, f"nothing arrived; queue:\n{queue(box)}"
    assert messages[0]["tls"] is True and "Subject: from an IPv6-off host" in messages[0]["data"]

    report = tmp_path / "audit.json"
    audited = pyinfra(lab, [box], "deploys/audit.py", env=env, data={"audit_json": str(report)})
    checks = {c["id"]: c for c in json.loads(report.read_text())["hosts"][0]["checks"]}
    verdicts = {check_id: check["verdict"] for check_id, check in checks.items()}
    assert audited.returncode == 0 and set(verdicts.values()) == {"PASS"}, (
        verdicts, audited.stdout[-3000:])
    assert verdicts["outside.smtp"] == "PASS" and verdicts["ufw.ipv6"] == "PASS"

    _, again = converge(lab, [box], env)
    assert again["success"] == 0 and again["error"] == 0, again
    assert box.root("cat /proc/sys/net/ipv6/conf/all/disable_ipv6").stdout.strip() == "1"
