"""A connection lost mid-run fails only its host (pyinfra_lockdown/_pyinfra.py)."""
import pytest
from paramiko import SSHException

from pyinfra_lockdown import _pyinfra


def test_eoferror_from_a_dropped_connection_becomes_an_sshexception_naming_the_cause():
    def drops(self, command):
        raise EOFError()

    run = _pyinfra._lost_connection_fails_only_its_host(drops)
    with pytest.raises(SSHException, match="SSH connection was lost mid-run.*run the deploy again"):
        run(object(), "true")


class _ClosedTransport:
    def is_active(self):
        return False


class _Client:
    def __init__(self, transport):
        self.transport = transport

    def get_transport(self):
        return self.transport


class _Dropped:
    client = _Client(_ClosedTransport())


def test_a_session_paramiko_saw_close_is_named_as_lost_too():
    def closed(self, command):
        raise SSHException("SSH session not active")

    run = _pyinfra._lost_connection_fails_only_its_host(closed)
    with pytest.raises(SSHException, match="SSH connection was lost mid-run"):
        run(_Dropped(), "true")


def test_other_ssh_errors_on_a_live_transport_pass_unchanged():
    def refused(self, command):
        raise SSHException("channel open refused")

    run = _pyinfra._lost_connection_fails_only_its_host(refused)
    with pytest.raises(SSHException, match="^channel open refused$"):
        run(object(), "true")


def test_importing_lockdown_patches_nothing():
    import subprocess
    import sys

    code = ("import pyinfra_lockdown; from pyinfra.connectors.ssh import SSHConnector; "
            "print(getattr(SSHConnector.run_shell_command, 'lockdown_lost_connection', False))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
    assert imported.stdout.strip() == "False", imported.stderr


class _SshHost:
    def __init__(self):
        from pyinfra.connectors.ssh import SSHConnector

        self.connector = SSHConnector.__new__(SSHConnector)  # no state: only its methods count


def test_a_deploy_wraps_its_own_hosts_connector_once_and_not_the_class():
    from pyinfra.connectors.ssh import SSHConnector

    host, other = _SshHost(), _SshHost()
    _pyinfra.name_lost_connections(host)
    wrapped = host.connector.run_shell_command
    _pyinfra.name_lost_connections(host)
    assert host.connector.run_shell_command == wrapped  # once, not wrapped twice
    assert wrapped.lockdown_lost_connection is True
    assert wrapped.__wrapped__ is SSHConnector.run_shell_command
    assert not getattr(other.connector.run_shell_command, "lockdown_lost_connection", False)
    assert not getattr(SSHConnector.run_shell_command, "lockdown_lost_connection", False)


def test_a_host_not_reached_over_ssh_is_left_alone():
    class _Local:
        connector = object()

    _pyinfra.name_lost_connections(_Local())  # no error, nothing to wrap


class _Connector:
    """Records the connection data the dead-man check's new connection was made with."""

    made: list[dict] = []

    def __init__(self, state, host):
        self.data = dict(host.data)
        self.client = None

    def connect(self):
        _Connector.made.append(self.data)

    def run_shell_command(self, command):
        return True, None


class _Host:
    connector_cls = _Connector

    def __init__(self, data):
        self.data = data


@pytest.mark.parametrize("given, expected", [
    ({}, {"banner_timeout": 42, "auth_timeout": 42}),
    ({"banner_timeout": 5, "look_for_keys": False},
     {"banner_timeout": 5, "auth_timeout": 42, "look_for_keys": False}),
])
def test_the_new_connection_waits_for_a_banner_as_long_as_the_check_does(given, expected):
    _Connector.made.clear()
    host = _Host({"ssh_paramiko_connect_kwargs": given})
    _pyinfra.new_ssh_connection_runs_true(None, host, None, 42)
    assert _Connector.made[0]["ssh_paramiko_connect_kwargs"] == expected
    assert host.data["ssh_paramiko_connect_kwargs"] == given  # the host's own data untouched


class _SocketTransport:
    def __init__(self, sock):
        self.sock = sock


def test_each_ssh_message_goes_out_at_once_on_a_tcp_connection():
    """TCP_NODELAY on the controller's socket (``send_at_once``): without it each small SSH
    message of a command waited for the host's delayed ACK of the one before (40 ms)."""
    import socket

    class _Host:
        def __init__(self, sock):
            self.connector = type("C", (), {"client": _Client(_SocketTransport(sock))})()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        _pyinfra.send_at_once(_Host(tcp))
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    _pyinfra.send_at_once(_Host(object()))  # a ProxyCommand's pipe: left alone
    _pyinfra.send_at_once(type("L", (), {"connector": object()})())  # @local: no client
    _pyinfra.send_at_once(type("N", (), {"connector": type("C", (), {"client": None})()})())
