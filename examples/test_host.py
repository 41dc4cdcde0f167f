"""testinfra checks of a converged host, from outside pyinfra:

    pytest --hosts=ssh://deploy@mx1.example.com --sudo test_host.py
"""


def test_postfix_runs_and_listens_on_loopback_only(host):
    assert host.service("postfix").is_running
    for socket in host.socket.get_listening_sockets():
        if socket.endswith((":25", ":465", ":587")):
            assert "127.0.0.1" in socket or "::1" in socket, socket


def test_relay_password_is_root_only(host):
    secret = host.file("/etc/postfix/sasl_passwd")
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)


def test_firewall_is_active_and_denies_by_default(host):
    status = host.run("ufw status verbose").stdout
    assert "Status: active" in status
    assert "deny (incoming)" in status
