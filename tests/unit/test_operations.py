"""One generated test per fixture file in tests/unit/operations/<module>.<op>/ (pyinfra-testing)."""
from pathlib import Path

from pyinfra_testing.operations import make_operation_tests

FIXTURES = Path(__file__).parent / "operations"

for _name in sorted(d.name for d in FIXTURES.iterdir() if d.is_dir()):
    locals()[_name] = make_operation_tests("pyinfra_lockdown.operations", _name, FIXTURES / _name)
