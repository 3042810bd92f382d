"""DESIGN §2: `vmqpy/broker` is one process's broker; the layers above reach in, it never reaches out."""

import ast
from pathlib import Path

BROKER = Path(__file__).resolve().parents[2] / "vmqpy" / "broker"
FORBIDDEN = ("vmqpy.admin", "vmqpy.cluster", "vmqpy.assembly")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_broker_imports_neither_admin_nor_cluster():
    offenders = {f"{path.name}: {name}" for path in BROKER.glob("*.py") for name in imported_modules(path)
                 if name.startswith(FORBIDDEN)}
    assert not offenders
