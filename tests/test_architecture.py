"""Stages import one way: data ← features ← models ← training ← serving ← paycadence.cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["data", "features", "models", "training", "serving"]
CORE = {"config", "errors", "defaults", "guard"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "paycadence" and len(parts) > 1 and parts[1] in ORDER:
        return parts[1]
    return None


@pytest.mark.parametrize("stage", ORDER)
def test_stage_imports_only_earlier_stages(stage):
    allowed = set(ORDER[: ORDER.index(stage) + 1])
    for path in (ROOT / stage).rglob("*.py"):
        for module in imports(path):
            assert module.split(".")[0] not in ORDER, f"{path}: bare stage import {module}"
            target = stage_of(module)
            assert target is None or target in allowed, f"{path} imports later stage {module}"


def test_core_imports_no_stage():
    for path in (ROOT / "paycadence").rglob("*.py"):
        if path.name == "cli.py":
            continue
        for module in imports(path):
            assert stage_of(module) is None, f"{path} imports stage {module}"
