"""The training engine must run without Streamlit: the command line and tests use it alone."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

DDCORE = Path(__file__).resolve().parent.parent / "ddcore"
MODULES = sorted(DDCORE.glob("*.py"))


def imported_modules(path):
    """Collect the top-level names of the modules that a source file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ddcore_has_modules():
    assert len(MODULES) > 5, f"found only {MODULES} under {DDCORE}"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_module_imports_no_streamlit(path):
    assert "streamlit" not in imported_modules(path)


def test_module_imports_no_ui_package():
    """ddcore must not reach Streamlit indirectly through lab/ or pages/ either."""
    for module in MODULES:
        imported = imported_modules(module)
        assert "lab" not in imported, f"{module.name} imports lab"
        assert "pages" not in imported, f"{module.name} imports pages"


def test_import_loads_no_streamlit():
    """Importing every ddcore module in a fresh interpreter leaves streamlit unloaded."""
    imports = "; ".join(f"import ddcore.{m.stem}" for m in MODULES if m.stem != "__main__")
    check = f"{imports}; import sys; print('streamlit' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", check],
        cwd=DDCORE.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False"
