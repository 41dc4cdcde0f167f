"""docs/reference.md is generated from the code (docs/make_reference.py) and must be current:
a new or changed deploy, setting, key, fact or operation shows up in the reference."""
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _generator():
    return runpy.run_path(str(REPO / "docs" / "make_reference.py"), run_name="reference")


def test_the_reference_is_current():
    assert (REPO / "docs" / "reference.md").read_text() == _generator()["render"](), (
        "docs/reference.md is stale: run `make reference`")


def test_the_reference_lists_every_public_fact_and_operation_documented():
    generator = _generator()
    facts, operations = generator["public_facts"](), generator["public_operations"]()
    assert len(facts) >= 20 and len(operations) >= 15  # the discovery found the modules
    undocumented = [path for path, obj in facts + operations if not generator["doc"](obj)]
    assert undocumented == []
    text = (REPO / "docs" / "reference.md").read_text()
    for path, _ in facts + operations:
        assert f"### `{path}`" in text


def test_the_readme_links_the_reference():
    assert "](docs/reference.md)" in (REPO / "README.md").read_text()
