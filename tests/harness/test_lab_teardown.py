"""Teardown planning from partial state: no root needed."""
from pathlib import Path

from lab.config import LabConfig
from lab.state import BoxRecord, LabState, ProcessRecord
from lab.teardown import Snapshot, plan

CONFIG = LabConfig(state_dir=Path("/s"), cache_dir=Path("/c"), netns="ldlab")


def box(index: int, serial: int, process: ProcessRecord | None = None) -> BoxRecord:
    return BoxRecord(name=f"box{index}", index=index, ipv4=f"10.77.0.{10 + index}", ipv6=f"fd77::{10 + index}",
                     netns=f"ldlab-box{index}-{serial}", dir=f"/s/boxes/box{index}", process=process)


def kinds(actions):
    return [(a.kind, a.target) for a in actions]


def test_nothing_to_do_for_an_empty_host():
    assert plan(CONFIG, Snapshot(state=LabState())) == []


def test_full_lab_is_undone_in_a_safe_order():
    state = LabState(netns="ldlab", standin=ProcessRecord(50, 1))
    state.boxes = {"box1": box(1, 1, ProcessRecord(10, 1)), "box2": box(2, 2, ProcessRecord(20, 2))}
    snapshot = Snapshot(
        state=state,
        netns=["ldlab", "ldlab-box1-1", "ldlab-box2-2", "other"],
        mounts=["/", "/s/boxes/box1/merged", "/s/boxes/box2/merged", "/sbox/merged"],
        cgroup_dirs=["/sys/fs/cgroup/systemd/ldlab-box1"],
        box_dirs=["/s/boxes/box1", "/s/boxes/box2"],
    )
    assert kinds(plan(CONFIG, snapshot)) == [
        ("stop_process", "box1"),
        ("stop_process", "box2"),
        ("stop_process", "standin"),
        ("kill_cgroup_members", "/sys/fs/cgroup/systemd/ldlab-box1"),
        ("unmount", "/s/boxes/box1/merged"),
        ("unmount", "/s/boxes/box2/merged"),
        ("remove_cgroup", "/sys/fs/cgroup/systemd/ldlab-box1"),
        ("delete_netns", "ldlab-box1-1"),
        ("delete_netns", "ldlab-box2-2"),
        ("delete_netns", "ldlab"),
        ("remove_dir", "/s/boxes/box1"),
        ("remove_dir", "/s/boxes/box2"),
    ]


def test_lost_state_file_relies_on_discovery_under_own_names():
    snapshot = Snapshot(
        state=LabState(),
        netns=["ldlab", "ldlab-box3-7", "ldlabx", "someone-else"],
        mounts=["/s/boxes/box3/merged"],
        cgroup_dirs=["/sys/fs/cgroup/unified/ldlab-box3"],
        box_dirs=["/s/boxes/box3"],
    )
    actions = kinds(plan(CONFIG, snapshot))
    assert ("kill_cgroup_members", "/sys/fs/cgroup/unified/ldlab-box3") in actions
    assert ("delete_netns", "ldlab-box3-7") in actions
    assert ("delete_netns", "ldlab") in actions
    assert not any(target in ("ldlabx", "someone-else") for _, target in actions)
    assert not any(kind == "stop_process" for kind, _ in actions)  # never by name


def test_half_finished_up_only_touches_what_exists():
    state = LabState(netns="ldlab")
    state.boxes = {"box1": box(1, 1)}  # allocated, never launched, namespace never created
    snapshot = Snapshot(state=state, netns=["ldlab"], mounts=["/s/boxes/box1/merged"],
                        box_dirs=["/s/boxes/box1"])
    assert kinds(plan(CONFIG, snapshot)) == [
        ("unmount", "/s/boxes/box1/merged"),
        ("delete_netns", "ldlab"),
        ("remove_dir", "/s/boxes/box1"),
    ]


def test_second_down_has_nothing_left():
    snapshot = Snapshot(state=LabState(), netns=["other"], mounts=["/"], cgroup_dirs=[], box_dirs=[])
    assert plan(CONFIG, snapshot) == []
