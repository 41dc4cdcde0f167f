import os
import runpy
from pathlib import Path

import pytest

from lab import image
from lab.processes import record
from lab.state import BoxRecord, LabState, StateStore

REPO = Path(__file__).resolve().parents[2]


def test_recipe_hash_is_stable_and_follows_the_recipe(monkeypatch):
    first = image.recipe_hash()
    assert image.recipe_hash() == first
    monkeypatch.setattr(image, "PACKAGES", image.PACKAGES + ["curl"])
    assert image.recipe_hash() != first


def test_image_holds_every_package_the_deploys_install():
    # Boxes have no mirror: whatever the deploys would install must be in the image already.
    from pyinfra_lockdown.mail import PACKAGES as MAIL_PACKAGES

    argv = image.mmdebstrap_argv(Path("/tmp/x"))
    assert argv[-2:] == ["bookworm", "/tmp/x"]  # no mirror argument: mmdebstrap's default
    included = next(a for a in argv if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert set(MAIL_PACKAGES) | {"ufw", "openssh-server", "systemd-sysv"} <= set(included)
    assert "ifupdown" not in included  # its postfix if-up hook fails while main.cf is missing
    hook = next(a for a in argv if a.startswith("--essential-hook="))
    assert "postfix/main_mailer_type select No configuration" in hook


def load_inventory(tmp_path, monkeypatch, lab_hosts=None):
    me = record(os.getpid())  # a live process stands in for a box's nspawn
    state = LabState(netns="ldlab")
    for index, status in ((1, "running"), (2, "running"), (3, "booting")):
        state.boxes[f"box{index}"] = BoxRecord(
            name=f"box{index}", index=index, ipv4=f"10.77.0.{10 + index}", ipv6=f"fd77::{10 + index}",
            netns=f"ldlab-box{index}-{index}", dir="", status=status, process=me)
    StateStore(tmp_path / "state.json", tmp_path / "state.lock").save(state)
    monkeypatch.setenv("LOCKDOWN_LAB_DIR", str(tmp_path))
    if lab_hosts is None:
        monkeypatch.delenv("LAB_HOSTS", raising=False)
    else:
        monkeypatch.setenv("LAB_HOSTS", lab_hosts)
    return runpy.run_path(str(REPO / "inventories" / "lab.py"))


def test_inventory_lists_running_boxes(tmp_path, monkeypatch):
    inventory = load_inventory(tmp_path, monkeypatch)
    hosts = dict(inventory["mail_servers"])
    assert list(hosts) == ["box1", "box2"]
    assert hosts["box1"]["ssh_hostname"] == "10.77.0.11"
    assert hosts["box1"]["ssh_user"] == "deploy"
    assert hosts["box1"]["ssh_key"] == str(tmp_path / "ssh" / "id_ed25519")
    assert hosts["box1"]["_sudo"] is True
    assert hosts["box1"]["ssh_known_hosts_file"] == "/dev/null"
    assert hosts["box1"]["audit_probe_addresses"] == ["10.77.0.11", "fd77::11"]


def test_inventory_host_data_is_valid_lockdown_host_data(tmp_path, monkeypatch):
    from pyinfra_lockdown.settings import audit_settings, firewall_settings, relay_settings

    data = dict(load_inventory(tmp_path, monkeypatch)["mail_servers"])["box1"]
    environ = {"LOCKDOWN_RELAY_LOGIN": "postmaster@mg.lab.test", "LOCKDOWN_RELAY_PASSWORD": "x"}
    relay = relay_settings(data, environ)
    assert (relay.relayhost, relay.tls_level) == ("[smtp.mailgun.org]:587", "secure")
    assert firewall_settings(data).allowed == ["ssh"]
    assert callable(audit_settings(data, environ).probe)  # the lab provides the outside view


def test_inventory_restricted_by_lab_hosts(tmp_path, monkeypatch):
    inventory = load_inventory(tmp_path, monkeypatch, lab_hosts="box2")
    assert [name for name, _ in inventory["mail_servers"]] == ["box2"]


def test_inventory_names_unknown_lab_hosts(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="box9"):
        load_inventory(tmp_path, monkeypatch, lab_hosts="box1,box9")
