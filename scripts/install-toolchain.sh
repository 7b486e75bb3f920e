#!/usr/bin/env bash
# Installs the pinned CUDA compiler toolchain (nvcc, ptxas, fatbinary, nvlink,
# cuobjdump, nvdisasm) and libclang (for bindgen) from PyPI wheels into
# `.toolchain/` inside the project. Touches nothing outside that folder.
#
# All CUDA wheels are of one minor version, 13.0, which the driver of the GPU
# we borrow (580, CUDA 13.0) can load. No 13.0 wheel of cuobjdump/nvdisasm
# exists; the 13.2 ones read 13.0 fatbins, so they come in with --no-deps.
#
# Usage: bash scripts/install-toolchain.sh   (idempotent; re-run to repair)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.toolchain"
site="$dest/site"
stamp="$dest/.installed-v1"

if [ -f "$stamp" ]; then
  echo "toolchain already installed in $dest"
  exit 0
fi

python=${PYTHON:-python3}
rm -rf "$site"
mkdir -p "$site"
# One pip call with every wheel named and --no-deps: `pip --target --upgrade`
# replaces a top-level folder (`nvidia/`) wholesale, so a second call would
# delete what the first installed.
"$python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target "$site" --no-deps \
  nvidia-cuda-nvcc==13.0.88 \
  nvidia-nvvm==13.0.88 \
  nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 \
  nvidia-cuda-cccl==13.0.85 \
  nvidia-cuda-cuobjdump==13.2.86 \
  nvidia-cuda-nvdisasm==13.2.86 \
  libclang==18.1.1

cuda="$site/nvidia/cu13"
if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "error: nvcc not found at $cuda/bin/nvcc after install" >&2
  exit 1
fi
# nvcc looks for cicc and libdevice under <root>/nvvm; the nvvm wheel puts them there.
# Stable entry points for build.rs and the scripts:
ln -sfn "$cuda" "$dest/cuda"
clang_lib=$(dirname "$(find "$site/clang" -name 'libclang*.so*' | head -n 1)")
ln -sfn "$clang_lib" "$dest/libclang"
"$dest/cuda/bin/nvcc" --version | tail -n 2
touch "$stamp"
echo "toolchain installed in $dest (CUDA_HOME=$dest/cuda, LIBCLANG_PATH=$dest/libclang)"
