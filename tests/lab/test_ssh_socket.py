"""sshd started by ssh.socket (Ubuntu 24.04's way, an admin's choice on Debian): "ssh" in
firewall_allowed, the lockout guard, the dead-man check and the audit all use the ports sshd
really accepts on - the socket's, not sshd_config's. Run on a bookworm and a trixie box."""
import json

import pytest

from tests.lab.deploy_helpers import converge, pyinfra
from tests.lab.test_firewall import FIREWALL, assert_open, cli_data, firewall

pytestmark = pytest.mark.lab
DROP_IN = "/etc/systemd/system/ssh.socket.d/lab-listen.conf"


def socket_on(box, *ports):
    """ssh.service off, ssh.socket on ``ports`` (a drop-in that resets ListenStream)."""
    listens = "".join(f"ListenStream={port}\\n" for port in ports)
    result = box.root(
        f"mkdir -p {DROP_IN.rsplit('/', 1)[0]} && "
        f"printf '[Socket]\\nListenStream=\\n{listens}' > {DROP_IN} && systemctl daemon-reload && "
        "systemctl disable --now ssh.service && systemctl enable ssh.socket && "
        "systemctl restart ssh.socket && systemctl is-active ssh.socket")
    assert result.returncode == 0, result.stdout + result.stderr


def service_on(box, port):
    result = box.root(
        f"printf 'Port {port}\\n' > /etc/ssh/sshd_config.d/lab-port.conf && "
        "systemctl disable --now ssh.socket && systemctl enable ssh.service && "
        "systemctl restart ssh.service && systemctl is-active ssh.service")
    assert result.returncode == 0, result.stdout + result.stderr


def audit_ssh_check(lab, box, tmp_path, ssh_port) -> dict:
    path = tmp_path / "audit.json"
    pyinfra(lab, [box], "deploys/audit.py", env={},
            data={"ssh_port": ssh_port, "audit_probe": "off", "audit_json": str(path)})
    report = json.loads(path.read_text())
    return next(c for c in report["hosts"][0]["checks"] if c["id"] == "ufw.ssh_allowed")


def converges_twice(lab, box, ssh_port):
    firewall(lab, box, ssh_port=ssh_port)
    _, totals = firewall(lab, box, ssh_port=ssh_port)
    assert totals["success"] == 0 and totals["error"] == 0, totals


def test_socket_on_2222_only(lab, box, tmp_path):
    socket_on(box, 2222)
    converges_twice(lab, box, 2222)  # the first run includes the dead-man check on 2222
    assert_open(lab, box, opened=(2222,), closed=(22,))
    assert audit_ssh_check(lab, box, tmp_path, 2222)["verdict"] == "PASS"

    socket_on(box, 2222, 2233)  # a second port added behind the deploy's back
    check = audit_ssh_check(lab, box, tmp_path, 2222)
    assert check["verdict"] == "FAIL" and "2233" in check["expected"], check


def test_socket_on_22_and_2222(lab, box, tmp_path):
    socket_on(box, 22, 2222)
    converges_twice(lab, box, 22)
    assert_open(lab, box, opened=(22, 2222))
    assert audit_ssh_check(lab, box, tmp_path, 22)["verdict"] == "PASS"


def test_service_on_2200_with_the_socket_inactive(lab, box, tmp_path):
    service_on(box, 2200)
    converges_twice(lab, box, 2200)
    assert_open(lab, box, opened=(2200,), closed=(22,))
    assert audit_ssh_check(lab, box, tmp_path, 2200)["verdict"] == "PASS"


def test_moving_from_the_service_to_the_socket_between_two_runs(lab, box, tmp_path):
    converges_twice(lab, box, 22)  # ssh.service on 22, as installed
    socket_on(box, 22, 2222)  # the admin moves sshd to the socket, adding 2222
    converges_twice(lab, box, 22)
    assert_open(lab, box, opened=(22, 2222))
    socket_on(box, 2222)  # and drops 22: the deploy follows on 2222 and closes 22
    converges_twice(lab, box, 2222)
    assert_open(lab, box, opened=(2222,), closed=(22,))
    assert audit_ssh_check(lab, box, tmp_path, 2222)["verdict"] == "PASS"


def test_a_refusal_names_the_real_ports_and_the_fix(lab, box):
    socket_on(box, 2222)
    before = box.root("ufw status verbose; cat /etc/ufw/user.rules").stdout
    result = pyinfra(lab, [box], FIREWALL, env={},
                     data=cli_data({"ssh_port": 2222, "firewall_allowed": ["http/tcp"]}))
    assert result.returncode != 0
    assert "sshd accepts connections on port(s) 2222" in result.stderr, result.stderr[-2000:]
    assert 'Add "ssh" to firewall_allowed' in result.stderr
    assert box.root("ufw status verbose; cat /etc/ufw/user.rules").stdout == before


def test_converge_on_the_socket_relays_mail_too(lab, box, standin):
    from tests.lab.deploy_helpers import new_credentials, send_mail, wait_for_mail

    socket_on(box, 2222)
    env = new_credentials(standin)
    converge(lab, [box], env, data={"ssh_port": 2222})
    send_mail(box, subject="over the socket")
    # not counting the converge's relay canary, which may or may not have arrived yet
    messages = wait_for_mail(standin, 1, timeout=15)
    assert ["Subject: over the socket" in m["data"] for m in messages] == [True]
