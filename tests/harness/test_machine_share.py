"""Issue 23: under pytest-xdist, ordinary lab tests share the machine, `quiet_machine` tests run
beside each other only and a `whole_machine` test runs alone (tests/machine_share.py). flock
locks belong to an open file and every entry of the room has its own token, so two entries in
one process stand for two workers."""
import json
import os
import time
import fcntl

import pytest

from tests import machine_share
from tests.machine_share import MachineWaitTimeout, alone, quiet, sharing


def test_sharing_tests_run_side_by_side(tmp_path):
    with sharing(tmp_path), sharing(tmp_path, limit=0.3):
        pass


def test_a_whole_machine_test_waits_for_the_tests_in_flight(tmp_path):
    with sharing(tmp_path):
        with pytest.raises(MachineWaitTimeout):
            with alone(tmp_path, limit=0.3):
                pass
    with alone(tmp_path, limit=0.3):  # they ended: it runs
        pass


def test_nothing_starts_beside_a_whole_machine_test(tmp_path):
    with alone(tmp_path):
        with pytest.raises(MachineWaitTimeout):
            with sharing(tmp_path, limit=0.3):
                pass
        with pytest.raises(MachineWaitTimeout):
            with alone(tmp_path, limit=0.3):
                pass


def test_a_waiting_whole_machine_test_goes_before_new_sharing_tests(tmp_path):
    """It holds the gate while it waits for the room: the other workers' next tests wait."""
    with sharing(tmp_path), open(tmp_path / "gate", "a") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)  # as alone() does while the room is still shared
        with pytest.raises(MachineWaitTimeout):
            with sharing(tmp_path, limit=0.3):
                pass


def test_unit_tests_take_no_lock_and_whole_machine_marks_choose_alone(tmp_path, monkeypatch):
    class Item:
        def __init__(self, marked, marker=machine_share.MARKER):
            self.marked, self.marker = marked, marker

        def get_closest_marker(self, name):
            return object() if self.marked and name == self.marker else None

    monkeypatch.setenv(machine_share.DIR_ENV, str(tmp_path))
    with machine_share.holding(Item(True), "lab"):
        with pytest.raises(MachineWaitTimeout):
            with sharing(tmp_path, limit=0.3):
                pass
        with machine_share.holding(Item(False), "unit"):  # no wait
            pass
    with machine_share.holding(Item(False), "vagrant"), sharing(tmp_path, limit=0.3):
        pass

    with machine_share.holding(Item(True, machine_share.QUIET_MARKER), "lab"):
        with quiet(tmp_path, limit=0.3):
            pass
        with pytest.raises(MachineWaitTimeout):
            with sharing(tmp_path, limit=0.3):
                pass


def test_quiet_tests_run_side_by_side_and_only_with_each_other(tmp_path):
    with quiet(tmp_path), quiet(tmp_path, limit=0.3):
        for other in (sharing, alone):
            with pytest.raises(MachineWaitTimeout):
                with other(tmp_path, limit=0.3):
                    pass
    with sharing(tmp_path):
        with pytest.raises(MachineWaitTimeout):
            with quiet(tmp_path, limit=0.3):
                pass
    with alone(tmp_path):
        with pytest.raises(MachineWaitTimeout):
            with quiet(tmp_path, limit=0.3):
                pass


def test_a_quiet_test_waiting_goes_before_new_sharing_tests_and_lets_quiet_ones_follow(tmp_path):
    """It holds the gate only while it waits: once inside, other quiet tests may follow it,
    sharing tests wait until the last quiet one is done."""
    with sharing(tmp_path), open(tmp_path / "gate", "a") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)  # as quiet() does while the room is still shared
        with pytest.raises(MachineWaitTimeout):
            with sharing(tmp_path, limit=0.3):
                pass
        fcntl.flock(gate, fcntl.LOCK_UN)
    with quiet(tmp_path):
        with quiet(tmp_path, limit=0.3):  # the gate is open again
            pass


def test_the_entry_of_a_worker_that_died_is_dropped(tmp_path):
    """A crashed worker's flocks go with its process; its entry in the room goes too."""
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "room.json").write_text(json.dumps({f"{dead}:token": machine_share.ALONE}))
    with sharing(tmp_path, limit=0.3):
        pass


def test_an_alone_test_keeps_the_gate_for_the_next_alone_test_of_its_worker(tmp_path):
    """Between two alone tests of one worker no other worker's test slips in."""
    with machine_share.using(tmp_path, machine_share.ALONE, keep_gate=True):
        pass
    with open(tmp_path / "gate", "a") as other_worker, pytest.raises(BlockingIOError):
        fcntl.flock(other_worker, fcntl.LOCK_SH | fcntl.LOCK_NB)  # still held: nothing starts
    with machine_share.using(tmp_path, machine_share.ALONE, limit=0.3):  # the next one: at once
        pass
    with sharing(tmp_path, limit=0.3):  # and then the gate is open again
        pass


def test_a_gate_kept_for_an_alone_test_is_let_go_by_any_other(tmp_path):
    with machine_share.using(tmp_path, machine_share.ALONE, keep_gate=True):
        pass
    with sharing(tmp_path, limit=0.3):  # the worker ran something else next: no self-deadlock
        pass


def test_when_alone_tests_come_first_the_others_let_the_first_one_take_the_gate(
        tmp_path, monkeypatch):
    """At the start every worker reaches the gate at once: the alone test must win."""
    monkeypatch.setattr(machine_share, "HEAD_START_LIMIT_SECONDS", 0.5)
    before = machine_share.alone_tests_first(True, tmp_path)
    try:
        started = time.monotonic()
        with sharing(tmp_path):  # no alone test began: it waits, bounded
            assert time.monotonic() - started >= 0.5
        with alone(tmp_path):
            pass
        started = time.monotonic()
        with quiet(tmp_path):  # it began: no wait
            assert time.monotonic() - started < 0.5
        other_run = tmp_path / "other-run"
        other_run.mkdir()
        started = time.monotonic()
        with sharing(other_run):  # another run's directory (this module's other tests): no wait
            assert time.monotonic() - started < 0.5
    finally:
        machine_share._alone_tests_first_in = before
    started = time.monotonic()
    with sharing(tmp_path):  # not expected (one process, no phases): no wait
        assert time.monotonic() - started < 0.5
