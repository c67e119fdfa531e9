"""``make bench`` = ``python -m tests.bench [--full] [--only NAME]``: every benchmark, printed as
one table; each figure next to a baseline measured in the same run. Results are also written
to bench-results/latest.json."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tests.bench.common import Row, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="bigger sizes (slower)")
    parser.add_argument("--only", choices=["gateway", "runs", "runner", "metrics"], action="append")
    args = parser.parse_args()
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    quick = not args.full
    selected = args.only or ["gateway", "runs", "runner", "metrics"]
    rows: list[Row] = []
    t0 = time.monotonic()
    if "runner" in selected:
        from tests.bench import runner_bench

        rows += runner_bench.run(quick)
    if "gateway" in selected:
        from tests.bench import system_bench

        rows += system_bench.gateway_rows(quick)
    if "runs" in selected:
        from tests.bench import system_bench

        rows += system_bench.runs_rows(quick)
    if "metrics" in selected:
        try:
            from tests.bench import metrics_bench
        except ImportError:
            print("metrics benchmark not available")
        else:
            for r in metrics_bench.run(quick):
                rows.append(Row(r["benchmark"], r["case"], r["value"], r["unit"], r.get("baseline"),
                                r.get("baseline_name", "") or r.get("baseline_label", ""), r.get("note", "")))
    print()
    print_table(rows)
    print(f"\n({'quick' if quick else 'full'} run, {time.monotonic() - t0:.0f} s; machine: {os.cpu_count()} cores)")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps([r.as_dict() for r in rows], indent=2, default=str))


if __name__ == "__main__":
    main()
