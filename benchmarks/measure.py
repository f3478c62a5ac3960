"""Peak memory of this process since it started its program.

``getrusage(RUSAGE_SELF).ru_maxrss`` is carried across ``exec`` on Linux, so a child started
by a large parent reports the parent's size; ``VmHWM`` belongs to the program's own address
space and is what the benchmarks print.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_gb() -> float:
    """High-water mark of resident memory in GB (ru_maxrss where /proc is absent)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
