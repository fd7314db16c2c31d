"""Peak resident memory of this process (Linux /proc): what the benchmarks report as "peak RSS"."""

import contextlib
from pathlib import Path


def peak_rss_mb() -> float:
    """The process's high-water mark of resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start a new high-water mark (writing 5 to clear_refs resets VmHWM), where the kernel allows it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
