"""The combined state read: sections at once, one marker each, shared saves made once."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pyinfra.api import FactBase

from pyinfra_lockdown.facts.audit_state import AuditState
from pyinfra_lockdown.facts.combined import CombinedFact, awk_over_saved
from pyinfra_lockdown.facts.host_state import LockdownState


class _Rules(FactBase):
    shared_reads = ("iptables-save",)

    def command(self):
        return awk_over_saved("iptables-save", "awk '/^-A/ {n++} END {print n}'")

    def process(self, output):
        return int(output[0])


class _Chains(FactBase):
    shared_reads = ("iptables-save",)

    def command(self):
        return awk_over_saved("iptables-save", "awk '/^:/ {n++} END {print n}'")

    def process(self, output):
        return int(output[0])


class _Plain(FactBase):
    def command(self):
        return "echo plain"

    def process(self, output):
        return output[0]


class _Read(CombinedFact[dict]):
    @staticmethod
    def sections():
        return {"rules": (_Rules, {}), "plain": (_Plain, {}), "chains": (_Chains, {})}

    def command(self):
        return self.combined_command()


def _fake_save(tmp_path: Path) -> dict[str, str]:
    """A PATH whose iptables-save prints a two-table save and counts its runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    save = bin_dir / "iptables-save"
    save.write_text(f"#!/bin/sh\necho run >> {tmp_path}/runs\n"
                    "printf '*filter\\n:INPUT DROP [0:0]\\n:ufw-user-input - [0:0]\\n"
                    "-A INPUT -j ufw-before-input\\nCOMMIT\\n'\n")
    save.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_shared_save_runs_once_and_every_section_reading_it_sees_it(tmp_path):
    env = _fake_save(tmp_path)
    out = subprocess.run(["sh", "-c", _Read().command()], env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert (tmp_path / "runs").read_text().count("run") == 1
    assert _Read().process(out) == {"rules": 1, "plain": "plain", "chains": 2}


def test_a_fact_read_alone_runs_the_save_itself(tmp_path):
    env = _fake_save(tmp_path)
    out = subprocess.run(["sh", "-c", _Rules().command()], env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == ["1"] and (tmp_path / "runs").read_text().count("run") == 1


def test_the_state_reads_save_each_family_once():
    for command in (LockdownState().command(), AuditState().command()):
        assert command.count("( iptables-save 2>/dev/null ) >") == 1
        assert command.count("( ip6tables-save 2>/dev/null ) >") == 1
        # every other mention reads the saved copy or (a fact read alone) runs it itself
        assert command.count("iptables-save") == command.count("ip6tables-save")
        assert command.count('wait; cat "$d/0" "$d/1" ') == 1  # one cat prints the sections
