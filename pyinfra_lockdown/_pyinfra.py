"""The one place lockdown relies on pyinfra beyond its documented deploy API.

The dead-man check needs a NEW SSH connection to the host while the deploy's own session is
still open (conntrack lets an established session through whatever the new rules say, so
only a fresh connection proves the firewall lets SSH in). pyinfra has no public call for "a
second connection with this host's connection data", so this module builds a second instance
of the host's connector class and uses the connector interface every connector implements
(``connect``, ``run_shell_command``, ``disconnect``). Checked against the pyinfra releases in
pyproject.toml's range by the lab tests of the dead-man switch.

A deploy asks an operation whether it has anything to do by running the operation's own
generator, which pyinfra keeps as ``op._inner`` (pyinfra's operations use it to call one another,
its error for an operation called inside another names it, pyinfra-testing runs operations
through it): ``operation_generator``.

Each deploy also turns off Nagle's algorithm on the controller's end of the host's connection
(``send_at_once``): a remote command is a few small SSH messages, and each waited up to 40 ms
for the host's delayed acknowledgement of the one before.

It also makes a connection lost mid-run fail only that host (``name_lost_connections``, applied
by each deploy to its host's connector; see ``LOST_CONNECTION``), checked by
tests/lab/test_partial_failure.py.
"""
from __future__ import annotations

import contextlib
import functools
import socket
import types
from collections.abc import Callable, Generator
from typing import Any, ParamSpec

import gevent
from paramiko import SSHException
from pyinfra.api import State, StringCommand
from pyinfra.api.host import Host
from pyinfra.connectors.ssh import SSHConnector

P = ParamSpec("P")


def operation_generator(op: Callable[P, Any]) -> Callable[P, Generator[Any, Any, Any]]:
    """The undecorated generator of the pyinfra operation ``op`` (``@operation()``'s
    ``_inner``): the same code the operation runs, without pyinfra's per-call bookkeeping."""
    generator: Callable[P, Generator[Any, Any, Any]] = op._inner  # type: ignore[attr-defined]
    return generator


def connects_over_ssh(host: Host) -> bool:
    """The dead-man check can only judge hosts reached over SSH (not @local, @docker...)."""
    return issubclass(host.connector_cls, SSHConnector)


def new_connection_target(host: Host, port: int | None) -> str:
    data = host.connector_cls(host.state, host).data
    return f"{data['ssh_hostname'] or host.name}:{port or data['ssh_port'] or 22}"


def new_ssh_connection_runs_true(state: State, host: Host, port: int | None,
                                 timeout: float) -> None:
    """Open a second SSH connection (on ``port`` if given) and run ``true``; raises on failure.

    ``timeout`` bounds the whole attempt: ufw DROPs, so a blocked port only ever times out.
    paramiko's own waits for the banner and the authentication (15 s and 30 s, which pyinfra
    leaves alone) get the same bound, unless host data ``ssh_paramiko_connect_kwargs`` sets
    them: a busy host or controller may take longer than 15 s to show its banner.
    """
    connector: Any = host.connector_cls(state, host)  # an SSHConnector: connects_over_ssh
    if port is not None:
        connector.data["ssh_port"] = port
    connect_kwargs = dict(connector.data.get("ssh_paramiko_connect_kwargs") or {})
    for wait in ("banner_timeout", "auth_timeout"):
        connect_kwargs.setdefault(wait, timeout)
    connector.data["ssh_paramiko_connect_kwargs"] = connect_kwargs
    try:
        with gevent.Timeout(timeout, TimeoutError(f"no answer within {timeout:g} s")):
            connector.connect()
            _send_at_once(connector.client)
            ok, output = connector.run_shell_command(StringCommand("true"))
    finally:
        if connector.client is not None:
            connector.client.close()
    if not ok:
        raise RuntimeError(f"`true` failed: {output.stderr or output.stdout}")


def send_at_once(host: Host) -> None:
    """Make the controller's end of ``host``'s SSH connection send each message at once
    (``TCP_NODELAY``). Each remote command is a few small SSH messages in a row (open a
    channel, exec, stdin, its end); with Nagle's algorithm the next one waits until the host
    acknowledges the one before, and the host delays its acknowledgement up to 40 ms
    (Linux's delayed ACK): measured on a lab box, a `sudo true` took 50 ms and one with
    stdin 88 ms, 6.5 ms and 8-10 ms without the wait. Each deploy calls it before its state
    read; a connection that is not paramiko's over TCP (a ProxyCommand, @local) is left alone.
    """
    _send_at_once(getattr(host.connector, "client", None))


def _send_at_once(client: Any) -> None:
    transport = client.get_transport() if client is not None else None
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the connection is gone: the next command says so
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# A host whose SSH connection drops mid-run (sshd killed, reboot, link cut) makes paramiko
# raise EOFError when the next command opens its channel. pyinfra 3 fails a host on OSError,
# SSHException or a timeout but lets EOFError escape: the whole run ends with "An internal
# exception occurred" and the other hosts stop where they are, half-applied. Turned into an
# SSHException, it fails only that host, with a line saying what happened and what to do.
# When paramiko already saw the transport close, it raises SSHException("SSH session not
# active") instead: the same loss, told the same way.
LOST_CONNECTION = ("the SSH connection was lost mid-run (sshd stopped, the host rebooted or "
                   "the network dropped); operations after the last one reported here did not "
                   "run on this host. Check that SSH gets in, then run the deploy again")


def _lost_connection_fails_only_its_host(
        run_shell_command: Callable[..., tuple[bool, Any]]) -> Callable[..., tuple[bool, Any]]:
    @functools.wraps(run_shell_command)
    def run(self: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        try:
            result = run_shell_command(self, *args, **kwargs)
        except EOFError as error:
            raise SSHException(LOST_CONNECTION) from error
        except SSHException as error:
            if _transport_active(self):
                raise
            raise SSHException(LOST_CONNECTION) from error
        # Dropped while the command ran: no exit status, the transport is gone. Say so, rather
        # than pyinfra's bare "executed 0 commands".
        if not result[0] and not _transport_active(self):
            raise SSHException(LOST_CONNECTION)
        return result
    run.lockdown_lost_connection = True  # type: ignore[attr-defined]
    return run


def _transport_active(connector: Any) -> bool:
    client = getattr(connector, "client", None)
    transport = client.get_transport() if client is not None else None
    return transport is None or transport.is_active()  # None: not paramiko's, so not judged


def name_lost_connections(host: Host) -> None:
    """Make a connection to ``host`` lost mid-run fail only this host, with ``LOST_CONNECTION``.

    Each deploy applies it to the host it runs on, before its first read: it wraps the
    ``run_shell_command`` of that host's own connector (an instance attribute), never the
    ``SSHConnector`` class, so importing lockdown changes nothing and hosts no lockdown deploy
    runs on keep pyinfra's behaviour. A host reached otherwise (@local, @docker) is left alone.
    """
    connector = host.connector
    if not isinstance(connector, SSHConnector):
        return
    if getattr(connector.run_shell_command, "lockdown_lost_connection", False):
        return
    wrapped = _lost_connection_fails_only_its_host(type(connector).run_shell_command)
    connector.run_shell_command = types.MethodType(wrapped, connector)  # type: ignore[method-assign]
