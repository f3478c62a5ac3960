"""The wheel holds every sub-folder, and only ``paycadence`` lands in site-packages."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"data": "paycadence.data", "features": "paycadence.features",
          "models": "paycadence.models", "training": "paycadence.training",
          "serving": "paycadence.serving", "report": "paycadence.report"}


def declared() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(config["tool"]["setuptools"]["packages"])


def test_every_code_folder_is_listed_as_a_package():
    on_disk = {"paycadence"}
    for path in (ROOT / "paycadence").rglob("__init__.py"):
        rel = path.parent.relative_to(ROOT).parts
        on_disk.add(".".join(rel))
    for folder, package in STAGES.items():
        for path in (ROOT / folder).rglob("__init__.py"):
            rel = path.parent.relative_to(ROOT / folder).parts
            on_disk.add(".".join((package, *rel)))
    data_only = declared() - on_disk  # folders of package data (mappings): no code in them
    for package in data_only:
        folder = ROOT.joinpath(*package.split("."))
        assert folder.is_dir() and not list(folder.glob("*.py")), package
    assert on_disk <= declared()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("paycadence-*.whl"))


def test_wheel_has_one_top_level_package_and_every_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"paycadence"}
    for folder, package in STAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).as_posix()
            assert f"{package.replace('.', '/')}/{rel}" in names, rel
    assert "paycadence/defaults/policy.yaml" in names
    assert "paycadence/defaults/mappings/ibm-ar.mapping.yaml" in names
