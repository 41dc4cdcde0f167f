"""One generated test per fixture file in tests/unit/operations/<module>.<op>/ (pyinfra-testing)."""
from pathlib import Path

import pytest
from pyinfra_testing.operations import make_operation_tests

from pyinfra_lockdown import secret_stamp

FIXTURES = Path(__file__).parent / "operations"
FIXED_SALT = "5a" * 16  # the salt of the stamps in the sasl_password_map fixtures' stdin


@pytest.fixture(autouse=True)
def fixed_stamp_salt(monkeypatch):
    monkeypatch.setattr(secret_stamp, "new_salt", lambda: FIXED_SALT)


for _name in sorted(d.name for d in FIXTURES.iterdir() if d.is_dir()):
    locals()[_name] = make_operation_tests("pyinfra_lockdown.operations", _name, FIXTURES / _name)
