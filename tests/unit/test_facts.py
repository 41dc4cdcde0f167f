"""One generated test per fixture file in tests/unit/facts/<module>.<FactClass>/ (pyinfra-testing)."""
from pathlib import Path

from pyinfra_testing.facts import make_fact_tests

FIXTURES = Path(__file__).parent / "facts"

for _name in sorted(d.name for d in FIXTURES.iterdir() if d.is_dir()):
    locals()[_name] = make_fact_tests("pyinfra_lockdown.facts", _name, FIXTURES / _name)
