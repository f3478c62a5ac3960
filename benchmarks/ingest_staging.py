"""What the line-by-line staging pass (data/csvstage.py) costs: ingest before and after it, in
one run, each in a fresh process.

"Before" is the code of the commit before data/csvstage.py was added (``--before`` to choose
another), exported with ``git archive`` into a temporary folder and imported from there;
"after" is this checkout. Both read the same files: all five tables of a synthetic history
(benchmarks/synthetic.py) as CSV, written by polars (LF, quotes only where needed), and three
variants of its invoices file: CRLF line endings, every field quoted (the slow path), and one
line with a field too many at line 500,001. Before and after runs alternate (so a change in
the machine's load hits both). Printed per variant: wall seconds and CPU seconds (all threads
of the child), each the median of ``--repeats``, peak resident memory of the child (VmHWM),
and the after/before ratios of both: on a shared machine the CPU ratio is the steadier one.

    .venv/bin/python benchmarks/ingest_staging.py --invoices 1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from measure import peak_gb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAGES = ("data", "features", "models", "training", "serving")


def child(folder: str, mode: str, out: str) -> None:
    from paycadence.data.ingest import ingest, ingest_files

    t, cpu = time.perf_counter(), time.process_time()
    try:
        if mode == "memory":
            result = ingest(folder)
        else:
            result = ingest_files(folder, out)
    except Exception as exc:  # noqa: BLE001 - "before" may refuse a file; say how
        print(json.dumps({"error": str(exc).splitlines()[0][:90]}))
        return
    inv = result.counts["invoices"]
    print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - cpu,
                      "peak_gb": peak_gb(),
                      "kept": inv["kept"], "quarantined": inv["quarantined"]}))


def export_before(rev: str, into: Path) -> Path:
    """The package as of ``rev``, laid out as the installed package (``paycadence.data``...)."""
    archive = into / "before.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev,
                    "paycadence", *STAGES], check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    pkg = into / "pkg"
    pkg.mkdir()
    (tree / "paycadence").rename(pkg / "paycadence")
    for stage in STAGES:
        (tree / stage).rename(pkg / "paycadence" / stage)
    return pkg


def default_before() -> str:
    added = subprocess.run(["git", "-C", str(REPO), "log", "--diff-filter=A", "--format=%H",
                            "--", "data/csvstage.py"], capture_output=True, text=True,
                           check=True).stdout.split()
    return f"{added[-1]}~1" if added else "HEAD"


def variants(folder: Path, n: int) -> dict[str, Path]:
    """The clean history, and copies whose invoices file is written differently."""
    out = {"LF, as polars writes": folder}
    lines = (folder / "invoices.csv").read_bytes().split(b"\n")
    for label, name in (("CRLF", "crlf"), ("every field quoted", "quoted"),
                        ("a ragged line at 500,001", "ragged")):
        copy = folder.parent / name
        copy.mkdir()
        for p in folder.glob("*.csv"):
            if p.name != "invoices.csv":
                (copy / p.name).symlink_to(p)
        target = copy / "invoices.csv"
        if name == "crlf":
            target.write_bytes(b"\r\n".join(lines))
        elif name == "quoted":
            with open(folder / "invoices.csv", newline="") as src, \
                    open(target, "w", newline="") as dst:
                csv.writer(dst, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
                    csv.reader(src))
        else:
            bad = list(lines)
            at = min(500_000, n - 1)  # line at + 1; line 1 is the header
            bad[at] += b",surplus"
            target.write_bytes(b"\n".join(bad))
        out[label] = copy
    return out


def run_child(folder: Path, mode: str, env: dict | None, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(folder), mode, str(out)],
                          capture_output=True, text=True, check=True, env=env,
                          cwd=str(folder.parent))
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(folder: Path, mode: str, pythonpath: str, repeats: int) -> tuple[dict, dict]:
    """(before, after), their runs alternating."""
    import os

    envs = {"before": {**os.environ, "PYTHONPATH": pythonpath}, "after": None}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for k in range(repeats):
        for which, env in envs.items():
            if runs[which] and "error" in runs[which][-1]:
                continue
            out = folder.parent / f"clean-{folder.name}-{mode}-{which}-{k}"
            runs[which].append(run_child(folder, mode, env, out))
            shutil.rmtree(out, ignore_errors=True)
    result = []
    for which in ("before", "after"):
        r = runs[which]
        if "error" in r[-1]:
            result.append(r[-1])
            continue
        result.append({**r[-1], "seconds": statistics.median(x["seconds"] for x in r),
                       "cpu": statistics.median(x["cpu"] for x in r),
                       "peak_gb": max(x["peak_gb"] for x in r)})
    return result[0], result[1]


def show(r: dict) -> str:
    if "error" in r:
        return f"{'stops: ' + r['error']:46s}"
    return (f"{r['seconds']:5.2f} s (CPU {r['cpu']:5.2f} s), {r['peak_gb']:.2f} GB, "
            f"kept {r['kept']:,} quarantined {r['quarantined']:,}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", default=None, help="git revision of 'before'")
    parser.add_argument("--modes", nargs="+", default=["stream", "memory"])
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from synthetic import generate

    before = args.before or default_before()
    work = Path(tempfile.mkdtemp(prefix="pc-staging-"))
    pkg = export_before(before, work)
    folder = work / "lf"
    folder.mkdir()
    tables = generate(args.invoices, max(args.invoices // 10, 1))
    for name, frame in tables.items():
        frame.write_csv(folder / f"{name}.csv", date_format="%Y-%m-%d")
    del tables
    size = (folder / "invoices.csv").stat().st_size / 1e6
    print(f"{args.invoices:,} invoices ({size:.0f} MB invoices.csv); before = {before}; "
          f"median of {args.repeats}; {work}")
    for label, path in variants(folder, args.invoices).items():
        for mode in args.modes:
            b, a = measure(path, mode, str(pkg), args.repeats)
            both = "error" not in a and "error" not in b
            ratio = (f"wall {a['seconds'] / b['seconds']:.2f}x, CPU {a['cpu'] / b['cpu']:.2f}x"
                     if both else "-")
            print(f"{label:26s} {mode:6s} before {show(b)} | after {show(a)} | after/before "
                  f"{ratio}", flush=True)


if __name__ == "__main__":
    main()
