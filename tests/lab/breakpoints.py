"""Helper of the lab tests (no tests here).

The pyinfra CLI with a breakpoint: the fault tests stop a real run at an exact place.

    python -m tests.lab.breakpoints DIR BREAK -- <pyinfra arguments>

runs pyinfra's own CLI in this process, with two hooks on pyinfra 3.x's executor: every
operation that finishes on the (single) host appends one line to DIR/trace.jsonl (its index
in execution order, names, commands executed), and at BREAK the controller writes DIR/paused
(JSON: pid, where) and waits until DIR/resume exists. BREAK is ``op:N`` (right after the Nth
operation finished), ``op:N.K`` (after the Kth command of the Nth operation, in its middle),
``after:TEXT`` (after the first operation whose name contains TEXT), ``in:TEXT#K`` (after
the Kth command of the first operation whose name contains TEXT) or ``none`` (only trace).
While it waits, the test kills it (SIGKILL from outside), cuts the link,
reboots the box or switches the relay, then resumes it or not.

Where a run is: counted from pyinfra's own callbacks (``operation_host_start`` /
``operation_host_success`` / ``operation_host_error``) and from the command objects the
executor runs (``StringCommand.execute``, ``FunctionCommand.execute``), never from its output.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


class Breakpoint:
    def __init__(self, directory: Path, where: str):
        self.directory = Path(directory)
        self.op, self.command, self.name = parse(where)
        self.index = 0  # operations started so far
        self.commands = 0  # commands executed by the current operation
        self.names: list[str] = []  # of the current operation

    def pause(self, where: str) -> None:
        (self.directory / "paused").write_text(json.dumps({"pid": os.getpid(), "where": where}))
        while not (self.directory / "resume").exists():
            time.sleep(0.05)  # gevent's sleep: the SSH connection's greenlets keep running

    # pyinfra callbacks ----------------------------------------------------------------
    def op_started(self, state=None, op_hash=None) -> None:
        self.index += 1
        self.commands = 0
        self.names = sorted(state.get_op_meta(op_hash).names) if state is not None else []
        if self.op is None and self.command is not None and self.name is not None and any(
                self.name in name for name in self.names):
            self.op, self.name = self.index, None  # in:TEXT#K: this operation, command K

    def op_finished(self, state, op_hash, ok: bool) -> None:
        names = sorted(state.get_op_meta(op_hash).names)
        with open(self.directory / "trace.jsonl", "a") as trace:
            trace.write(json.dumps({"op": self.index, "names": names, "commands": self.commands,
                                    "ok": ok}) + "\n")
        named = self.name is not None and any(self.name in name for name in names)
        if (self.op == self.index and self.command is None) or named:
            self.name = None  # the first such operation only
            self.pause(f"after op {self.index} ({', '.join(names)})")

    def command_done(self) -> None:
        self.commands += 1
        if self.op == self.index and self.command == self.commands:
            self.pause(f"after command {self.commands} of op {self.index}")


def parse(where: str) -> tuple[int | None, int | None, str | None]:
    """(operation index, command index, operation name text) of a breakpoint."""
    if where == "none":
        return None, None, None
    kind, _, place = where.partition(":")
    if kind == "after" and place:
        return None, None, place
    if kind == "in" and "#" in place:
        text, _, command = place.rpartition("#")
        return None, int(command), text
    if kind != "op" or not place:
        raise SystemExit(f"breakpoint {where!r}: use op:N, op:N.K, after:TEXT, in:TEXT#K or none")
    op, _, command = place.partition(".")
    return int(op), int(command) if command else None, None


def install(breakpoint: Breakpoint) -> None:
    from pyinfra.api import command as pyinfra_command
    from pyinfra.api.state import State

    trigger = State.trigger_callbacks

    def trigger_callbacks(state, method_name, *args, **kwargs):
        trigger(state, method_name, *args, **kwargs)
        if method_name == "operation_host_start":
            breakpoint.op_started(state, args[1])
        elif method_name in ("operation_host_success", "operation_host_error"):
            breakpoint.op_finished(state, args[1], ok=method_name == "operation_host_success")

    State.trigger_callbacks = trigger_callbacks
    for cls in (pyinfra_command.StringCommand, pyinfra_command.FunctionCommand):
        def execute(self, state, host, connector_arguments, _original=cls.execute):
            result = _original(self, state, host, connector_arguments)
            if host.executing_op_hash is not None:
                breakpoint.command_done()
            return result
        cls.execute = execute


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    directory, where, pyinfra_args = Path(argv[0]), argv[1], argv[3:]
    directory.mkdir(parents=True, exist_ok=True)
    install(Breakpoint(directory, where))
    from pyinfra_cli.main import main as pyinfra_main

    sys.argv = ["pyinfra", *pyinfra_args]
    return pyinfra_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
