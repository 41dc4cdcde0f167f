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


def test_the_ssh_connector_is_wrapped_once():
    from pyinfra.connectors.ssh import SSHConnector

    assert SSHConnector.run_shell_command.lockdown_lost_connection is True
    assert not getattr(SSHConnector.run_shell_command.__wrapped__, "lockdown_lost_connection", False)
