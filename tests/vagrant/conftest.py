"""Fixtures of the slow Vagrant tier: one real VM (TCG on this kind of machine) per session."""
from __future__ import annotations

import os
import time

import pytest

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def timings():
    yield TIMINGS
    if TIMINGS:
        print("\nvagrant timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def local_vagrant(lab):
    """The lab (namespace + stand-in, from tests/conftest.py) plus the local Vagrant mode."""
    if os.geteuid() != 0:
        pytest.skip("the Vagrant tier needs root (network namespaces, libvirtd)")
    from lab.vagrant.lifecycle import LocalVagrant

    local = LocalVagrant(lab)
    local.destroy()  # leftovers of a crashed earlier session
    yield local
    local.destroy()


@pytest.fixture(scope="module")
def vm(local_vagrant, timings):
    started = time.monotonic()
    local_vagrant.prepare()
    timings["prepare (deps, box, libvirtd)"] = time.monotonic() - started
    timings["vagrant up"] = local_vagrant.up()
    return local_vagrant
