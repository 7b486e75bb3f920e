#!/usr/bin/env bash
# Refreshes src/ffi/params_snapshot.rs, the bindings used where libclang is missing,
# from a build that ran bindgen. Needs libclang: scripts/install-toolchain.sh brings one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --quiet --lib --message-format=json-render-diagnostics >/tmp/sinkless-build.json
out=$(grep -o '"out_dir":"[^"]*sinkless-[^"]*"' /tmp/sinkless-build.json | tail -n 1 | cut -d'"' -f4)
if [ ! -f "$out/params_bindgen.rs" ]; then
  echo "bindgen did not run (no libclang found); run scripts/install-toolchain.sh first" >&2
  exit 1
fi
cp "$out/params_bindgen.rs" src/ffi/params_snapshot.rs
echo "updated src/ffi/params_snapshot.rs"
