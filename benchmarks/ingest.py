"""Time and peak memory of ``ingest`` on a large CSV export, in a fresh process per size.

    .venv/bin/python benchmarks/ingest.py --invoices 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(folder: str) -> None:
    from paycadence.data import ingest

    t = time.perf_counter()
    result = ingest(folder)
    print(json.dumps({"seconds": time.perf_counter() - t,
                      "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      "kept": result.counts["invoices"]["kept"]}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2])
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
        out = subprocess.run([sys.executable, __file__, "--child", str(folder)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>11,} invoices ({size:.2f} GB of CSV, all five tables): ingest "
              f"{r['seconds']:.1f} s, peak memory {r['peak_gb']:.2f} GB "
              f"({r['peak_gb'] / size:.1f}x the files)")


if __name__ == "__main__":
    main()
