"""Time and peak memory of ingest on large CSV tables, in memory and streamed, fresh processes.

    .venv/bin/python benchmarks/ingest.py --invoices 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import peak_gb

HERE = Path(__file__).resolve().parent


def child(folder: str, mode: str) -> None:
    from paycadence.data.ingest import ingest, ingest_files

    t = time.perf_counter()
    if mode == "memory":
        result = ingest(folder)
    else:
        result = ingest_files(folder, Path(folder) / "clean")
    print(json.dumps({"seconds": time.perf_counter() - t,
                      "peak_gb": peak_gb(),
                      "kept": result.counts["invoices"]["kept"]}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from synthetic import generate

    for n in args.invoices:
        folder = Path(tempfile.mkdtemp(prefix="pc-ingest-"))
        tables = generate(n, max(n // 10, 1))
        for name, frame in tables.items():
            frame.write_csv(folder / f"{name}.csv", date_format="%Y-%m-%d")
        del tables
        size = sum(p.stat().st_size for p in folder.glob("*.csv")) / 1e9
        for mode, label in (("memory", "ingest (in memory)"),
                            ("stream", "ingest_files (streamed, the CLI)")):
            out = subprocess.run([sys.executable, __file__, "--child", str(folder), mode],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{n:>11,} invoices ({size:.2f} GB of CSV): {label:32s} "
                  f"{r['seconds']:5.1f} s, peak memory {r['peak_gb']:.2f} GB")


if __name__ == "__main__":
    main()
