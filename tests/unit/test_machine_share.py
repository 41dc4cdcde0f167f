"""Issue 23: under pytest-xdist, ordinary lab tests share the machine and a `whole_machine` test
runs alone (tests/machine_share.py). flock locks belong to an open file, so two opens in one
process stand for two workers."""
import fcntl

import pytest

from tests import machine_share
from tests.machine_share import MachineWaitTimeout, alone, sharing


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
        def __init__(self, marked):
            self.marked = marked

        def get_closest_marker(self, name):
            return object() if self.marked and name == machine_share.MARKER else None

    monkeypatch.setenv(machine_share.DIR_ENV, str(tmp_path))
    with machine_share.holding(Item(True), "lab"):
        with pytest.raises(MachineWaitTimeout):
            with sharing(tmp_path, limit=0.3):
                pass
        with machine_share.holding(Item(False), "unit"):  # no wait
            pass
    with machine_share.holding(Item(False), "vagrant"), sharing(tmp_path, limit=0.3):
        pass
