"""docs/reference.md is generated from the code (docs/make_reference.py) and must be current:
a new or changed deploy, setting, key, fact or operation shows up in the reference."""
import re
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


def test_the_readme_facts_and_operations_table_is_current():
    generator = _generator()
    readme = (REPO / "README.md").read_text()
    begin, end = generator["README_BEGIN"], generator["README_END"]
    assert begin in readme and end in readme, "README lost its generated facts and operations table"
    table = readme.split(begin, 1)[1].split(end, 1)[0]
    assert table == generator["readme_table"](), (
        "README's facts and operations table is stale: run `make reference`")
    for path, _ in generator["public_facts"]() + generator["public_operations"]():
        assert f"[`{path.removeprefix('pyinfra_lockdown.')}`]" in table  # every one, linked


def test_the_readme_table_links_headings_the_reference_has():
    """GitHub's anchor of a ``### `a.b_c.D` `` heading is ``ab_cd``: each link finds one."""
    generator = _generator()
    headings = [line[5:-1] for line in (REPO / "docs" / "reference.md").read_text().splitlines()
                if line.startswith("### `")]
    anchors = {"docs/reference.md#" + h.lower().replace(".", "") for h in headings}
    links = re.findall(r"\]\((docs/reference\.md#[^)]+)\)", generator["readme_table"]())
    assert links and set(links) <= anchors, sorted(set(links) - anchors)
