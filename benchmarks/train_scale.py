"""Training snapshots at scale: peak driver memory of ``features`` on one machine against Spark.

For each book size, generates a history (benchmarks/synthetic.py, ten invoices per debtor over
two years) checked into the clean-tables layout (as benchmarks/scale.py does), then, each in a
fresh process, with the repository's params.yaml (``features.max_snapshot_rows`` 2,000,000,
stratified, ``train.horizon_days``):

- ``local``: what ``paycadence features --data CLEAN`` does: the tables read and checked
  (:func:`paycadence.data.ingest.ingest`), then
  :func:`paycadence.training.snapshots.save_snapshots`;
- ``spark``: ``paycadence features --engine spark --master local[2]``:
  :func:`paycadence.serving.spark_snapshots.snapshots_spark` (the session started first, timed
  apart);
- ``read``: what ``train --features`` then reads of the snapshots (the sample only:
  ``pl.read_parquet`` of the Spark part files);
- ``inputs``: what ``train --features`` held on the driver before it fits, before it was
  bounded: the tables read and checked (``ingest``), the snapshots checked against them
  (``load_snapshots``, which computes the tables' fingerprint) and the treated rows of the
  response model (``treated_rows``: features of every logged action's invoice and day before
  the split);
- ``bounded``: what it holds now before it fits: the clean tables scanned
  (:class:`paycadence.training.bounded.ScannedTables`: the fingerprint summed batch by batch,
  the last day), the snapshots, the saved treated rows (``load_treated``) and the keys of the
  logged actions (``acted_keys``);
- ``train-old``: the whole of ``train --features`` as it ran before: the tables ingested in
  memory, then :func:`paycadence.training.train` on them and the saved snapshots (fits,
  holdout, MLflow into a temporary store);
- ``train``: the whole of ``train --features`` now, as the command runs it: the clean tables
  scanned (``ScannedTables``), then ``train`` on them and the saved snapshots;
- ``train-base``: the same as ``train`` with the code of an earlier commit (``--baseline REV``,
  default HEAD: ``git archive`` of it, imported in place of the working tree's), for a same-run
  before/after of a change to the fit; the model files of both are compared byte for byte.

Printed per run: rows, seconds and peak memory: the measuring process's high-water mark
(VmHWM: the driver), and for Spark its children sampled every 0.25 s (benchmarks/scale.py's
``ChildMemory``: the JVM by RSS, the Python workers by PSS summed, the largest by RSS). Then
each driver's peak against the local run's at the same size, and how each grew with size.

    .venv/bin/python benchmarks/train_scale.py --invoices 200000 1000000 --driver-memory 4g
    .venv/bin/python benchmarks/train_scale.py --invoices 20000 --kinds local inputs  # quick
    .venv/bin/python benchmarks/train_scale.py --invoices 200000 --kinds local inputs bounded \
        train-old train            # train --features before and after, against the local build
    .venv/bin/python benchmarks/train_scale.py --invoices 200000 --kinds local train-base train \
        --baseline 1da91cb         # the fit's memory: that commit's code against the working tree
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import peak_gb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KINDS = ("local", "spark", "read", "inputs", "bounded", "train-old", "train-base", "train")
#: Each kind's peak is also printed against these kinds', when they ran.
BASES = {"train": ("train-old", "train-base"), "bounded": ("inputs",)}
STAGES = ("data", "features", "models", "training", "serving")


class TreeFinder:
    """Imports ``paycadence`` from an exported source tree (the package's folder mapping of
    pyproject.toml) instead of the installed working tree: ``train-base``'s code."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, name, path=None, target=None):
        import importlib.util

        parts = name.split(".")
        if parts[0] != "paycadence":
            return None
        loc = (self.root.joinpath(*parts[1:]) if len(parts) > 1 and parts[1] in STAGES
               else self.root.joinpath("paycadence", *parts[1:]))
        if loc.is_dir():
            return importlib.util.spec_from_file_location(
                name, loc / "__init__.py", submodule_search_locations=[str(loc)])
        if loc.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(name, loc.with_suffix(".py"))
        return None


def child(kind: str, folder: str, out_dir: str, master: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    sys.path.insert(0, str(HERE))
    if kind == "train-base":
        sys.meta_path.insert(0, TreeFinder(Path(os.environ["PC_BASELINE_TREE"])))
    import polars as pl
    from scale import ChildMemory

    from paycadence.config import load_params

    params = load_params(ROOT / "params.yaml")
    out = Path(out_dir)
    start_s, buckets, plan, extra = 0.0, None, None, {}
    with ChildMemory() as memory:
        if kind == "local":
            from paycadence.data.ingest import ingest
            from paycadence.training.train import save_snapshots

            t = time.perf_counter()
            tables = ingest(folder).tables
            _, rows = save_snapshots(tables, params, out)
            seconds = time.perf_counter() - t
        elif kind == "spark":
            from paycadence.serving.spark_batch import spark_session
            from paycadence.serving.spark_snapshots import snapshots_spark

            t = time.perf_counter()
            spark, _ = spark_session(master)
            start_s = time.perf_counter() - t
            t = time.perf_counter()
            result = snapshots_spark(folder, params, out)
            seconds = time.perf_counter() - t
            rows, buckets, plan = result.rows, result.buckets, result.plan
            spark.stop()
        elif kind == "read":
            from paycadence.training.train import SNAPSHOT_FILE

            t = time.perf_counter()
            frame = pl.read_parquet(sorted((out / SNAPSHOT_FILE).glob("*.parquet")))
            rows, seconds = frame.height, time.perf_counter() - t
        elif kind == "bounded":
            import datetime as dt

            from paycadence.training.bounded import ScannedTables
            from paycadence.training.train import (
                acted_keys,
                load_snapshots,
                load_treated,
                time_split,
            )

            t = time.perf_counter()
            tables = ScannedTables(Path(folder))
            snaps = load_snapshots(out, tables, params)  # scans the fingerprint
            last = tables.last_date
            p = params.train
            _, _, split = time_split(snaps, holdout_share=p.holdout_share,
                                     embargo_days=p.embargo_days)
            before = split - dt.timedelta(days=p.embargo_days)
            treated = load_treated(out, before=before, data_end=last)
            keys = acted_keys(tables, before)
            rows, seconds = snaps.height, time.perf_counter() - t
            extra = {"treated": treated.height if treated is not None else -1,
                     "keys": keys.height, "snaps_gb": snaps.estimated_size() / 1e9}
        elif kind in ("train-old", "train-base", "train"):
            from paycadence.training import train

            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{out.parent / 'mlflow.db'}"
            os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
            t = time.perf_counter()
            if kind == "train-old":
                from paycadence.data.ingest import ingest

                tables = ingest(folder).tables
            else:
                from paycadence.training.bounded import ScannedTables, clean_tables

                tables = ScannedTables(clean_tables(folder, out.parent / "unused"))
            result = train(tables, params=params, data_dir=folder, snapshot_dir=out,
                           model_name=f"bench-{kind}")
            rows, seconds = result.train_rows + result.holdout_rows, time.perf_counter() - t
            result.models.save(out.parent / f"model-{kind}")
            extra = {"auc": result.metrics["late_auc"],
                     "code": sys.modules["paycadence.training.train"].__file__}
        else:
            import datetime as dt

            from paycadence.data.ingest import ingest
            from paycadence.training.train import load_snapshots, time_split, treated_rows

            t = time.perf_counter()
            tables = ingest(folder).tables
            snaps = load_snapshots(out, tables, params)
            p = params.train
            _, _, split = time_split(snaps, holdout_share=p.holdout_share,
                                     embargo_days=p.embargo_days)
            treated = treated_rows(tables, before=split - dt.timedelta(days=p.embargo_days),
                                   horizon_days=p.horizon_days, data_end=tables.last_date)
            rows, seconds = snaps.height, time.perf_counter() - t
            extra = {"treated": treated.height, "actions": tables.actions.height,
                     "tables_gb": sum(f.estimated_size() for _, f in tables.items()) / 1e9,
                     "snaps_gb": snaps.estimated_size() / 1e9,
                     "treated_gb": treated.estimated_size() / 1e9}
    print(json.dumps({"kind": kind, "rows": rows, "seconds": seconds, "start_s": start_s,
                      "buckets": buckets, "plan": plan, "driver_gb": peak_gb(),
                      "jvm_gb": memory.jvm_rss / 1e9, "workers_gb": memory.workers_pss / 1e9,
                      "worker_gb": memory.worker_rss / 1e9, "workers": memory.workers,
                      **extra}))


def run(kind: str, folder: Path, out_dir: Path, master: str, driver_memory: str | None,
        tree: Path | None = None) -> dict:
    env = dict(os.environ)
    if tree is not None:
        env["PC_BASELINE_TREE"] = str(tree)
    if driver_memory:  # on a local master the executor lives in the driver's JVM
        env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {driver_memory} pyspark-shell"
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(folder),
                           str(out_dir), master], capture_output=True, text=True, check=False,
                          env=env)
    if done.returncode != 0:
        sys.exit(f"{kind} run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def line(r: dict, base: dict | None, others: dict[str, dict]) -> str:
    text = (f"  {r['kind']:9s} {r['rows']:>10,} snapshot rows in {r['seconds']:7.1f} s; peak "
            f"memory: driver {r['driver_gb']:.2f} GB")
    if base is not None and r["kind"] != "local":
        text += f" ({r['driver_gb'] / base['driver_gb']:.2f}× the local run's"
        for other in filter(None, map(others.get, BASES.get(r["kind"], ()))):
            text += f", {r['driver_gb'] / other['driver_gb']:.2f}× the {other['kind']} run's"
        text += ")"
    if r["kind"] == "inputs":
        text += (f"; of it: the tables {r['tables_gb']:.2f} GB, the snapshots "
                 f"{r['snaps_gb']:.2f} GB, {r['treated']:,} treated rows (of {r['actions']:,} "
                 f"actions) {r['treated_gb']:.2f} GB (polars' estimated sizes)")
    if r["kind"] == "bounded":
        text += (f"; of it: the snapshots {r['snaps_gb']:.2f} GB, {r['treated']:,} saved "
                 f"treated rows, {r['keys']:,} action keys")
    if r["kind"] in ("train-old", "train-base", "train"):
        text += f"; p_late AUC {r['auc']:.4f}"
    if r["kind"] == "spark":
        text += (f", JVM {r['jvm_gb']:.2f} GB, Python workers {r['workers_gb']:.2f} GB (PSS, "
                 f"{r['workers']} at most; largest {r['worker_gb']:.2f} GB RSS); "
                 f"{r['buckets']} buckets; session start {r['start_s']:.1f} s (not counted); "
                 f"kept {json.dumps(r['plan'])}")
    return text


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--driver-memory", help="Spark driver JVM heap, e.g. 4g")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="what to measure (read and inputs use the spark run's output, "
                        "or the local one's without it)")
    parser.add_argument("--baseline", default="HEAD",
                        help="train-base's commit (default HEAD: the working tree's changes "
                        "against it)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from scale import INVOICES_PER_DEBTOR, prepare

    print(f"{os.cpu_count()} cores; Spark master {args.master}, driver memory "
          f"{args.driver_memory or 'Spark default (1g)'}; params {ROOT / 'params.yaml'}")
    results: dict[int, dict[str, dict]] = {}
    for n in sorted(args.invoices):
        folder = Path(tempfile.mkdtemp(prefix=f"pc-train-scale-{n}-"))
        try:
            made = prepare(n, folder)
            print(f"{n:,} invoices / {max(n // INVOICES_PER_DEBTOR, 1):,} debtors (generated "
                  f"and checked in {made:.0f} s, {folder / 'clean'}):", flush=True)
            results[n] = {}
            for kind in args.kinds:
                out = folder / ("local" if kind == "local" or "spark" not in args.kinds
                                else "spark")
                tree = None
                if kind == "train-base":
                    tree = folder / "baseline"
                    tree.mkdir()
                    subprocess.run(f"git archive {args.baseline} | tar -x -C {tree}",
                                   shell=True, check=True, cwd=ROOT)
                r = run(kind, folder / "clean", out, args.master, args.driver_memory, tree)
                results[n][kind] = r
                print(line(r, results[n].get("local"), results[n]), flush=True)
            if {"train-base", "train"} <= results[n].keys():
                mine, base = (sorted((folder / k).iterdir())
                              for k in ("model-train", "model-train-base"))
                differ = [p.name for p in mine if not (folder / "model-train-base" / p.name)
                          .is_file() or p.read_bytes() != (folder / "model-train-base" / p.name)
                          .read_bytes()] if len(mine) == len(base) else ["(other files)"]
                print(f"  model files of train against train-base: {len(mine) - len(differ)} "
                      f"of {len(mine)} byte-identical{'; differ: ' if differ else ''}"
                      f"{', '.join(differ)}")
            rows = {r["rows"] for k, r in results[n].items() if not k.startswith("train")}
            if len(rows) > 1:
                print("  WARNING: the engines built different numbers of rows")
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    sizes = sorted(results)
    for a, b in zip(sizes, sizes[1:], strict=False):
        for kind in args.kinds:
            ga, gb = results[a][kind]["driver_gb"], results[b][kind]["driver_gb"]
            print(f"  {kind:9s} {a:,} → {b:,} invoices (×{b / a:.1f}): driver peak ×{gb / ga:.2f}"
                  f" ({ga:.2f} → {gb:.2f} GB)")


if __name__ == "__main__":
    main()
