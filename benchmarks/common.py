"""What every benchmark shares: statistics, the machine, peak memory, Markdown, BENCHMARKS.md.

A benchmark measures ours and a baseline in the same run, interleaved, several times, and
reports medians with their spread and the ratio. The machine is shared with other work, so
each report also says how busy the rest of the machine was while it ran (`OtherLoad`).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"

# --- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements: the median and how far the runs spread."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    @property
    def maximum(self) -> float:
        return max(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartile (inclusive method; equals min/max below 4 samples)."""
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    @property
    def iqr(self) -> float:
        q1, q3 = self.quartiles
        return q3 - q1

    def spread(self, scale: float = 1.0, digits: int = 1) -> str:
        """`min-max, IQR x`, every value multiplied by `scale`."""
        low, high = self.minimum * scale, self.maximum * scale
        return f"{low:.{digits}f}-{high:.{digits}f}, IQR {self.iqr * scale:.{digits}f}"


def summarize(samples: Sequence[float]) -> Stats:
    if not samples:
        raise ValueError("no samples to summarize")
    return Stats(tuple(samples))


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Stats:
    """Ratio run by run (both measured in the same round), so load changes largely cancel."""
    return summarize([n / d for n, d in zip(numerators, denominators, strict=True)])


# --- the machine -------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1024 * 1024):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the given distributions, Python first."""
    found = {"Python": platform.python_version()}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine_lines(extra_versions: dict[str, str] | None = None) -> list[str]:
    """Markdown bullet lines: date, machine (cores, CPU, memory, OS) and versions."""
    found = versions()
    found.update(extra_versions or {})
    version_text = ", ".join(f"{name} {value}" for name, value in found.items())
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {usable_cores()} cores ({os.cpu_count()} online), {cpu_model()}, "
        f"{memory_total()} RAM, {platform.system()} {platform.release()}",
        f"- Versions: {version_text}",
    ]


# --- the rest of the machine's load ------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def wait_for_quiet(max_load: float, timeout: float, poll: float = 15.0) -> float:
    """Wait (at most `timeout` s) until the 1-minute load average is under `max_load`.

    Returns the load average when the wait ended; the caller reports it either way.
    """
    deadline = time.monotonic() + timeout
    load = load_average()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"load average {load:.2f} >= {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        load = load_average()[0]
    return load


def _busy_ticks() -> int:
    """CPU ticks spent busy by the whole machine since boot (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    return _busy_ticks() / os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds(cmdline_part: str) -> float:
    """CPU seconds (user + system) used so far by the processes whose command line
    contains `cmdline_part`, with their children that have exited (waited for). Without
    the children, a PostgreSQL backend that closes between two readings takes its CPU with
    it, and a difference of two readings can come out negative."""
    total = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if cmdline_part.encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(field) for field in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class OtherLoad:
    """Average number of cores that other processes kept busy between start and stop.

    Read from /proc/stat (the whole machine) minus this process and its waited children.
    Unlike the load average it covers exactly the measured period.
    """

    def __init__(self) -> None:
        self.cores: float | None = None
        self._start: tuple[float, int, float] | None = None

    def start(self) -> None:
        try:
            self._start = (time.monotonic(), _busy_ticks(), _own_seconds())
        except OSError:
            self._start = None

    def stop(self) -> float | None:
        if self._start is None:
            return None
        wall0, busy0, own0 = self._start
        try:
            busy = (_busy_ticks() - busy0) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return None
        own = _own_seconds() - own0
        wall = time.monotonic() - wall0
        self.cores = max(0.0, (busy - own) / wall) if wall > 0 else None
        return self.cores


# --- rounds measured while the rest of the machine is quiet ------------------------------


@dataclass(frozen=True)
class Round(Generic[T]):
    other_cores: float  # cores other processes kept busy during the round (OtherLoad)
    result: T


@dataclass(frozen=True)
class Rounds(Generic[T]):
    kept: list[Round[T]]  # the quietest rounds, in the order they ran
    measured: int  # rounds measured, warm-up excluded
    max_other: float  # the threshold a round had to stay under to count as quiet

    @property
    def results(self) -> list[T]:
        return [r.result for r in self.kept]

    def describe(self) -> str:
        others = [r.other_cores for r in self.kept]
        quiet = sum(1 for r in self.kept if r.other_cores <= self.max_other)
        text = (
            f"kept the {len(self.kept)} of {self.measured} measured rounds with the least "
            f"load from other processes (they used {min(others):.2f}-{max(others):.2f} "
            f"cores, median {statistics.median(others):.2f})"
        )
        if quiet < len(self.kept):
            text += (
                f"; {quiet or 'none'} of them stayed under {self.max_other:g} cores: read with care"
            )
        return text


def quiet_rounds(
    do_round: Callable[[int], T],
    *,
    runs: int,
    warmup: int,
    max_other: float,
    max_rounds: int,
) -> Rounds[T]:
    """Call `do_round(i)` until `runs` rounds ran while other processes used <= `max_other` cores.

    Other engineers' work comes in bursts; a round it overlapped is measured again (up to
    `max_rounds` in all), then the `runs` quietest rounds are kept. Which rounds are kept
    depends only on the load, never on the times measured.
    """
    for number in range(warmup):
        do_round(number)
    done: list[Round[T]] = []
    while sum(r.other_cores <= max_other for r in done) < runs and len(done) < max(
        runs, max_rounds
    ):
        load = OtherLoad()
        load.start()
        result = do_round(warmup + len(done))
        other = load.stop()
        done.append(Round(other if other is not None else 0.0, result))
        print(
            f"round {len(done)}: other processes used {done[-1].other_cores:.2f} cores",
            file=sys.stderr,
            flush=True,
        )
    quietest = sorted(range(len(done)), key=lambda i: done[i].other_cores)[:runs]
    return Rounds([done[i] for i in sorted(quietest)], len(done), max_other)


# --- peak memory -------------------------------------------------------------------------
# tracemalloc cannot see image memory: Pillow allocates pixels with its own arena (malloc),
# not through Python's allocator (a 12 MP image shows as about 1 KB). So peak memory is the
# process's peak resident set size, measured in a fresh child process per measurement.


def current_rss() -> int:
    """Resident set size now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux 4.0+); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """This process's peak resident set size, in bytes: VmHWM, else `ru_maxrss`.

    `ru_maxrss` is not used where VmHWM exists: it keeps the maximum across fork and exec, so
    a child started by a large benchmark process reports its parent's size. `reset_peak_rss`
    resets VmHWM and not that inherited maximum.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_child(argv: Sequence[str], timeout: float = 600.0) -> dict[str, Any]:
    """Run `python <argv>` in a fresh process and return the JSON of its last stdout line."""
    done = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=BENCHMARKS_MD.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {argv} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Markdown ------------------------------------------------------------------------------


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None
) -> str:
    """A GitHub Markdown table; `align` has one letter per column: l, r or c."""
    align = align or "l" * len(headers)
    rule = {"l": "---", "r": "--:", "c": ":-:"}
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(rule[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(size: float) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def write_section(path: Path, name: str, body: str) -> None:
    """Put `body` between the section's markers in `path`, replacing what was there.

    A section not yet in the file is appended; a missing file is created.
    """
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text and text.index(start) < text.index(end):
        before = text[: text.index(start)]
        after = text[text.index(end) + len(end) :]
        text = before + block + after
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text)
