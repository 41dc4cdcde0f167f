"""Simulated hosts: one SSH server process that answers as many hosts as connect to it, each
exactly as a real lab box answered the same command (issue 28 item 2).

    python -m bench.simhosts record OUT.jsonl --forward ADDRESS --key KEY [--port P]
    python -m bench.simhosts replay CAPTURE.jsonl [CAPTURE.jsonl ...] [--port P]

record   a proxy (run it in the lab namespace): every command a client runs is run on the real
         box at ADDRESS (as `deploy`, with the lab key) and appended to OUT.jsonl: the command,
         its stdin, stdout, stderr and exit status. Point pyinfra at it to capture a run.
replay   the simulated fleet: it listens on 127.0.0.1 only (loopback: no traffic leaves the
         machine) and accepts any user and key. A host is its SSH user name (the inventory
         gives each simulated host its own, so the dead-man check's second connection is the
         same host). Each command is answered with the capture's answer to the same command,
         the n-th time a host runs it with the n-th recorded answer (the last one after that).
         Hex tokens of 12+ characters (the canary's id, temp names) are compared as
         placeholders and the recorded ones replaced by the client's in the answer. A command
         the capture lacks answers exit 127 and is counted (`misses` in the ready file).

The server is plain threads (paramiko's transport thread per connection), no gevent: its CPU
is not the controller's, which `bench.rusage` measures in the pyinfra process alone.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
from collections import defaultdict
from pathlib import Path

import paramiko

HEX = re.compile(r"[0-9a-f]{12,}")
BACKLOG = 4096
SLOW_PEER = 300  # s; bench/sim_config.py gives the controller's side 120 s


def normalized(command: str) -> str:
    return HEX.sub("<hex>", command)


class Capture:
    """Recorded answers by normalized command, in the order they were recorded."""

    def __init__(self, paths: list[Path]):
        self.answers: dict[str, list[dict]] = defaultdict(list)
        for path in paths:
            for line in Path(path).read_text().splitlines():
                record = json.loads(line)
                self.answers[normalized(record["command"])].append(record)

    def answer(self, command: str, occurrence: int) -> dict | None:
        recorded = self.answers.get(normalized(command))
        if not recorded:
            return None
        record = recorded[min(occurrence, len(recorded) - 1)]
        mapping = dict(zip(HEX.findall(record["command"]), HEX.findall(command)))
        return {**record, "stdout": _substituted(record["stdout"], mapping),
                "stderr": _substituted(record["stderr"], mapping)}


def _substituted(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        if old != new:
            text = text.replace(old, new)
    return text


class Fleet:
    """The replayed hosts' state: how often each host ran each command, what was missed."""

    def __init__(self, capture: Capture):
        self.capture = capture
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], int] = defaultdict(int)
        self.hosts: set[str] = set()
        self.commands = 0
        self.misses: list[str] = []

    def answer(self, host: str, command: str) -> dict | None:
        with self.lock:
            key = (host, normalized(command))
            occurrence = self.seen[key]
            self.seen[key] += 1
            self.hosts.add(host)
            self.commands += 1
        found = self.capture.answer(command, occurrence)
        if found is None:
            with self.lock:
                self.misses.append(command[:300])
        return found


def _read_stdin(channel: paramiko.Channel) -> bytes:
    data = b""
    while True:
        chunk = channel.recv(65536)
        if not chunk:
            return data
        data += chunk


def _finish(channel: paramiko.Channel, stdout: str, stderr: str, status: int) -> None:
    try:
        if stdout:
            channel.sendall(stdout.encode())
        if stderr:
            channel.sendall_stderr(stderr.encode())
        channel.send_exit_status(status)
    finally:
        channel.close()


class Session(paramiko.ServerInterface):
    """One client connection: any user and key are accepted; exec requests are served."""

    def __init__(self, serve):
        self.serve = serve  # serve(user, channel, command) in a thread of its own
        self.user = "?"

    def get_allowed_auths(self, username):
        return "publickey,password"

    def check_auth_publickey(self, username, key):
        self.user = username
        return paramiko.AUTH_SUCCESSFUL

    def check_auth_password(self, username, password):
        self.user = username
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args):
        return True

    def check_channel_exec_request(self, channel, command):
        text = command.decode() if isinstance(command, bytes) else command
        threading.Thread(target=self.serve, args=(self.user, channel, text), daemon=True).start()
        return True


def replayer(fleet: Fleet):
    def serve(user, channel, command):
        found = fleet.answer(user, command)
        _read_stdin(channel)  # pyinfra writes stdin (if any), then always half-closes
        if found is None:
            _finish(channel, "", "simhosts: no captured answer for this command\n", 127)
            return
        _finish(channel, found["stdout"], found["stderr"], found["status"])
    return serve


def recorder(out: Path, address: str, key_file: str):
    lock = threading.Lock()
    key = paramiko.Ed25519Key.from_private_key_file(key_file)

    def serve(user, channel, command):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(address, username="deploy", pkey=key, look_for_keys=False, allow_agent=False)
        try:
            remote = client.get_transport().open_session()
            remote.exec_command(command)
            stdin = _read_stdin(channel)  # pyinfra writes stdin (if any), then always half-closes
            if stdin:
                remote.sendall(stdin)
            remote.shutdown_write()
            stdout = remote.makefile("rb").read().decode(errors="replace")
            stderr = remote.makefile_stderr("rb").read().decode(errors="replace")
            status = remote.recv_exit_status()
        finally:
            client.close()
        with lock, open(out, "a") as handle:
            handle.write(json.dumps({"command": command, "stdin": bool(stdin), "stdout": stdout,
                                     "stderr": stderr, "status": status}) + "\n")
        _finish(channel, stdout, stderr, status)
    return serve


def listen(port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(BACKLOG)
    return server


def accept_forever(server: socket.socket, serve, host_key) -> None:
    while True:
        client, _ = server.accept()
        threading.Thread(target=_handshake, args=(client, serve, host_key), daemon=True).start()


def _handshake(client: socket.socket, serve, host_key) -> None:
    transport = paramiko.Transport(client)
    # paramiko's server side gives a client 15 s for its banner and its key exchange; 1,000
    # hosts' handshakes queue for this one process's GIL far longer (connection resets).
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = SLOW_PEER
    transport.add_server_key(host_key)
    try:
        transport.start_server(server=Session(serve))
    except (paramiko.SSHException, EOFError, OSError):
        transport.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simhosts", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("record", "replay"))
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--forward", help="record: the real box's address")
    parser.add_argument("--key", help="record: the lab's private key")
    parser.add_argument("--ready", type=Path, help="write {port, pid} here once listening; on "
                        "SIGTERM, {hosts, commands, misses}")
    args = parser.parse_args(argv)
    host_key = paramiko.ECDSAKey.generate()
    server = listen(args.port)
    port = server.getsockname()[1]
    if args.mode == "record":
        serve, fleet = recorder(args.files[0], args.forward, args.key), None
    else:
        fleet = Fleet(Capture(args.files))
        serve = replayer(fleet)

    def stop(*_):
        if args.ready and fleet is not None:
            args.ready.write_text(json.dumps({"port": port, "pid": os.getpid(), "hosts": len(fleet.hosts),
                                              "commands": fleet.commands, "misses": fleet.misses[:20],
                                              "missed": len(fleet.misses)}))
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    if args.ready:
        args.ready.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    print(f"simhosts: {args.mode} on 127.0.0.1:{port}", flush=True)
    accept_forever(server, serve, host_key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
