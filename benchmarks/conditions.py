"""What every benchmark prints beside its figures: the machine's load and the process's
peak memory, so a figure measured on a busy machine is recognisable as such.

``peak_rss_mib()`` is the kernel's high-water mark of this process (VmHWM, what
``ru_maxrss`` reports); ``reset_peak()`` restarts it (Linux ``/proc/self/clear_refs``),
so a benchmark can report the peak of one phase.
"""

from __future__ import annotations

import os


def peak_rss_mib() -> float:
    """This process's resident-memory high-water mark, in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_peak() -> None:
    """Restart the high-water mark at the current resident size (Linux only; else a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def describe() -> str:
    """``load average 0.12 0.30 0.25 (2 cores); peak RSS 412 MiB``"""
    one, five, fifteen = os.getloadavg()
    return (f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores); "
            f"peak RSS {peak_rss_mib():,.0f} MiB")
