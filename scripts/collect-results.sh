#!/usr/bin/env bash
# Files the results of a GPU run (the files gpu-run.sh wrote under $OUT, as the device tool
# returned them) into bench/results/<date>_<gpu>_<driver>_<commit>/ and points the README's
# performance section at them.
#
#   bash scripts/collect-results.sh DIR [--dest bench/results] [--no-readme]
#
# DIR holds results.jsonl (required), summary.md and logs.tar.gz. The folder gets:
#   results.jsonl   the raw records (run facts, ours, PyTorch's)
#   results.md      the full table (`sinkless table`)
#   tflops.svg      TFLOP/s against seqlen, ours against each baseline (`sinkless plot`)
#   summary.md      the run's step-by-step summary, as printed on the GPU machine
#   logs.tar.gz     every step's full log
# A second call's results for the same folder (same date, GPU, driver, commit) are appended to
# results.jsonl, with its summary-2.md and logs-2.tar.gz beside the first's.
# and, unless --no-readme, README.md's text between `<!-- perf:begin -->` and
# `<!-- perf:end -->` becomes the headline table of this run, a link to it and the plot.
# The `sinkless` binary used is $SINKLESS if set, else `cargo run --quiet --`.
set -euo pipefail
cd "$(dirname "$0")/.."

src=${1:?usage: bash scripts/collect-results.sh DIR [--dest bench/results] [--no-readme]}
shift
dest=bench/results
readme=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --dest) dest=${2:?--dest needs a folder}; shift 2 ;;
        --no-readme) readme=0; shift ;;
        *) echo "collect-results.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
test -s "$src/results.jsonl" || { echo "collect-results.sh: $src/results.jsonl is missing or empty" >&2; exit 1; }
read -r -a sinkless <<<"${SINKLESS:-cargo run --quiet --}"

# <date>_<gpu>_<driver>_<commit> from the first run record, each part reduced to [A-Za-z0-9.-].
name=$(python3 - "$src/results.jsonl" <<'EOF'
import json, re, sys
facts = {}
for line in open(sys.argv[1]):
    if line.strip():
        o = json.loads(line)
        if o.get("kind") == "run":
            for k, v in o.items():
                facts.setdefault(k, v)
def part(key, default):
    v = str(facts.get(key) or default)
    return re.sub(r"[^A-Za-z0-9.]+", "-", v).strip("-") or default
print("_".join([part("date", "undated"), part("gpu", "unknown-gpu"), part("driver", "no-driver"), part("commit", "unknown")]))
EOF
)
out="$dest/$name"
mkdir -p "$out"
suffix=
if [[ -s "$out/results.jsonl" ]] && ! cmp -s "$src/results.jsonl" "$out/results.jsonl"; then
    # A later call with the same bundle on the same day (gpu-run.sh --only ...): its records join
    # the folder's (the table keeps the later of two records of one cell), its summary and logs
    # sit beside the first call's as summary-N.md and logs-N.tar.gz.
    n=2
    while [[ -e "$out/summary-$n.md" || -e "$out/logs-$n.tar.gz" ]]; do n=$((n + 1)); done
    suffix=-$n
    cat "$src/results.jsonl" >>"$out/results.jsonl"
else
    cp "$src/results.jsonl" "$out/results.jsonl"
fi
for f in summary.md logs.tar.gz; do
    if [[ -f "$src/$f" ]]; then cp "$src/$f" "$out/${f%%.*}$suffix.${f#*.}"; fi
done
"${sinkless[@]}" table "$out/results.jsonl" >"$out/results.md"
"${sinkless[@]}" plot "$out/results.jsonl" "$out" >/dev/null ||
    echo "collect-results.sh: no plot (no timed attention measurement in these results)" >&2
echo "collect-results.sh: filed $out ($(cd "$out" && ls | tr '\n' ' '))"

if [[ $readme == 1 ]]; then
    headline=$("${sinkless[@]}" table --headline "$out/results.jsonl")
    python3 - README.md "$out" "$headline" <<'EOF'
import sys
path, out, headline = sys.argv[1:4]
text = open(path).read()
begin, end = "<!-- perf:begin -->", "<!-- perf:end -->"
if begin not in text or end not in text:
    sys.exit(f"{path}: no {begin} ... {end} markers to fill")
body = (f"\nLatest GPU run: [`{out}`]({out}/results.md) (full table; raw records in "
        f"[`results.jsonl`]({out}/results.jsonl), logs in `logs.tar.gz`). Longest sequence of each "
        f"configuration:\n\n{headline.strip()}\n\n![TFLOP/s against sequence length]({out}/tflops.svg)\n")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + begin + body + end + tail)
print(f"collect-results.sh: README.md's performance section now quotes {out}")
EOF
fi
