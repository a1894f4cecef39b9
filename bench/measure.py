"""Timing, query counts, peak memory and the result rows the scenarios report."""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.child import PROFILE_DIR_VARIABLE

T = TypeVar("T")

DATABASE_LABELS = {"sqlite": "SQLite", "postgres": "Postgres"}


@dataclass
class Row:
    """One line of the table: what was measured, against what, and whether the target is met."""

    key: str
    scenario: str
    measured: str
    baseline: str
    ratio: str
    target: str
    met: bool
    peak_memory: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def timed(operation: Callable[[], T]) -> tuple[float, T]:
    """Seconds `operation` took."""
    start = time.perf_counter()
    value = operation()
    return time.perf_counter() - start, value


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], percent: int) -> float:
    """The sample below which `percent` % of them fall (statistics' inclusive method)."""
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def ratio_text(value: float) -> str:
    return f"{value:.2f}x"


def _status_kb(name: str) -> int:
    found = re.search(rf"^{name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(found.group(1)) if found else 0


@dataclass
class MemoryGrowth:
    """Peak RSS growth over a block: VmHWM at its end minus VmRSS at its start (Linux)."""

    start_kb: int = 0
    peak_kb: int = 0

    @property
    def growth_mb(self) -> float:
        return max(self.peak_kb - self.start_kb, 0) / 1024


@contextmanager
def memory_growth():
    """Measure the peak RSS growth of the block; the high-water mark is reset at its start."""
    gc.collect()
    growth = MemoryGrowth()
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    growth.start_kb = _status_kb("VmRSS")
    yield growth
    growth.peak_kb = _status_kb("VmHWM")


@dataclass
class PythonPeak:
    """The peak of Python's allocations over a block, above where they stood at its start."""

    peak_mb: float = 0.0


@contextmanager
def python_peak():
    """tracemalloc over the block: slow, so never around a timed run."""
    gc.collect()
    peak = PythonPeak()
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    try:
        yield peak
    finally:
        _, highest = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak.peak_mb = (highest - start) / (1024 * 1024)


def process_peak_mb(pid: int) -> float:
    """The peak RSS of another process, in MB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) / 1024 if found else 0.0


def query_count(operation: Callable[[], object]) -> int:
    """How many SQL queries `operation` sends (run separately from the timed runs)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        operation()
    return len(captured.captured_queries)


def profiling() -> bool:
    return bool(os.environ.get(PROFILE_DIR_VARIABLE))


def profiled(name: str, operation: Callable[[], T]) -> T:
    """Run `operation`, under cProfile when the bench was started with --profile."""
    directory = os.environ.get(PROFILE_DIR_VARIABLE)
    if not directory:
        return operation()
    profile = cProfile.Profile()
    value = profile.runcall(operation)
    report = io.StringIO()
    stats = pstats.Stats(profile, stream=report).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    path = Path(directory) / f"{name}.txt"
    path.write_text(report.getvalue())
    return value
