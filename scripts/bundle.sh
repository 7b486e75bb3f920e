#!/usr/bin/env bash
# Builds the bundle a lent GPU machine runs (it has no cargo and no network): the release
# `sinkless` binary and every test binary, with the kernels embedded, stripped, plus
# scripts/gpu-run.sh, bench/torch_baselines.py and bench/ncu_summary.py, in .bundle/ (git-ignored; it travels with
# the working tree when the device tool's `carry` names it).
#
#   bash scripts/bundle.sh                 # release, into .bundle/
#   bash scripts/bundle.sh --debug DIR     # the dev profile into DIR (the dry run: reuses the
#                                          # build `cargo test` already made, so it is quick)
#
# Then, on the GPU machine:  bash .bundle/gpu-run.sh   (writes everything under $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
dest=.bundle
if [[ "${1:-}" == "--debug" ]]; then
    profile=dev
    dest=${2:?usage: bundle.sh --debug DIR}
elif [[ $# -gt 0 ]]; then
    echo "usage: bash scripts/bundle.sh [--debug DIR]" >&2
    exit 2
fi
cargo_profile=(--release)
[[ $profile == dev ]] && cargo_profile=()

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every executable cargo makes: the sinkless binary and one per test target (lib unit tests,
# tests/*.rs). --message-format=json names each artifact's path, so no hashed names are guessed.
cargo build "${cargo_profile[@]}" --bins --message-format=json >"$tmp/build.json"
cargo test "${cargo_profile[@]}" --no-run --message-format=json >"$tmp/test.json"

rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/tests"
python3 - "$tmp/build.json" "$tmp/test.json" "$dest" <<'EOF'
import json, os, shutil, sys
build, test, dest = sys.argv[1:4]
def artifacts(path):
    for line in open(path):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            yield m
for m in artifacts(build):
    if "bin" in m["target"]["kind"]:
        shutil.copy2(m["executable"], os.path.join(dest, "bin", m["target"]["name"]))
for m in artifacts(test):
    if m["profile"].get("test"):
        # "lib" for the unit tests, the file name for tests/*.rs, "bin-NAME" for a binary's.
        kind, name = m["target"]["kind"][0], m["target"]["name"]
        name = {"lib": "lib", "test": name}.get(kind, f"{kind}-{name}")
        shutil.copy2(m["executable"], os.path.join(dest, "tests", name))
EOF
if [[ $profile == release ]]; then
    strip "$dest"/bin/* "$dest"/tests/*
fi
# Without nvcc the binaries carry no kernels and every GPU step would only say so.
# (captured first: grep -q would close the pipe while sinkless still writes)
info=$("$dest/bin/sinkless" info 2>/dev/null || true)
if [[ $profile == release ]] && ! grep -q "GPU kernels: compiled" <<<"$info"; then
    echo "bundle.sh: this build has no GPU kernels (nvcc not found); run: bash scripts/install-toolchain.sh" >&2
    exit 1
fi
cp scripts/gpu-run.sh "$dest/gpu-run.sh"
cp bench/torch_baselines.py bench/ncu_summary.py "$dest/"

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=$([[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo yes || echo no)
{
    echo "commit=$commit"
    echo "dirty=$dirty"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "profile=$profile"
    echo "rustc=$(rustc --version)"
    echo "host=$(uname -m) $(ldd --version 2>/dev/null | head -1 | sed 's/.* //') glibc"
    grep -E "^GPU kernels" <<<"$info" | cut -c1-160 | sed "s/^/kernels=/"
} >"$dest/BUNDLE_INFO"

echo "bundle: $dest ($profile, commit $commit$([[ $dirty == yes ]] && echo ', uncommitted changes'))"
ls "$dest/bin" "$dest/tests" | sed 's/^/  /'
size=$(du -sm "$dest" | cut -f1)
echo "size: ${size} MiB (the device tool carries at most 64 MiB with the working tree)"
if [[ $profile == release && $size -ge 48 ]]; then
    echo "bundle.sh: the bundle is ${size} MiB, too close to the 64 MiB the device tool carries" >&2
    exit 1
fi
