"""Unit tests never read or write the controller's real cache (secret_stamp's remembered salts)."""
from __future__ import annotations

import pytest

from pyinfra_lockdown import secret_stamp


@pytest.fixture(autouse=True)
def _own_salt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(secret_stamp, "_REMEMBERED", [])
    monkeypatch.setattr(secret_stamp, "_SAVING", [])
