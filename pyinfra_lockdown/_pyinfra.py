"""The one place lockdown relies on pyinfra beyond its documented deploy API.

The dead-man check needs a NEW SSH connection to the host while the deploy's own session is
still open (conntrack lets an established session through whatever the new rules say, so
only a fresh connection proves the firewall lets SSH in). pyinfra has no public call for "a
second connection with this host's connection data", so this module builds a second instance
of the host's connector class and uses the connector interface every connector implements
(``connect``, ``run_shell_command``, ``disconnect``). Checked against the pyinfra releases in
pyproject.toml's range by the lab tests of the dead-man switch.
"""
from __future__ import annotations

import gevent
from pyinfra.api import StringCommand
from pyinfra.connectors.ssh import SSHConnector


def connects_over_ssh(host) -> bool:
    """The dead-man check can only judge hosts reached over SSH (not @local, @docker...)."""
    return issubclass(host.connector_cls, SSHConnector)


def new_connection_target(host, port: int | None) -> str:
    data = host.connector_cls(host.state, host).data
    return f"{data['ssh_hostname'] or host.name}:{port or data['ssh_port'] or 22}"


def new_ssh_connection_runs_true(state, host, port: int | None, timeout: float) -> None:
    """Open a second SSH connection (on ``port`` if given) and run ``true``; raises on failure.

    ``timeout`` bounds the whole attempt: ufw DROPs, so a blocked port only ever times out.
    """
    connector = host.connector_cls(state, host)
    if port is not None:
        connector.data["ssh_port"] = port
    try:
        with gevent.Timeout(timeout, TimeoutError(f"no answer within {timeout:g} s")):
            connector.connect()
            ok, output = connector.run_shell_command(StringCommand("true"))
    finally:
        if connector.client is not None:
            connector.client.close()
    if not ok:
        raise RuntimeError(f"`true` failed: {output.stderr or output.stdout}")
