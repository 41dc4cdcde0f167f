import json
import threading

import pytest

from lab.config import LabConfig
from lab.state import BoxRecord, LabState, ProcessRecord, StateStore


def sample_state() -> LabState:
    state = LabState(netns="ldlab", image="/cache/rootfs", last_box_index=2, netns_serial=4)
    state.boxes["box2"] = BoxRecord(
        name="box2", index=2, ipv4="10.77.0.12", ipv6="fd77::12", netns="ldlab-box2-4",
        dir="/state/boxes/box2", status="running", process=ProcessRecord(pid=123, start_time=456),
    )
    state.standin = ProcessRecord(pid=99, start_time=7)
    return state


def test_round_trip(tmp_path):
    store = StateStore(tmp_path / "state.json", tmp_path / "state.lock")
    store.save(sample_state())
    assert store.load() == sample_state()
    assert json.loads((tmp_path / "state.json").read_text())["boxes"]["box2"]["process"]["pid"] == 123


def test_missing_file_is_an_empty_lab(tmp_path):
    assert StateStore(tmp_path / "none.json", tmp_path / "lock").load() == LabState()


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        LabState.from_json(json.dumps({"version": 99}))


def test_update_saves_even_when_the_caller_fails(tmp_path):
    store = StateStore(tmp_path / "state.json", tmp_path / "state.lock")
    with pytest.raises(RuntimeError):
        with store.update() as state:
            state.last_box_index = 7
            raise RuntimeError("boom")
    assert store.load().last_box_index == 7


def test_parallel_updates_do_not_lose_writes(tmp_path):
    store = StateStore(tmp_path / "state.json", tmp_path / "state.lock")

    def bump():
        for _ in range(20):
            with store.update() as state:
                state.netns_serial += 1

    threads = [threading.Thread(target=bump) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.load().netns_serial == 100


def test_running_boxes_are_sorted_by_index():
    state = sample_state()
    for index in (10, 3):
        state.boxes[f"box{index}"] = BoxRecord(
            name=f"box{index}", index=index, ipv4="", ipv6="", netns="", dir="", status="running")
    state.boxes["box4"] = BoxRecord(name="box4", index=4, ipv4="", ipv6="", netns="", dir="", status="booting")
    assert [b.name for b in state.running_boxes()] == ["box2", "box3", "box10"]


def test_config_from_environment(tmp_path):
    config = LabConfig.from_env({"LOCKDOWN_LAB_DIR": str(tmp_path), "LOCKDOWN_LAB_NETNS": "xlab"})
    assert config.state_file == tmp_path / "state.json"
    assert config.ssh_key == tmp_path / "ssh" / "id_ed25519"
    assert config.box_netns("box1", 3) == "xlab-box1-3"
    assert config.cgroup_name("box1") == "xlab-box1"
    assert LabConfig.from_env(config.env()) == config
    defaults = LabConfig.from_env({})
    assert (str(defaults.state_dir), str(defaults.cache_dir)) == ("/var/lib/lockdown-lab", "/var/cache/lockdown-lab")


def test_missing_requirements_explains_root(monkeypatch):
    from lab.api import Lab

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert any("root" in problem for problem in Lab.missing_requirements())
