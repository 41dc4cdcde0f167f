"""Shared pytest fixtures. The lab fixtures boot real Debian boxes (root needed; see lab/).

The test session uses its own lab (namespace `ldtest`, state dir /var/lib/lockdown-lab-pytest)
so it never tears down a lab someone started by hand with `python -m lab up`. Override
with LOCKDOWN_LAB_TEST_DIR / LOCKDOWN_LAB_TEST_NETNS; the image cache is shared.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_STATE_DIR = "/var/lib/lockdown-lab-pytest"
TEST_NETNS = "ldtest"


def lab_test_config():
    from lab.config import LabConfig

    default = LabConfig.from_env()
    return LabConfig(
        state_dir=Path(os.environ.get("LOCKDOWN_LAB_TEST_DIR", TEST_STATE_DIR)),
        cache_dir=default.cache_dir,
        netns=os.environ.get("LOCKDOWN_LAB_TEST_NETNS", TEST_NETNS),
    )


@pytest.fixture(scope="session")
def lab():
    """Network, image and Mailgun stand-in, up once per session; always torn down at the end."""
    from lab.api import Lab

    problems = Lab.missing_requirements()
    if problems:
        pytest.skip("lab not available: " + "; ".join(problems))
    instance = Lab(lab_test_config())
    instance.down()  # leftovers of a crashed earlier session
    try:
        instance.ensure_network()
        instance.ensure_image()
        instance.standin_start()
        yield instance
    finally:
        instance.down()


@pytest.fixture
def box(lab):
    """A fresh booted box for one test, removed afterwards."""
    fresh = lab.add_box()
    try:
        yield fresh
    finally:
        lab.remove_box(fresh)


@pytest.fixture
def two_boxes(lab):
    boxes = lab.up(2)
    try:
        yield boxes
    finally:
        for fresh in boxes:
            lab.remove_box(fresh)


@pytest.fixture
def standin(lab):
    """The stand-in with default credentials, normal mode and empty logs (restored after)."""
    from lab.standin_server import DEFAULT_CONTROL

    if not lab.standin_running():
        lab.standin_start()
    lab.standin.set(**DEFAULT_CONTROL)
    lab.standin.clear()
    yield lab.standin
    lab.standin.set(**DEFAULT_CONTROL)
    if not lab.standin_running():
        lab.standin_start()
