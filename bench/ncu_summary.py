#!/usr/bin/env python3
"""One line per profiled kernel from Nsight Compute's raw CSV: where its time goes.

gpu-run.sh's profile step runs `ncu --csv --page raw` over one benchmark shape (hd 128, seqlen
4096, every registered entry and kernel variant, one launch each) with the SpeedOfLight,
ComputeWorkloadAnalysis, Occupancy, LaunchStats, WarpStateStats and SchedulerStats sections,
and keeps that CSV in its logs. This prints the Markdown table the summary carries: per kernel
and grid, the duration, SM and memory throughput (% of peak), the busiest pipe, issue-slot
use, achieved occupancy, registers, and the three largest stall reasons (cycles per issued
instruction). A metric this ncu did not report shows as "-": the raw CSV has the rest.

The raw page: a header row of metric names, a row of units, then one row per profiled launch,
with the launch's "Kernel Name", "Grid Size" and "Block Size" among the leading columns.

usage:
  python3 ncu_summary.py RAW.csv
  python3 ncu_summary.py --self-test   # parses a made-up CSV of that layout (the dry run)
"""

import csv
import io
import re
import sys

KERNEL = "Kernel Name"
DURATION = "gpu__time_duration.sum"
COLUMNS = [
    ("SM %", "sm__throughput.avg.pct_of_peak_sustained_elapsed"),
    ("mem %", "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed"),
    ("issue %", "sm__inst_issued.avg.pct_of_peak_sustained_active"),
    ("occupancy %", "sm__warps_active.avg.pct_of_peak_sustained_active"),
    ("regs", "launch__registers_per_thread"),
]
# pipe utilisation: sm__pipe_<name>_cycles_active...pct_of_peak_sustained_active and kin
PIPE = re.compile(r"^sm__(?:inst_executed_)?pipe_([a-z0-9_]+?)(?:_cycles_active)?\.avg\.pct_of_peak_sustained_active$")
# stall reasons: smsp__average_warp_latency_issue_stalled_<reason> or
# smsp__average_warps_issue_stalled_<reason>_per_issue_active.ratio
STALL = re.compile(r"^smsp__average_warps?_(?:latency_)?issue_stalled_([a-z_]+?)(?:_per_issue_active)?\.ratio$")


def number(s):
    try:
        return float(s.replace(",", ""))
    except (AttributeError, ValueError):
        return None


def short_name(name):
    """The kernel's name without its template arguments and parameter list."""
    return re.sub(r"[<(].*$", "", re.sub(r"^void ", "", name)).strip()


def scale_duration(value, unit):
    """Microseconds from ncu's unit for the duration."""
    factor = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}
    return value * factor.get(unit.strip(), 1e-3)


def summarize(text):
    rows = list(csv.reader(io.StringIO(text)))
    # ncu prints its own lines ("==PROF== ...") before the CSV: the header is the first row
    # naming the kernel column
    start = next((i for i, r in enumerate(rows) if KERNEL in r or "Function Name" in r), None)
    if start is None or start + 1 >= len(rows):
        return "(no kernel rows in the ncu output)"
    header, units, data = rows[start], rows[start + 1], rows[start + 2:]
    header = [KERNEL if h == "Function Name" else h for h in header]
    col = {name: i for i, name in enumerate(header)}

    def get(row, name):
        i = col.get(name)
        return number(row[i]) if i is not None and i < len(row) else None

    pipes = [(m.group(1), i) for i, name in enumerate(header) if (m := PIPE.match(name))]
    stalls = [(m.group(1), i) for i, name in enumerate(header) if (m := STALL.match(name))]
    out = ["| kernel | grid | block | µs | " + " | ".join(c for c, _ in COLUMNS) + " | busiest pipe | top stalls |"]
    out.append("|---|---|---|--:|" + "--:|" * len(COLUMNS) + "---|---|")
    for row in data:
        if len(row) < len(header) or not row[col[KERNEL]]:
            continue
        cells = [
            short_name(row[col[KERNEL]]),
            row[col["Grid Size"]] if "Grid Size" in col else "-",
            row[col["Block Size"]] if "Block Size" in col else "-",
        ]
        d = get(row, DURATION)
        cells.append(f"{scale_duration(d, units[col[DURATION]]):.1f}" if d is not None else "-")
        for _, metric in COLUMNS:
            v = get(row, metric)
            cells.append("-" if v is None else f"{v:.0f}" if metric.startswith("launch__") else f"{v:.1f}")
        busy = [(number(row[i]) or 0.0, p) for p, i in pipes]
        cells.append(f"{max(busy)[1]} {max(busy)[0]:.0f}%" if busy else "-")
        top = sorted(((number(row[i]) or 0.0, s) for s, i in stalls), reverse=True)[:3]
        cells.append(", ".join(f"{s} {v:.1f}" for v, s in top if v > 0) or "-")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


SAMPLE = """==PROF== Connected to process 1 (/x/sinkless)
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","gpu__time_duration.sum","sm__throughput.avg.pct_of_peak_sustained_elapsed","launch__registers_per_thread","sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active","sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active","smsp__average_warp_latency_issue_stalled_barrier.ratio","smsp__average_warp_latency_issue_stalled_math_pipe_throttle.ratio","smsp__average_warp_latency_issue_stalled_long_scoreboard.ratio"
"","","","","","","","","","","","nsecond","%","register/thread","%","%","ratio","ratio","ratio"
"0","1","sinkless","h","void sinkless_attn_fwd_softmax_bf16_hd128(sinkless_attn_fwd_params)","1","7","(128, 1, 1)","(32, 16, 4)","0","9.0","1,234,567","71.25","255","64.5","40.1","0.8","2.5","1.2"
"""


def self_test():
    table = summarize(SAMPLE)
    lines = table.splitlines()
    assert len(lines) == 3, table
    row = lines[2]
    assert "void" not in row, row
    for want in ("sinkless_attn_fwd_softmax_bf16_hd128", "(32, 16, 4)", "1234.6", "71.2", "255",
                 "tensor_op_hmma 64%", "math_pipe_throttle 2.5, long_scoreboard 1.2, barrier 0.8"):
        assert want in row, f"{want!r} not in {row}"
    assert summarize("nothing\n").startswith("(no kernel rows"), "an empty profile"
    print("ncu_summary.py: self-test ok")
    print(table)


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) != 2:
        print(__doc__.split("usage:")[1], file=sys.stderr)
        return 2
    with open(argv[1], errors="replace") as f:
        print(summarize(f.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
