"""Speed and memory of the point-in-time features at scale (issue 4's targets).

Generates a history (benchmarks/synthetic.py), writes it as Parquet, then in fresh processes:

1. features of all open invoices as of one date (target ≤ 20 s at 10M invoices / 1M debtors),
   with the process's peak memory (target ≤ 8 GiB);
2. the training snapshot table as ``paycadence train`` builds it with the default params
   (weekly dates over the whole history, capped at ``max_snapshot_rows`` by sampling
   (debtor, day) pairs; target ≤ 120 s), against the one-call-per-date way it replaced
   (estimated from the one-date run: dates × its time);
3. the pandas baseline (benchmarks/pandas_baseline.py) against polars on a 1M-invoice subset,
   same run, printing the ratio (aim ≥ 10×), after checking both give the same values;
4. the stateless path: features of a 200-debtor request with a year of history each
   (target ≤ 50 ms).

    .venv/bin/python benchmarks/features.py --invoices 10000000 --debtors 1000000
    .venv/bin/python benchmarks/features.py --invoices 1000000 --debtors 100000   # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import peak_gb

HERE = Path(__file__).resolve().parent
AS_OF = dt.date(2025, 6, 1)


def child(kind: str, folder: str, extra: str) -> None:
    """Run one measurement in this (fresh) process and print a JSON line."""
    sys.path.insert(0, str(HERE))
    import polars as pl

    from paycadence.data import read_clean
    from paycadence.features import build_snapshots, invoice_features

    tables = read_clean(folder)
    base = peak_gb()
    t = time.perf_counter()
    if kind == "one-date":
        rows = invoice_features(tables, as_of=AS_OF).height
    elif kind == "snapshots":
        from paycadence.config import Params
        from paycadence.features import snapshot_dates

        p = Params()
        dates = snapshot_dates(tables, every_days=p.features.snapshot_every_days,
                               min_history_days=p.features.min_history_days)
        frame = build_snapshots(tables, dates, horizon_days=p.train.horizon_days,
                                max_rows=p.features.max_snapshot_rows,
                                seed=p.features.snapshot_seed)
        rows = frame.height
        seconds = time.perf_counter() - t
        peak = peak_gb()
        print(json.dumps({"kind": kind, "seconds": seconds, "rows": rows, "dates": len(dates),
                          "share": float(frame["sampled_share"][0]), "peak_gb": peak,
                          "pairs": frame.select(pl.struct("debtor_id", "as_of").n_unique())
                          .item(), "loaded_gb": base}))
        return
    elif kind == "pandas":
        from pandas_baseline import CORE, core_features

        frames = {n: f.to_pandas() for n, f in tables.items()}
        for name, cols in (("invoices", ["issue_date", "due_date"]), ("payments", ["paid_on"]),
                           ("actions", ["sent_on"])):
            for c in cols:
                frames[name][c] = frames[name][c].astype("datetime64[ns]")
        t = time.perf_counter()
        slow = core_features(frames["invoices"], frames["payments"], frames["actions"], AS_OF)
        slow_s = time.perf_counter() - t
        t = time.perf_counter()
        fast = invoice_features(tables, as_of=AS_OF)
        fast_s = time.perf_counter() - t
        joined = fast.select("invoice_id", *CORE).join(
            pl.from_pandas(slow).select("invoice_id", *CORE), on="invoice_id", suffix="_pd")
        worst = max(float((joined[c] - joined[f"{c}_pd"]).abs().fill_null(0).max() or 0)
                    for c in CORE)
        print(json.dumps({"kind": kind, "pandas_s": slow_s, "polars_s": fast_s,
                          "rows": fast.height, "matched": joined.height,
                          "max_abs_diff": worst}))
        return
    seconds = time.perf_counter() - t
    peak = peak_gb()
    print(json.dumps({"kind": kind, "seconds": seconds, "rows": rows,
                      "peak_gb": peak, "loaded_gb": base}))


def run(kind: str, folder: Path, extra: str = "") -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(folder), extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stateless_ms(folder: Path) -> float:
    """Median features time of a 200-debtor request with their history, in process (the
    request built from open invoices and known rows as a stateless caller sends them)."""
    sys.path.insert(0, str(HERE.parent / "tests" / "serving"))
    from conftest import request_for

    from paycadence.data import Tables, read_clean
    from paycadence.features import invoice_features
    from paycadence.serving.engine import request_tables
    from paycadence.serving.schemas import RecommendRequest

    tables: Tables = read_clean(folder)
    ids = invoice_features(tables, as_of=AS_OF)["debtor_id"].unique().sort().head(200)
    own = tables.for_debtors(ids.to_list())
    body = request_for(own, AS_OF, stateless=True, limit=200)
    req = RecommendRequest.model_validate(body)
    times = []
    for _ in range(15):
        t = time.perf_counter()
        built, open_ids, _ = request_tables(req.debtors, None)
        invoice_features(built, as_of=req.as_of, invoice_ids=open_ids)
        times.append(time.perf_counter() - t)
    times.sort()
    return 1000 * times[len(times) // 2], len(req.debtors)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000_000)
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="reuse a folder an earlier run generated")
    parser.add_argument("--skip-snapshots", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from synthetic import generate

    from paycadence.data import write_tables

    small_n = min(args.invoices, 1_000_000)
    if args.data is not None:
        tmp = args.data
    else:
        tmp = Path(tempfile.mkdtemp(prefix="pc-features-"))
        t = time.perf_counter()
        big = generate(args.invoices, args.debtors)
        write_tables(big, tmp / "big")
        write_tables(generate(small_n, max(small_n // 10, 1), seed=1), tmp / "small")
        del big
        print(f"generated {args.invoices:,} invoices / {args.debtors:,} debtors and a "
              f"{small_n:,}-invoice subset in {time.perf_counter() - t:.0f} s ({tmp})")

    one = run("one-date", tmp / "big")
    print(f"features of all open invoices as of {AS_OF}: {one['rows']:,} rows in "
          f"{one['seconds']:.1f} s; peak memory {one['peak_gb']:.2f} GB "
          f"(tables loaded: {one['loaded_gb']:.2f} GB)")
    if not args.skip_snapshots:
        snap = run("snapshots", tmp / "big")
        per_date = one["seconds"] * snap["dates"]
        print(f"training snapshot table, {snap['dates']} weekly dates: {snap['rows']:,} rows "
              f"({snap['pairs']:,} debtor-days, {snap['share']:.1%} of all) in "
              f"{snap['seconds']:.1f} s; peak memory {snap['peak_gb']:.2f} GB; one call per "
              f"date would take ≈ {per_date:.0f} s (ratio {per_date / snap['seconds']:.0f}x)")
    pd_run = run("pandas", tmp / "small")
    print(f"{small_n:,} invoices, core features as of {AS_OF}: pandas {pd_run['pandas_s']:.2f} s"
          f", polars (all features) {pd_run['polars_s']:.2f} s → ratio "
          f"{pd_run['pandas_s'] / pd_run['polars_s']:.1f}x "
          f"({pd_run['matched']:,} rows matched, max |diff| {pd_run['max_abs_diff']:.2g})")
    ms, n = stateless_ms(tmp / "small")
    print(f"stateless request, {n} debtors with their history: features in {ms:.1f} ms (median)")


if __name__ == "__main__":
    main()
