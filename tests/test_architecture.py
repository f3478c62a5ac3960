"""Stages import one way: data ← features ← models ← training ← serving ← report ←
paycadence.cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["data", "features", "models", "training", "serving", "report"]
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
        if "cli" in path.relative_to(ROOT / "paycadence").parts:
            continue  # the commands call every stage
        for module in imports(path):
            assert stage_of(module) is None, f"{path} imports stage {module}"


def test_the_cli_is_one_module_per_group_of_commands_none_over_300_lines():
    modules = sorted((ROOT / "paycadence" / "cli").glob("*.py"))
    assert {p.stem for p in modules} >= {"common", "data", "learn", "serving", "report",
                                         "evaluation", "registry"}
    for path in modules:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 300, f"{path}: {lines} lines"


def test_the_report_is_a_stage_of_its_own():
    """The managers' report beside the service for dunning engines (the import order is
    checked above: serving never imports it)."""
    assert not list((ROOT / "serving").glob("report*.py"))
    assert (ROOT / "report" / "__init__.py").exists()
