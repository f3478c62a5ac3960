"""What the checks on a model's files cost when it is loaded (docs/models.md, "Model files and
checksums"): each step of ``RiskModels.load``, the whole load, and the three plain
``Booster(model_file=...)`` calls it replaces.

``.venv/bin/python benchmarks/model_load.py [--model-dir DIR] [--runs 7]``: DIR is a folder
written by ``RiskModels.save`` (default: the champion of the tracking store in
``MLFLOW_TRACKING_URI``, downloaded). Prints the median, min and max of each step in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def timed(fn, runs: int) -> str:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return (f"median {statistics.median(times) * 1000:7.1f} ms (min {min(times) * 1000:.1f}, "
            f"max {max(times) * 1000:.1f})")


def main() -> None:
    import lightgbm as lgb

    from paycadence.models import RiskModels, files

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    folder = args.model_dir
    if folder is None:
        from paycadence.training import tracking

        folder, _ = tracking.download_model("paycadence-risk", "champion")
    read = {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.suffix in (".txt", ".json") and p.name != files.CHECKSUMS}
    boosters = {n: b for n, b in read.items() if n.endswith(".txt")}
    print("files:", ", ".join(f"{n} {len(b) / 1024:.0f} KB" for n, b in read.items()))
    RiskModels.load(folder).warm()  # imports, numba's compiled kernel
    expected = files.recorded(folder)
    steps = {
        "sha256 of every file": lambda: files.verify(read, expected) if expected else None,
        "structure checks": lambda: [files.check_structure(n, b) for n, b in boosters.items()],
        "parse in a child process": lambda: files.parse_in_child(boosters),
        "parse in this process": lambda: [lgb.Booster(model_str=b.decode())
                                          for b in boosters.values()],
        "whole RiskModels.load": lambda: RiskModels.load(folder),
        "before: Booster(model_file=...) x3": lambda: [lgb.Booster(model_file=str(folder / n))
                                                       for n in boosters],
    }
    models = RiskModels.load(folder)
    steps["output checks (probe rows)"] = lambda: models.check_outputs(None)
    from paycadence.models import treeshap

    # built when a model is loaded, before these checks too (RiskModels.warm)
    steps["SHAP tables of late (both)"] = lambda: treeshap.tables(models.boosters["late"])
    for name, fn in steps.items():
        print(f"{name:36s} {timed(fn, args.runs)}")


if __name__ == "__main__":
    main()
