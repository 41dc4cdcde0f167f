"""Mail leaves only through the relay (issue 25 item 3, firewall_mail_relay_only) on real boxes.

A program on the converged box that is not Postfix (run as www-data: the compromised web app)
opens TCP to an outside lab address that speaks SMTP: the second stand-in (10.77.0.3, an "MX
host" listening on 25, 465 and 587) and the relay stand-in's IPv6 address. 25 and 465 are
refused at once (ufw's reject), while the canary and a test mail still arrive at the relay
stand-in; deleting one rule, or flushing the kernel's copy, is seen by the audit and repaired
by the next converge; the rules survive a reboot; turning the key off opens 25 again (the same
connection then gets the banner: the test can fail). A fallback on another SMTP port keeps that
port open.
"""
from __future__ import annotations

import json
import time

import pytest

from lab import addresses as A
from lab.relay_names import SECOND_RELAY_NAME
from lab.standin import second
from tests.lab.deploy_helpers import (
    audit_checks,
    canaries,
    converge,
    new_credentials,
    send_mail,
    wait_for_mail,
)
from tests.security_ledger import record

pytestmark = pytest.mark.lab
OFF = {"firewall_mail_relay_only": "false"}
WEB_APP_USER = "www-data"


def direct_smtp(box, address: str, port: int) -> tuple[bool, str, float]:
    """(connected, what the box printed, seconds): a TCP connection opened by ``WEB_APP_USER``
    on the box, reading the SMTP banner's first bytes when the port talks first (not 465)."""
    read = "" if port == 465 else " && head -c 3 <&3"
    started = time.monotonic()
    result = box.root(["runuser", "-u", WEB_APP_USER, "--", "timeout", "10", "bash", "-c",
                       f"exec 3<>/dev/tcp/{address}/{port}{read}"])
    return (result.returncode == 0, (result.stdout + result.stderr).strip(),
            round(time.monotonic() - started, 2))


def refused_everywhere(box, targets) -> dict:
    """The targets a direct connection still reached (empty when all were refused)."""
    reached = {}
    for address, port in targets:
        connected, printed, seconds = direct_smtp(box, address, port)
        if connected or "refused" not in printed.lower():
            reached[f"{address}:{port}"] = (printed, seconds)
    return reached


def connections_from(relay, box) -> list[dict]:
    return [e for e in relay.events() if e["event"] == "connect" and e["peer"] in
            (box.ipv4, box.ipv6)]


# to 25 and 465 of another host (IPv4) and of the relay's own address (IPv6)
CLOSED = [(A.SECOND_RELAY_V4, 25), (A.SECOND_RELAY_V4, 465), (A.GATEWAY_V6, 25),
          (A.GATEWAY_V6, 465)]


def test_direct_smtp_is_refused_while_relayed_mail_arrives_and_the_audit_guards_it(
        lab, box, standin, tmp_path, request):
    env = new_credentials(standin)
    with second(lab.config) as mx:
        result, _ = converge(lab, [box], env)
        assert len(canaries(standin.messages())) == 1, (result.stdout + result.stderr)[-3000:]

        reached = refused_everywhere(box, CLOSED)
        record(attack="a program that is not Postfix (www-data) hands mail to an MX host "
               "directly on 25/465, around the relay", where=request.node.nodeid,
               held=not reached and connections_from(mx, box) == [],
               outcome="refused at once (ufw reject, IPv4 and IPv6); the MX host saw no "
               "connection" if not reached else f"NOT held: reached {reached}")
        assert reached == {} and connections_from(mx, box) == []
        # refused at once (tcp-reset), not a time-out a program would wait for
        assert direct_smtp(box, A.SECOND_RELAY_V4, 25)[2] < 3
        # the relay's port stays open (DNS, apt and NTP are other ports: untouched)
        assert direct_smtp(box, A.GATEWAY_V4, 587)[:2] == (True, "220")
        assert direct_smtp(box, A.GATEWAY_V6, 587)[:2] == (True, "220")

        send_mail(box, subject="through the relay")
        arrived = wait_for_mail(standin, 1)
        assert [m for m in arrived if "Subject: through the relay" in m["data"]], arrived

        _, totals = converge(lab, [box], env)
        assert totals["success"] == 0 and totals["error"] == 0, totals

        checks = audit_checks(lab, box, env, tmp_path)
        assert checks["ufw.mail_egress"]["verdict"] == "PASS", checks["ufw.mail_egress"]
        assert checks["ufw.rules"]["verdict"] == "PASS", checks["ufw.rules"]

        # drift: one family's rule deleted by hand -> the audit names it, a converge repairs it
        assert box.root("ufw delete reject out log proto tcp from ::/0 to any port 25"
                        ).returncode == 0
        assert direct_smtp(box, A.GATEWAY_V6, 25)[:2] == (True, "220")  # the drift is real
        drifted = audit_checks(lab, box, env, tmp_path)
        assert drifted["ufw.mail_egress"]["verdict"] == "FAIL", drifted["ufw.mail_egress"]
        assert "port 25 open outward over IPv6" in drifted["ufw.mail_egress"]["found"]
        assert "Run the firewall deploy" in drifted["ufw.mail_egress"]["found"]
        assert drifted["ufw.rules"]["verdict"] == "FAIL"
        _, totals = converge(lab, [box], env)
        assert totals["success"] == 1, json.dumps(totals)  # the rules operation only
        assert refused_everywhere(box, CLOSED) == {}

        # a reboot: ufw loads the same rules at boot
        lab.restart_box(box)
        assert refused_everywhere(box, CLOSED) == {}
        assert audit_checks(lab, box, env, tmp_path)["ufw.mail_egress"]["verdict"] == "PASS"

        # the kernel's copy flushed while user.rules still lists the rules (ufw status shows
        # them): ufw.kernel names it, the next converge reloads ufw into the kernel
        assert box.root("iptables -F ufw-user-output").returncode == 0
        assert direct_smtp(box, A.SECOND_RELAY_V4, 25)[:2] == (True, "220")
        flushed = audit_checks(lab, box, env, tmp_path)
        assert flushed["ufw.kernel"]["verdict"] == "FAIL", flushed["ufw.kernel"]
        assert "outgoing user rule lines are loaded" in flushed["ufw.kernel"]["found"]
        converge(lab, [box], env)
        assert refused_everywhere(box, CLOSED) == {}
        assert audit_checks(lab, box, env, tmp_path)["ufw.kernel"]["verdict"] == "PASS"

        # off: outgoing SMTP is the default outgoing policy's again (allow)
        converge(lab, [box], env, data=OFF)
        assert direct_smtp(box, A.SECOND_RELAY_V4, 25)[:2] == (True, "220")
        assert direct_smtp(box, A.GATEWAY_V6, 465)[0] is True
        assert "OUT" not in box.root("ufw status").stdout
        off = audit_checks(lab, box, env, tmp_path, OFF)
        assert off["ufw.mail_egress"]["verdict"] == "N/A" and off["ufw.rules"]["verdict"] == "PASS"


def test_a_fallback_on_another_smtp_port_keeps_that_port_open(lab, box, standin):
    """The relay on 2525, its fallback on 587: 587 must stay open outward or the fallback is
    silently broken; 25 and 465 close. The fallback's own canary proves its path."""
    env = new_credentials(standin)
    with second(lab.config) as fallback:
        password = "pw-fallback-egress"
        fallback.set(login="postmaster@mg2.lab.test", password=password, mode="normal")
        env = {**env, "LOCKDOWN_FALLBACK1_LOGIN": "postmaster@mg2.lab.test",
               "LOCKDOWN_FALLBACK1_PASSWORD": password}
        data = {"relay_port": 2525,
                "relay_fallbacks": json.dumps([{"host": SECOND_RELAY_NAME, "port": 587}])}
        result, _ = converge(lab, [box], env, data=data)
        output = result.stdout + result.stderr
        assert f"relay canary delivered via fallback 1 [{SECOND_RELAY_NAME}]:587" in output, \
            output[-3000:]
        assert len(canaries(fallback.messages())) == 1
        assert len(canaries(standin.messages())) == 1
        assert refused_everywhere(box, CLOSED) == {}
        assert "587" not in box.root("ufw status | grep OUT").stdout
