"""The daily batch at 1M, 3M and 10M invoices: single machine against Spark ``local[2]``.

Generates each history (benchmarks/synthetic.py, ten invoices per debtor, two years), writes
it as Parquet and checks it into the clean-tables layout of ``paycadence ingest`` (five
``NAME.parquet`` and ``summary.json``): the folder that ``paycadence recommend --data CLEAN``
and ``--engine spark`` both read. Then, each in a fresh process:

- ``local``: :func:`paycadence.serving.batch.recommend_batch`, the single-machine batch
  (polars on every core of the machine; it validates the tables again, as it always does);
- ``spark``: :func:`paycadence.serving.spark_batch.recommend_spark` on ``--master``
  (``local[2]``; ``--driver-memory`` sets the JVM heap, where a local master's executor runs
  too), the session started first and timed apart, and the driver's copy of the result into
  the one output file timed again on its own.

Both score with a champion trained on a small simulated company (benchmarks/company.py) in a
temporary MLflow store, so LightGBM and the explanations cost what they cost in production;
``--store`` reuses the ``mlflow.db`` of an earlier run, ``--fallback`` measures the rule-based
fallback instead.

Printed per run: recommendations, seconds, invoices per second (and per core), and peak
memory. Memory is the high-water mark of resident memory of the measuring process (VmHWM: the
driver). For Spark its child processes are sampled every 0.25 s with psutil (peaks between two
samples can be missed): the JVM (driver and, on a local master, the executor) by RSS, and the
Python workers that run the buckets by PSS (they are forked from one daemon and share pages;
PSS splits shared pages, so their sum is not counted twice), with the largest single worker's
RSS. At the end: how time grew with size, and the size exponent it implies.

    .venv/bin/python benchmarks/scale.py --invoices 1000000 3000000 10000000 --driver-memory 4g
    .venv/bin/python benchmarks/scale.py --invoices 50000 --engines local spark   # quick check
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from measure import peak_gb

HERE = Path(__file__).resolve().parent
#: The last day of the synthetic history (START + 730 days − 1): the morning of the batch.
AS_OF = dt.date(2025, 12, 30)
INVOICES_PER_DEBTOR = 10
ENGINES = ("local", "spark")
#: Debtors of the simulated company the champion is trained on (two years).
DEBTORS_TRAINED = 200


class ChildMemory:
    """Peak memory of this process's descendants, sampled in a thread (psutil)."""

    def __init__(self, every: float = 0.25):
        self.every = every
        self.jvm_rss = 0  # bytes
        self.workers_pss = 0  # bytes, summed over the Python workers alive at once
        self.worker_rss = 0  # bytes, the largest single Python worker
        self.workers = 0  # the most Python workers alive at once
        self.seen: dict[int, str] = {}  # every Python process seen: its arguments
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.every):
            pss, n = 0, 0
            for proc in me.children(recursive=True):
                try:
                    if proc.name() == "java":
                        self.jvm_rss = max(self.jvm_rss, proc.memory_info().rss)
                    elif "python" in proc.name().lower():
                        self.seen.setdefault(proc.pid, " ".join(proc.cmdline()[1:4]))
                        full = proc.memory_full_info()
                        pss += getattr(full, "pss", full.rss)
                        self.worker_rss = max(self.worker_rss, full.rss)
                        n += 1
                except psutil.Error:  # it ended between the listing and the reading
                    continue
            self.workers_pss = max(self.workers_pss, pss)
            self.workers = max(self.workers, n)


def child(engine: str, folder: str, out_dir: str, master: str, fallback: str) -> None:
    """Run one engine on ``folder`` in this (fresh) process and print a JSON line."""
    from paycadence.config import get_settings, load_policy

    settings = get_settings()
    policy = load_policy(None)
    name = "no-such-model" if fallback == "1" else settings.model_name
    out = Path(out_dir) / "recs.parquet"
    start_s = gather_s = 0.0
    heap = None
    with ChildMemory() as memory:
        if engine == "local":
            from paycadence.serving.batch import recommend_batch

            t = time.perf_counter()
            result = recommend_batch(folder, as_of=AS_OF, out=out, policy=policy,
                                     model_name=name, alias=settings.model_alias)
            seconds = time.perf_counter() - t
            count, version, buckets = len(result.recommendations), result.model_version, None
            cores = os.cpu_count()
        else:
            from paycadence.serving.spark_batch import recommend_spark, spark_session

            t = time.perf_counter()
            spark, _ = spark_session(master)
            start_s = time.perf_counter() - t
            cores = spark.sparkContext.defaultParallelism
            heap = spark.sparkContext.getConf().get("spark.driver.memory", "1g")
            t = time.perf_counter()
            result = recommend_spark(folder, as_of=AS_OF, out=out, policy=policy,
                                     model_name=name, alias=settings.model_alias)
            seconds = time.perf_counter() - t
            count, version, buckets = result.count, result.model_version, result.buckets
            spark.stop()
            # the driver's own share: copying Spark's sorted part files into the one --out file
            from paycadence.serving.spark_batch import gather

            t = time.perf_counter()
            gather(result.parts, Path(out_dir) / "again.parquet")
            gather_s = time.perf_counter() - t
    print(json.dumps({"engine": engine, "seconds": seconds, "start_s": start_s,
                      "gather_s": gather_s, "heap": heap, "out_gb": out.stat().st_size / 1e9,
                      "count": count, "model_version": version, "buckets": buckets,
                      "cores": cores, "driver_gb": peak_gb(), "jvm_gb": memory.jvm_rss / 1e9,
                      "workers_gb": memory.workers_pss / 1e9,
                      "worker_gb": memory.worker_rss / 1e9, "workers": memory.workers,
                      "seen": memory.seen}))


def run(engine: str, folder: Path, out_dir: Path, master: str, fallback: bool,
        driver_memory: str | None) -> dict:
    """One measurement in a fresh process; its JSON line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if driver_memory:  # on a local master the executor lives in the driver's JVM
        env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {driver_memory} pyspark-shell"
    done = subprocess.run([sys.executable, __file__, "--child", engine, str(folder),
                           str(out_dir), master, "1" if fallback else "0"],
                          capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.exit(f"{engine} run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(n: int, folder: Path) -> float:
    """Generate ``n`` invoices into ``folder/raw`` and check them into ``folder/clean``;
    returns the seconds it took."""
    from synthetic import generate

    from paycadence.data import write_tables
    from paycadence.data.ingest import ingest

    t = time.perf_counter()
    tables = generate(n, max(n // INVOICES_PER_DEBTOR, 1))
    write_tables(tables, folder / "raw")
    del tables
    checked = ingest(folder / "raw", folder / "clean")
    quarantined = checked.quarantine.height
    if quarantined:
        sys.exit(f"{quarantined} generated rows were quarantined: see {folder / 'clean'}")
    return time.perf_counter() - t


def champion(store: Path | None, fallback: bool) -> str:
    """Point MLflow at a store holding a champion (trained here unless ``store`` is given)."""
    if fallback:
        return "rule-based fallback (no model)"
    if store is not None:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store.resolve()}"
        return f"champion from {store}"
    from company import company

    t = time.perf_counter()
    made = company(DEBTORS_TRAINED, 730, prefix="pc-scale-model-")
    return (f"champion version {made.trained.version} trained on a simulated company of "
            f"{DEBTORS_TRAINED} debtors in {time.perf_counter() - t:.0f} s (reuse: --store "
            f"{made.tmp / 'mlflow.db'})")


def line(n: int, r: dict) -> str:
    rate = n / r["seconds"]
    text = (f"  {r['engine']:5s} {r['count']:>9,} recommendations in {r['seconds']:7.1f} s → "
            f"{rate:>8,.0f} invoices/s ({rate / r['cores']:,.0f} per core, {r['cores']} cores)"
            f"; model {r['model_version']}; peak memory: driver {r['driver_gb']:.2f} GB")
    if r["engine"] == "spark":
        text += (f", JVM {r['jvm_gb']:.2f} GB (heap {r['heap']}), Python daemon and workers "
                 f"{r['workers_gb']:.2f} GB (PSS, {r['workers']} processes at most; largest "
                 f"{r['worker_gb']:.2f} GB RSS); "
                 f"{r['buckets']} buckets; session start {r['start_s']:.1f} s (not counted); "
                 f"of the time, the driver's copy into --out: {r['gather_s']:.1f} s")
    text += f"; {r['out_gb']:.3f} GB written"
    return text


def growth(results: dict[int, dict[str, dict]]) -> None:
    """Time ratios between consecutive sizes and the exponent k of time ∝ invoices^k."""
    sizes = sorted(results)
    for a, b in zip(sizes, sizes[1:], strict=False):
        for engine in ENGINES:
            if engine in results[a] and engine in results[b]:
                ta, tb = results[a][engine]["seconds"], results[b][engine]["seconds"]
                k = math.log(tb / ta) / math.log(b / a)
                print(f"  {engine:5s} {a:,} → {b:,} invoices (×{b / a:.1f}): time ×{tb / ta:.2f}"
                      f" (exponent {k:.2f}); at this rate 10M would take "
                      f"{tb * (1e7 / b) ** k:.0f} s, 100M {tb * (1e8 / b) ** k:.0f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+",
                        default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--driver-memory", help="Spark driver JVM heap, e.g. 4g (default: "
                        "Spark's, 1g; on local[N] the executor runs in that JVM)")
    parser.add_argument("--store", type=Path, help="mlflow.db holding a champion to reuse")
    parser.add_argument("--fallback", action="store_true", help="no model: the rule fallback")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    print(f"model: {champion(args.store, args.fallback)}; as of {AS_OF}; "
          f"{os.cpu_count()} cores; Spark master {args.master}, driver memory "
          f"{args.driver_memory or 'Spark default (1g)'}")
    results: dict[int, dict[str, dict]] = {}
    for n in sorted(args.invoices):
        folder = Path(tempfile.mkdtemp(prefix=f"pc-scale-{n}-"))
        try:
            made = prepare(n, folder)
            size = sum(p.stat().st_size for p in (folder / "clean").glob("*.parquet")) / 1e9
            print(f"{n:,} invoices / {max(n // INVOICES_PER_DEBTOR, 1):,} debtors, "
                  f"{size:.3f} GB of clean Parquet (generated and checked in {made:.0f} s, "
                  f"{folder / 'clean'}):", flush=True)
            results[n] = {}
            for engine in args.engines:
                r = run(engine, folder / "clean", folder / engine, args.master, args.fallback,
                        args.driver_memory)
                results[n][engine] = r
                print(line(n, r), flush=True)
            counts = {r["count"] for r in results[n].values()}
            if len(counts) > 1:
                print(f"  WARNING: the engines recommended for different numbers of debtors: "
                      f"{sorted(counts)}")
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    if len(results) > 1:
        print("growth:")
        growth(results)


if __name__ == "__main__":
    main()
