"""Running a benchmarked command as a subprocess: wall time, peak RSS and CPU seconds of its whole process tree.

Workers (process pools, Ray) are children of the command, so the tree, not the command alone, is what counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def corpus_command(*args: str) -> list[str]:
    """`corpus ARGS` with this interpreter (no reliance on the console script being on PATH)."""
    return [sys.executable, "-c", "from corpus.cli import app; app()", *args]


def tree_sample(root: int, cpu: dict[int, float]) -> int:
    """Resident memory of a process and all its descendants, in bytes; records each one's CPU seconds
    so far in `cpu` (by pid), so the last sample of every process counts."""
    children: dict[int, list[int]] = defaultdict(list)
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(entry))
            seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
            stats[int(entry)] = (int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), seconds)
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        rss, seconds = stats.get(pid, (0, 0.0))
        total += rss
        if pid in stats:
            cpu[pid] = seconds
        stack += children.get(pid, [])
    return total


def measure(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `command` (output to `log`), sampling its process tree every 50 ms; exit with its log's tail if it fails."""
    start = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        peak = [0]
        cpu: dict[int, float] = {}

        def sample() -> None:
            while process.poll() is None:
                peak[0] = max(peak[0], tree_sample(process.pid, cpu))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        sampler.join()
    seconds = time.perf_counter() - start
    if code != 0:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"command failed ({code}): {' '.join(command)}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak[0] / 2**20, 1),
            "cpu_seconds": round(sum(cpu.values()), 1)}
