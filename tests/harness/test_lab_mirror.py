"""The fresh-server images and the lab's package mirror (issue 12), without root."""
import gzip
import hashlib
import os
import runpy
import sys
import types
from pathlib import Path

import pytest

from lab import image, mirror
from lab.config import LabConfig
from lab.processes import record
from lab.state import BoxRecord, LabState, StateStore

REPO = Path(__file__).resolve().parents[2]
MTAS = {"postfix", "exim4-daemon-light", "exim4-daemon-heavy", "exim4", "nullmailer", "msmtp-mta"}


def test_the_default_image_keeps_its_name_and_the_fresh_ones_are_named_apart():
    # The existing tests' cached images stay valid: the default's hash has no flavor in it.
    assert image.image_name("bookworm") == f"bookworm-{image.recipe_hash('bookworm')}"
    names = {image.image_name(s, f) for s in image.SUITES for f in image.FLAVORS}
    assert len(names) == len(image.SUITES) * len(image.FLAVORS)
    assert image.image_name("trixie", "minimal").startswith("trixie-minimal-")


def test_minimal_has_no_mta_no_firewall_no_sasl_modules():
    included = set(image.flavor_packages("minimal"))
    assert not included & (MTAS | {"ufw", "iptables", "libsasl2-modules", "bsd-mailx"})
    assert {"openssh-server", "sudo", "python3", "ca-certificates"} <= included


def test_standard_has_exim4_and_no_postfix_or_ufw():
    included = set(image.flavor_packages("standard"))
    assert "exim4-daemon-light" in included
    assert not included & {"postfix", "ufw", "libsasl2-modules"}
    argv = image.mmdebstrap_argv(Path("/tmp/x"), "trixie", "standard")
    assert argv[-2:] == ["trixie", "/tmp/x"]  # no mirror argument: the archive this host reaches


def test_unknown_flavor_is_one_clear_error():
    with pytest.raises(Exception, match="unknown image 'cloud'"):
        image.recipe_hash("bookworm", "cloud")


def test_mirror_carries_the_products_own_packages():
    import importlib

    mail = importlib.import_module("pyinfra_lockdown.mail")
    firewall = importlib.import_module("pyinfra_lockdown.firewall")  # the package exports a function of that name
    assert set(mail.PACKAGES) | set(firewall.PACKAGES) <= set(mirror.deploy_packages())


def test_a_new_module_with_packages_is_mirrored_without_touching_the_lab(monkeypatch):
    import pyinfra_lockdown

    module = types.ModuleType("pyinfra_lockdown.extra")
    module.PACKAGES = ["needrestart"]
    monkeypatch.setitem(sys.modules, "pyinfra_lockdown.extra", module)
    real = mirror.pkgutil.iter_modules
    monkeypatch.setattr(mirror.pkgutil, "iter_modules", lambda path: [
        *real(path), types.SimpleNamespace(name="extra")])
    before = mirror.recipe_hash("bookworm")
    assert "needrestart" in mirror.deploy_packages()
    assert pyinfra_lockdown  # the real package is still what is scanned
    monkeypatch.setattr(mirror.pkgutil, "iter_modules", real)
    assert mirror.recipe_hash("bookworm") != before  # the mirror is rebuilt when the list changes


def test_box_sources_name_the_lab_mirror_only_and_its_key():
    sources = mirror.sources_file("trixie")
    assert "URIs: http://mirror.lab.test/trixie\n" in sources
    assert f"Signed-By: {mirror.KEYRING_IN_BOX}\n" in sources
    assert "trusted" not in sources


def test_release_lists_the_indexes_with_their_sha256():
    data = b"Package: ufw\n"
    text = mirror.release_text("bookworm", {"main/binary-amd64/Packages": data})
    assert "Suite: bookworm\nCodename: bookworm\n" in text
    assert f" {hashlib.sha256(data).hexdigest()} {len(data)} main/binary-amd64/Packages" in text


def test_publish_hides_a_package_from_the_served_index(tmp_path, monkeypatch):
    built = tmp_path / "cache" / "mirrors" / "bookworm-x"
    (built / "pool").mkdir(parents=True)
    (built / "Packages").write_text("Package: ufw\nVersion: 1\n\nPackage: postfix\nVersion: 2\n")
    monkeypatch.setattr(mirror, "ensure_built", lambda cache, suite: built)
    monkeypatch.setattr(mirror, "ensure_key", lambda cache: None)
    monkeypatch.setattr(mirror, "_gpg", lambda *a, **k: "")
    monkeypatch.setattr(mirror, "_stop_agent", lambda home: None)
    config = LabConfig(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", netns="t")
    mirror.publish(config, "bookworm", hidden=("postfix",))
    binary = mirror.serve_dir(config) / "bookworm" / "dists" / "bookworm" / "main" / "binary-amd64"
    assert (binary / "Packages").read_text() == "Package: ufw\nVersion: 1\n"
    assert gzip.decompress((binary / "Packages.gz").read_bytes()) == b"Package: ufw\nVersion: 1\n"
    mirror.publish(config, "bookworm")
    assert "Package: postfix" in (binary / "Packages").read_text()


def test_inventory_keeps_apt_update_off_only_for_preinstalled_boxes(tmp_path, monkeypatch):
    me = record(os.getpid())
    state = LabState(netns="ldlab")
    for index, flavor in ((1, "preinstalled"), (2, "minimal")):
        state.boxes[f"box{index}"] = BoxRecord(
            name=f"box{index}", index=index, ipv4=f"10.77.0.{10 + index}", ipv6=f"fd77::{10 + index}",
            netns=f"ldlab-box{index}-{index}", dir="", status="running", process=me, flavor=flavor)
    StateStore(tmp_path / "state.json", tmp_path / "state.lock").save(state)
    monkeypatch.setenv("LOCKDOWN_LAB_DIR", str(tmp_path))
    monkeypatch.delenv("LAB_HOSTS", raising=False)
    hosts = dict(runpy.run_path(str(REPO / "inventories" / "lab.py"))["mail_servers"])
    assert hosts["box1"]["apt_update"] is False
    assert "apt_update" not in hosts["box2"]  # the setting's default: apt-get update runs


def test_state_file_keeps_the_flavor_and_the_mirror_process():
    state = LabState(netns="x", mirror=record(os.getpid()))
    state.boxes["box1"] = BoxRecord(name="box1", index=1, ipv4="a", ipv6="b", netns="n", dir="d",
                                    flavor="standard")
    again = LabState.from_json(state.to_json())
    assert again.boxes["box1"].flavor == "standard" and again.mirror == state.mirror
