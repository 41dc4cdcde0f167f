"""The map a newcomer reads stays true (issue 24 item 8): lab/README.md names every module of
the lab, tests/lab marks its helpers, and the product's tests (tests/unit) import nothing of
the lab, the bench or the harness (those tests live in tests/harness)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPER_MARK = "Helper of the lab tests (no tests here)."
HARNESS_PACKAGES = ("lab", "bench", "inventories", "tests.lab", "tests.harness",
                    "tests.machine_share", "tests.xdist_groups", "tests.tool_guard")


def _lab_map() -> str:
    text = (ROOT / "lab" / "README.md").read_text()
    return text.split("## Map", 1)[1].split("\n## ", 1)[0]


def _lab_files() -> list[str]:
    lab = ROOT / "lab"
    files = [*lab.glob("*.py"), *lab.glob("*.sh"), *lab.glob("*.txt"),
             *lab.glob("vagrant/*.py"), *lab.glob("vagrant/*.sh")]
    return sorted(str(f.relative_to(lab)) for f in files
                  if f.name not in ("__init__.py", "__main__.py"))


def test_the_lab_readme_opens_with_a_map_naming_every_module():
    text = (ROOT / "lab" / "README.md").read_text()
    assert text.index("## Map") < text.index("## Commands"), "the map comes first"
    unnamed = [name for name in _lab_files() if f"`{name}`" not in _lab_map()]
    assert unnamed == [], f"lab/README.md's map does not say what these are for: {unnamed}"


def _helpers() -> list[Path]:
    return sorted(p for p in (ROOT / "tests" / "lab").glob("*.py")
                  if not p.name.startswith("test_") and p.name != "__init__.py")


@pytest.mark.parametrize("helper", _helpers(), ids=lambda p: p.stem)
def test_every_helper_in_tests_lab_is_marked_and_listed(helper):
    docstring = ast.get_docstring(ast.parse(helper.read_text())) or ""
    assert docstring.startswith(HELPER_MARK), f"{helper.name}: its docstring starts otherwise"
    listed = ast.get_docstring(ast.parse((ROOT / "tests" / "lab" / "__init__.py").read_text()))
    assert f"``{helper.stem}``" in (listed or ""), f"tests/lab/__init__.py lacks {helper.stem}"
    assert f"`{helper.name}`" in _lab_map(), f"lab/README.md's map does not name {helper.name}"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("test_file", sorted((ROOT / "tests" / "unit").glob("*.py")),
                         ids=lambda p: p.stem)
def test_the_products_tests_import_nothing_of_the_harness(test_file):
    harness = sorted(name for name in _imports(test_file)
                     if any(name == p or name.startswith(p + ".") for p in HARNESS_PACKAGES))
    assert harness == [], f"{test_file.name} imports {harness}: move it to tests/harness"
