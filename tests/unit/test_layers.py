"""The package's layers point one way (pyinfra_lockdown/__init__.py, docs/design.md): facts/
import only the leaves, operations/ only facts/ and the leaves, settings only the leaves; the
leaves nothing of lockdown. Read from the sources' imports, so a new module is checked too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pyinfra_lockdown"
LEAVES = {"ufw_rules", "secret_stamp", "providers", "relay_causes", "renamed", "text",
          "_typing", "_pyinfra", "remote", "value_checks", "exposure"}
INTERFACE = {"value_checks", "credentials"}  # settings.py's own parts (credentials: leaves only)


def _lockdown_imports(path: Path) -> set[str]:
    """The first-level part of pyinfra_lockdown each module of ``path`` imports
    (``facts``, ``operations``, ``settings``, ``ufw_rules``...)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "pyinfra_lockdown" and len(parts) > 1:
                found.add(parts[1])
    return found


def _check(folder: str, allowed: set[str]) -> dict[str, set[str]]:
    paths = (PACKAGE / folder).glob("*.py") if (PACKAGE / folder).is_dir() else \
        [PACKAGE / f"{folder}.py"]
    return {p.name: bad for p in paths if (bad := _lockdown_imports(p) - allowed - {folder})}


def test_facts_import_only_the_leaves() -> None:
    assert _check("facts", LEAVES) == {}


def test_operations_import_only_facts_and_the_leaves() -> None:
    assert _check("operations", LEAVES | {"facts"}) == {}


def test_settings_imports_only_its_parts_and_the_leaves() -> None:
    assert _check("settings", LEAVES | INTERFACE) == {}
    assert _check("credentials", LEAVES) == {}


def test_the_leaves_import_nothing_of_lockdown() -> None:
    bad = {leaf: found for leaf in LEAVES - {"remote"}
           if (found := _lockdown_imports(PACKAGE / f"{leaf}.py"))}
    assert bad == {}


def test_the_check_sees_an_upward_import() -> None:
    assert _lockdown_imports(PACKAGE / "operations" / "postfix.py") >= {"facts", "secret_stamp"}
    assert "settings" in _lockdown_imports(PACKAGE / "mail.py")
