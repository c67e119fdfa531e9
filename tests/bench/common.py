"""Shared pieces of the benchmarks: the load process, percentiles, the table."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    benchmark: str
    case: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - tiny read
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(spec: dict) -> dict:
    """Run tests.bench.load in a separate process."""
    out = subprocess.run([sys.executable, "-m", "tests.bench.load"], input=json.dumps(spec), capture_output=True,
                         text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value)


def print_table(rows: list[Row]) -> None:
    headers = ["benchmark", "case", "value", "unit", "baseline", "baseline is", "ratio", "note"]
    table = [[r.benchmark, r.case, fmt(r.value), r.unit, fmt(r.baseline), r.baseline_name,
              f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.note] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
