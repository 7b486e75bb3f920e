#!/usr/bin/env bash
# The one command of a GPU lease. Build the bundle here first (bash scripts/bundle.sh), then,
# through the device tool with `carry: [".bundle"]`:
#
#   bash .bundle/gpu-run.sh
#
# It runs, each step under its own time limit inside a budget of 6.5 minutes, and writes under
# $OUT. A lease has 15 minutes of device time, the machine's start (a minute or two) included,
# so the budget leaves room for a second call: a rerun of what failed, or of what ran out of
# time. The steps, most needed first:
#   1. facts: GPU name, driver, clocks, SM count (nvidia-smi, the driver), the bundle's commit
#   2. `sinkless check --gpu-only` (every kernel on the GPU against the float64 reference; CI
#      runs the emulator's half on every change)
#   3. the test binaries that use the GPU (GPU_TESTS below: the GPU correctness suite, the API's
#      GPU errors, the emulator-conformance kernels run on the GPU against the emulator's bits);
#      the others test the emulator alone, which CI runs
#   4. the benchmark: `sinkless bench --grid full`, then bench/torch_baselines.py (SDPA flash,
#      cuDNN, efficient; eager sigmoid; copy bandwidth and a bf16 matmul) on the same shapes
#   5. compute-sanitizer memcheck and racecheck on small shapes of every kernel (`sinkless check
#      --small`, and one run of each registered benchmark entry on the tiny grid); where the
#      runtime refuses it (gVisor), the summary says so
#   6. Nsight Compute on one shape (hd 128, seqlen 4096, every entry and kernel variant, one
#      launch each): per kernel its duration, SM and memory throughput, busiest pipe, issue-slot
#      use, occupancy and largest stall reasons (bench/ncu_summary.py), the raw CSV in the logs
#   7. the kernel variants beside the default kernels (`sinkless bench --variants`), in what
#      time is left (records are written shape by shape)
#   8. the table and the plot
# A kernel that hangs costs one wait, not the lease: the checks and benchmarks wait for the GPU
# at most SINKLESS_SYNC_TIMEOUT_S (30 s; 300 under compute-sanitizer and ncu), then stop with
# "hung kernels: NAME,..." (exit 3). Every later step leaves those kernels out
# (SINKLESS_SKIP_KERNELS, which the CUDA backend reads), check runs once more without them, and
# the summary names them and how to pass them to a second call.
# Files back from $OUT (at most 8 come back): summary.md, results.jsonl, tflops.svg and
# logs.tar.gz (every step's full log). The summary is printed last, since the device tool
# returns only the end of the output. Bring the files home with scripts/collect-results.sh.
#
#   bash scripts/gpu-run.sh --dry-run
#
# does the same here, with no GPU: it builds a dev bundle into a temporary folder, runs it with
# the emulator and the float64 reference on tiny shapes (test binaries only listed, no PyTorch:
# the baseline script only checks the grid and the FLOP formula), then files the results with
# collect-results.sh into a temporary folder. CI runs it to prove the script works.
#
#   bash .bundle/gpu-run.sh --only sanitizer,profile,variants
#
# runs only the named parts (check, tests, bench, torch, sanitizer, profile, variants; the facts
# always):
# for a second call when the first ran out of time before the end. SINKLESS_GPU_RUN_BUDGET_S
# sets the budget in seconds (390 by default).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dry=0
only=check,tests,bench,torch,sanitizer,profile,variants
usage="usage: bash gpu-run.sh [--dry-run] [--only PART,...]   (parts: $only)"
while (($#)); do
    case "$1" in
        --dry-run) dry=1 ;;
        --only)
            (($# >= 2)) || { echo "$usage" >&2; exit 2; }
            only=$2
            for p in ${only//,/ }; do
                [[ ,check,tests,bench,torch,sanitizer,profile,variants, == *",$p,"* ]] || { echo "$usage" >&2; exit 2; }
            done
            shift
            ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
    shift
done
# part NAME: whether this run includes that part.
part() { [[ ,$only, == *",$1,"* ]]; }

# From the repository (scripts/gpu-run.sh) the dry run bundles first, then runs the bundle's copy.
if [[ ! -x "$here/bin/sinkless" ]]; then
    if [[ $dry == 0 ]]; then
        echo "gpu-run.sh: no bin/sinkless next to this script: run the bundle's copy (bash .bundle/gpu-run.sh) or --dry-run" >&2
        exit 2
    fi
    set -e
    repo=$(cd "$here/.." && pwd)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "== dry run: dev bundle into $tmp/bundle"
    bash "$repo/scripts/bundle.sh" --debug "$tmp/bundle" | tail -n 1
    rc=0
    OUT="$tmp/out" bash "$tmp/bundle/gpu-run.sh" --dry-run --only "$only" || rc=$?
    echo
    echo "== dry run: collect-results.sh into $tmp/results"
    SINKLESS="$tmp/bundle/bin/sinkless" bash "$repo/scripts/collect-results.sh" "$tmp/out" \
        --dest "$tmp/results" --no-readme
    files="results.jsonl results.md logs.tar.gz summary.md"
    # the plot needs the benchmark's records (variants are not plotted)
    if part bench; then files+=" tflops.svg"; fi
    for f in $files; do
        test -s "$tmp/results"/*/"$f" || { echo "dry run: $f missing from the collected results" >&2; exit 1; }
    done
    echo "dry run: ok (gpu-run.sh exit $rc)"
    exit "$rc"
fi

start=$(date +%s)
budget=${SINKLESS_GPU_RUN_BUDGET_S:-390}
bin="$here/bin/sinkless"
if [[ $dry == 1 ]]; then
    OUT=${OUT:-$(mktemp -d)}
else
    : "${OUT:?gpu-run.sh writes its results under \$OUT; set it}"
fi
mkdir -p "$OUT"
work=$(mktemp -d)
logs="$work/logs"
mkdir -p "$logs"
# One entry per step: name, verdict, seconds, note.
s_name=() s_verdict=() s_secs=() s_note=()
record() { s_name+=("$1"); s_verdict+=("$2"); s_secs+=("$3"); s_note+=("$4"); }

elapsed() { echo $(($(date +%s) - start)); }
# Seconds a step may take: its own limit, cut so that 30 s stay for the table and the archive.
limit() {
    local left=$((budget - $(elapsed) - 30))
    ((left < 5)) && left=5
    echo $(($1 < left ? $1 : left))
}
# step NAME SECONDS COMMAND...: runs it under a time limit, output in logs/NAME.log; records
# the exit status and time. A step's failure is recorded, never fatal.
step() {
    local name=$1 secs=$2 t0 rc
    shift 2
    t0=$(date +%s)
    echo "== $name ($(elapsed)s into the run, limit $(limit "$secs")s)"
    timeout --kill-after=10 "$(limit "$secs")" "$@" >"$logs/$name.log" 2>&1
    rc=$?
    tail -n 3 "$logs/$name.log" | sed 's/^/   /'
    local verdict=ok
    ((rc == 124 || rc == 137)) && verdict="timed out"
    ((rc != 0 && rc != 124 && rc != 137)) && verdict="failed (exit $rc)"
    if [[ $verdict != ok ]]; then
        # The last line a failing step printed is usually the reason.
        NOTE="${NOTE:+$NOTE: }$(grep -v '^[[:space:]]*$' "$logs/$name.log" | tail -n 1 | cut -c1-160 | tr '|' '/')"
    fi
    # Kernels the GPU hung on are left out of every later step (the CUDA backend refuses them),
    # so one hang costs one wait, not every step's whole limit.
    local k new=
    for k in $(hung_in "$logs/$name.log"); do
        [[ ,$SINKLESS_SKIP_KERNELS, == *",$k,"* ]] && continue
        SINKLESS_SKIP_KERNELS+="${SINKLESS_SKIP_KERNELS:+,}$k"
        new+=" $k"
    done
    export SINKLESS_SKIP_KERNELS
    [[ -n $new ]] && NOTE="${NOTE:+$NOTE: }HUNG on$new (left out from here on)"
    record "$name" "$verdict" "$(($(date +%s) - t0))" "${NOTE:-}"
    NOTE=
    return $rc
}
note() { NOTE=$*; }
# hung_in LOG: the kernels a log says the GPU hung on, one a line: `sinkless check` and `bench`
# end with "hung kernels: a,b" (exit 3); a test that met the timeout prints the error, as text
# ("kernel a did not end; kernels queued since the last wait: b, a (a hang? ...") or, through
# unwrap, as `GpuTimeout { waited_ms: N, running: Some("a"), kernels: ["b", "a"] }`. The kernel
# that did not end when the error names it (the backend tracked its launches), else every one
# queued since the last wait.
hung_in() {
    {
        sed -n 's/^hung kernels: //p' "$1"
        grep -o 'kernel [A-Za-z0-9_]* did not end' "$1" | sed 's/^kernel //; s/ did not end$//'
        grep -v 'did not end' "$1" | grep -o 'kernels queued since the last wait: [^(]*' |
            sed 's/^kernels queued since the last wait: //'
        grep -o 'GpuTimeout { waited_ms: [0-9]*, running: [^,]*, kernels: \[[^]]*\]' "$1" |
            sed -E 's/.*running: Some\("([^"]*)"\).*/\1/; s/.*running: None, kernels: \[//; s/\]$//; s/"//g'
    } | tr ', ' '\n\n' | grep -E '^sinkless_[A-Za-z0-9_]+$' | sort -u
}
# Kernels to leave out from the start (a second call after a hang passes the first's list).
SINKLESS_SKIP_KERNELS=${SINKLESS_SKIP_KERNELS:-}
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# 1. Facts.
declare -A gpu=()
if command -v nvidia-smi >/dev/null 2>&1; then
    fields=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,memory.total,power.limit,temperature.gpu,compute_cap
    IFS=',' read -r -a vals < <(nvidia-smi --query-gpu=$fields --format=csv,noheader,nounits -i 0 2>/dev/null | sed 's/, /,/g')
    IFS=',' read -r -a keys <<<"$fields"
    for i in "${!keys[@]}"; do gpu[${keys[$i]}]=${vals[$i]:-}; done
fi
{
    echo "== bundle"; cat "$here/BUNDLE_INFO" 2>/dev/null
    echo "== uname"; uname -a
    echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    echo "== nvidia-smi -q"; nvidia-smi -q 2>&1 | head -n 400
    echo "== sinkless info"; "$bin" info 2>&1
    echo "== python"; python3 -c 'import torch, sys; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -n 2
    echo "== compute-sanitizer"; compute-sanitizer --version 2>&1 | tail -n 2 || true
} >"$logs/facts.log" 2>&1
commit=$(sed -n 's/^commit=//p' "$here/BUNDLE_INFO" 2>/dev/null)
dirty=$(sed -n 's/^dirty=//p' "$here/BUNDLE_INFO" 2>/dev/null)
run_record() {
    printf '{"kind":"run","date":%s,"time":%s,"commit":%s,"dirty":%s,"gpu":%s,"driver":%s,"compute_cap":%s,"sm_clock_mhz":%s,"sm_clock_mhz_at_start":%s,"max_sm_clock_mhz":%s,"mem_clock_mhz":%s,"max_mem_clock_mhz":%s,"memory_mib":%s,"power_limit_w":%s,"temperature_c":%s,"mode":%s}\n' \
        "$(json_str "$(date -u +%Y-%m-%d)")" "$(json_str "$(date -u +%H:%M:%SZ)")" \
        "$(json_str "${commit:-unknown}")" "$(json_str "${dirty:-unknown}")" \
        "$(json_str "${gpu[name]:-$([[ $dry == 1 ]] && echo 'none (dry run)' || echo unknown)}")" \
        "$(json_str "${gpu[driver_version]:-none}")" "$(json_str "${gpu[compute_cap]:-}")" \
        "$(json_str "${1:-}")" "$(json_str "${gpu[clocks.sm]:-}")" "$(json_str "${gpu[clocks.max.sm]:-}")" \
        "$(json_str "${gpu[clocks.mem]:-}")" "$(json_str "${gpu[clocks.max.mem]:-}")" \
        "$(json_str "${gpu[memory.total]:-}")" "$(json_str "${gpu[power.limit]:-}")" \
        "$(json_str "${gpu[temperature.gpu]:-}")" "$(json_str "$([[ $dry == 1 ]] && echo dry-run || echo gpu)")"
}
record facts ok 0 "${gpu[name]:-no GPU} · driver ${gpu[driver_version]:-none} · commit ${commit:-unknown}"

# 2. sinkless check: on the GPU alone (CI runs the emulator's cases on every change). After a
# hang it stops with the kernels named; then it runs again without them, once.
if part check; then
    if [[ $dry == 1 ]]; then
        step check 150 "$bin" check --small
        # the hang handling, on made-up logs (no GPU to hang here)
        printf 'error: x\nhung kernels: sinkless_attn_fwd_a_hd128,sinkless_attn_bwd_b_hd64\n' >"$work/hang1.log"
        printf 'error: the GPU had not finished after 30.0 s; kernels queued since the last wait: sinkless_rowdot_bf16, sinkless_attn_fwd_a_hd128 (a hang? ...)\n' >"$work/hang2.log"
        printf 'error: the GPU had not finished after 30.0 s; kernel sinkless_attn_bwd_d_hd128 did not end; kernels queued since the last wait: sinkless_rowdot_bf16, sinkless_attn_bwd_d_hd128 (a hang? ...)\n' >"$work/hang3.log"
        printf 'called `Result::unwrap()` on an `Err` value: GpuTimeout { waited_ms: 30012, running: None, kernels: ["sinkless_attn_bwd_c_hd64", "sinkless_rowdot_f16"] }\n' >"$work/hang4.log"
        printf 'called `Result::unwrap()` on an `Err` value: GpuTimeout { waited_ms: 30012, running: Some("sinkless_attn_bwd_e_hd64"), kernels: ["sinkless_rowdot_f16", "sinkless_attn_bwd_e_hd64"] }\n' >"$work/hang5.log"
        got=
        for i in 1 2 3 4 5; do got+="$(hung_in "$work/hang$i.log" | tr '\n' ' ')/"; done
        want="sinkless_attn_bwd_b_hd64 sinkless_attn_fwd_a_hd128 /sinkless_attn_fwd_a_hd128 sinkless_rowdot_bf16 /"
        want+="sinkless_attn_bwd_d_hd128 /sinkless_attn_bwd_c_hd64 sinkless_rowdot_f16 /sinkless_attn_bwd_e_hd64 /"
        if [[ $got == "$want" ]]; then
            record hang-parser ok 0 "hung_in reads every form of a hang report"
        else
            record hang-parser "failed (parse)" 0 "hung_in gave '$got', want '$want'"
        fi
    elif ! step check 150 "$bin" check --gpu-only && [[ -n $SINKLESS_SKIP_KERNELS ]] && grep -q '^hung kernels: ' "$logs/check.log"; then
        note "again without the kernels that hung: $SINKLESS_SKIP_KERNELS"
        step check-again 120 "$bin" check --gpu-only
    fi
fi
# 3. The test binaries that use the GPU (the dry run only lists them: CI's `cargo test` just ran
# them); the others test the emulator alone. A test file that starts using CudaBackend joins here.
GPU_TESTS=(gpu api_errors emulator_conformance)
conf_bins=
tests=()
if part tests; then
    for n in "${GPU_TESTS[@]}"; do
        if [[ -x "$here/tests/$n" ]]; then
            tests+=("$here/tests/$n")
        else
            record "test-$n" "failed (missing)" 0 "the bundle has no tests/$n: update GPU_TESTS in gpu-run.sh"
        fi
    done
fi
for t in "${tests[@]}"; do
    name=test-$(basename "$t")
    if [[ $dry == 1 ]]; then
        step "$name" 60 "$t" --list
    else
        step "$name" 120 "$t" --test-threads=4
    fi
    result=$(grep -h "^test result:" "$logs/$name.log" | tail -n 1 | sed -E 's/^test result: [A-Za-z]+\. //; s/; 0 measured.*//')
    [[ $dry == 1 ]] && result="$(grep -c ': test$' "$logs/$name.log") tests listed"
    s_note[-1]=$result
    [[ $name == *conformance* ]] && conf_bins+="${conf_bins:+; }$name: ${s_verdict[-1]}, $result"
done
# The emulator-conformance kernels' GPU comparison lives in whichever test binaries name a test
# after it; count those tests wherever they are.
conf_ok=$(cat "$logs"/test-*.log 2>/dev/null | grep -c -E '^test .*conformance.* \.\.\. ok' || true)
conf_bad=$(cat "$logs"/test-*.log 2>/dev/null | grep -c -E '^test .*conformance.* \.\.\. FAILED' || true)
conf_listed=$(cat "$logs"/test-*.log 2>/dev/null | grep -c -E '^[^ ]*conformance[^ ]*: test$' || true)
if ! part tests; then
    conformance="not run (--only $only)"
elif [[ -n $conf_bins ]]; then
    conformance=$conf_bins
elif ((conf_ok + conf_bad > 0)); then
    conformance="$conf_ok passed, $conf_bad failed (tests named *conformance*)"
elif ((conf_listed > 0)); then
    conformance="$conf_listed tests named *conformance* listed"
else
    conformance="no test named *conformance* in this bundle"
fi

# 4. The benchmark: ours, then the baselines on the same grid.
if [[ $dry == 1 ]]; then
    note "emulator and float64 reference, tiny grid"
    part bench && step bench 120 "$bin" bench --emulator --out "$work/sinkless.jsonl"
    "$bin" bench --print-grid --grid tiny >"$work/shapes.jsonl"
    note "grid and FLOP formula only (no PyTorch in a dry run)"
    part torch && step torch 60 python3 "$here/torch_baselines.py" --shapes "$work/shapes.jsonl" --dry-run
else
    note "full grid, CUDA events, L2 flushed"
    part bench && step bench 200 "$bin" bench --grid full --out "$work/sinkless.jsonl"
    "$bin" bench --print-grid --grid full >"$work/shapes.jsonl"
    # 90 s of the torch step's share stay for the sanitizers (when they run)
    left=$(($(limit 330) - $(part sanitizer && echo 90 || echo 20)))
    note "SDPA flash/cuDNN/efficient, eager sigmoid, copy, matmul"
    part torch && step torch 330 env PYTHONUNBUFFERED=1 python3 "$here/torch_baselines.py" --shapes "$work/shapes.jsonl" \
        --out "$work/torch.jsonl" --budget-s "$((left > 30 ? left : 30))"
fi

# 5. compute-sanitizer on small shapes.
sanitizer_note="not run"
if ! part sanitizer; then
    sanitizer_note="not run (--only $only)"
elif [[ $dry == 1 ]]; then
    sanitizer_note="skipped: the dry run has no GPU"
elif ! command -v compute-sanitizer >/dev/null 2>&1; then
    sanitizer_note="not available: compute-sanitizer is not on PATH"
else
    for tool in memcheck racecheck; do
        note "sinkless check --small --gpu-only"
        step "sanitizer-$tool-check" 150 env SINKLESS_SYNC_TIMEOUT_S=300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin" check --small --gpu-only
        note "one run of every registered benchmark entry, tiny grid"
        step "sanitizer-$tool-bench" 120 env SINKLESS_SYNC_TIMEOUT_S=300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin" bench --grid tiny --once --no-flush --no-throughput
        note "one run of every kernel variant, tiny grid"
        step "sanitizer-$tool-variants" 60 env SINKLESS_SYNC_TIMEOUT_S=300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin" bench --grid tiny --once --no-flush --no-throughput --variants
    done
    if grep -qE "Device not supported|CUDA_ERROR_UNKNOWN|error 999|Unable to find injection" "$logs"/sanitizer-*.log 2>/dev/null; then
        sanitizer_note="REFUSED by this runtime (\"Device not supported\" or error 999: a gVisor machine); no memcheck/racecheck result"
    else
        sanitizer_note="ran; see the sanitizer-* steps (exit 9 = errors found)"
    fi
fi
record sanitizer "-" 0 "$sanitizer_note"

# 6. Nsight Compute on one shape: where each attention kernel's time goes.
profile_table=
if ! part profile; then
    :
elif [[ $dry == 1 ]]; then
    note "the summary's parser on a made-up CSV (no ncu in a dry run)"
    step profile 30 python3 "$here/ncu_summary.py" --self-test
elif ! command -v ncu >/dev/null 2>&1; then
    record profile "-" 0 "not available: ncu is not on PATH"
else
    note "ncu, hd 128, seqlen 4096, every entry and variant once"
    # the report first, then its raw page as CSV: the program's own output stays apart
    if step profile 150 env SINKLESS_SYNC_TIMEOUT_S=300 ncu --clock-control none --kernel-name "regex:attn_(fwd|bwd)" \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section Occupancy \
        --section LaunchStats --section WarpStateStats --section SchedulerStats \
        --export "$work/profile" --force-overwrite \
        "$bin" bench --hd 128 --seqlen 4096 --once --no-flush --no-throughput --variants; then
        ncu --import "$work/profile.ncu-rep" --csv --page raw >"$logs/profile-raw.csv" 2>"$logs/profile-import.log"
        profile_table=$(python3 "$here/ncu_summary.py" "$logs/profile-raw.csv" 2>>"$logs/profile-import.log")
        # the report itself comes back too when it is small enough for the archive
        (($(stat -c %s "$work/profile.ncu-rep") < 8 << 20)) && cp "$work/profile.ncu-rep" "$logs/"
    elif grep -qE "LibraryNotLoaded|ERR_NVGPUCTRPERM|not supported" "$logs/profile.log"; then
        s_note[-1]="REFUSED by this runtime (no hardware counters: a gVisor machine?)"
    fi
fi

# 7. The kernel variants beside the default kernels, in what time is left.
if [[ $dry == 1 ]]; then
    note "the kernel variants under the emulator, tiny grid"
    part variants && step bench-variants 120 "$bin" bench --emulator --variants --no-throughput --out "$work/variants.jsonl"
else
    note "the kernel variants beside the default kernels, seqlen 1k/4k/16k"
    part variants && step bench-variants 150 "$bin" bench --grid sparse --variants --no-throughput --out "$work/variants.jsonl"
fi
NOTE=
sm_after=$(nvidia-smi --query-gpu=clocks.sm --format=csv,noheader,nounits -i 0 2>/dev/null | head -n 1)

# 8. Results, table, plot, summary, and what a second call should run.
# part_of STEP: the part (--only) a step belongs to.
part_of() {
    case $1 in
        test-*) echo tests ;;
        sanitizer-*) echo sanitizer ;;
        bench-variants) echo variants ;;
        *) echo "$1" ;;
    esac
}
again=
for i in "${!s_name[@]}"; do
    [[ ${s_verdict[$i]} == "timed out" ]] || continue
    p=$(part_of "${s_name[$i]}")
    [[ ,$again, == *",$p,"* ]] || again+="${again:+,}$p"
done
run_record "$sm_after" >"$OUT/results.jsonl"
cat "$work/sinkless.jsonl" "$work/torch.jsonl" "$work/variants.jsonl" 2>/dev/null >>"$OUT/results.jsonl"
"$bin" table "$OUT/results.jsonl" >"$work/table.md" 2>"$logs/table.log" || echo "(no table: see logs/table.log)" >"$work/table.md"
"$bin" plot "$OUT/results.jsonl" "$OUT" >"$logs/plot.log" 2>&1 || true
{
    echo "# sinkless GPU run: ${gpu[name]:-no GPU ($([[ $dry == 1 ]] && echo dry run || echo 'nvidia-smi missing'))}, $(date -u +%Y-%m-%d)"
    echo
    echo "bundle commit \`${commit:-unknown}\`$([[ $dirty == yes ]] && echo ' (with uncommitted changes)'), $(elapsed) s in all; conformance: $conformance"
    echo
    if [[ -n $SINKLESS_SKIP_KERNELS ]]; then
        echo "**The GPU hung on (or was told to skip): $SINKLESS_SKIP_KERNELS.** Later steps left them out."
        echo
    fi
    if [[ -n $again ]]; then
        echo "**Ran out of time in: $again.** A second call: \`${SINKLESS_SKIP_KERNELS:+SINKLESS_SKIP_KERNELS=$SINKLESS_SKIP_KERNELS }bash .bundle/gpu-run.sh --only $again\`"
        echo
    fi
    echo "| step | verdict | seconds | note |"
    echo "|---|---|--:|---|"
    for i in "${!s_name[@]}"; do
        echo "| ${s_name[$i]} | ${s_verdict[$i]} | ${s_secs[$i]} | ${s_note[$i]} |"
    done
    echo
    cat "$work/table.md"
    if [[ -n $profile_table ]]; then
        echo
        echo "## Nsight Compute, hd 128, seqlen 4096 (one launch of each kernel)"
        echo
        echo "$profile_table"
    fi
} >"$OUT/summary.md"
cp "$OUT/summary.md" "$logs/summary.md"
tar -czf "$OUT/logs.tar.gz" -C "$work" logs
rm -rf "$work"

echo
echo "files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
echo
cat "$OUT/summary.md"
failed=0
for v in "${s_verdict[@]}"; do [[ $v == failed* || $v == "timed out" ]] && failed=$((failed + 1)); done
echo
echo "gpu-run.sh: ${#s_name[@]} steps, $failed failed or timed out, $(elapsed) s"
exit $((failed > 0 ? 1 : 0))
