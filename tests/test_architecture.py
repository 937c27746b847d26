"""The layout is the architecture: import contracts (pyproject.toml) and a plain core."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_the_core_declares_no_flow_and_no_task() -> None:
    """Prefect's decorators belong to flows/ and tasks/: the core is plain code every face uses."""
    found = []
    for path in (REPO / "image_pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "prefect":
                names = {alias.name for alias in node.names}
                found += [f"{path.name}: {name}" for name in names & {"flow", "task"}]
    assert found == []
