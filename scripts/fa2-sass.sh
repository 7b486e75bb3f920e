#!/usr/bin/env bash
# FlashAttention-2's kernels, compiled by this project's nvcc for sm_90a, measured the way the
# kernel report measures ours (`sinkless sass`): registers, stack, instruction classes and the
# main loop's span and path, without a GPU.
#
#   bash scripts/fa2-sass.sh FLASH_ATTENTION_DIR CUTLASS_DIR [OUTDIR]
#
# FLASH_ATTENTION_DIR is a checkout of Dao-AILab/flash-attention (its csrc/flash_attn/src is
# read), CUTLASS_DIR one of NVIDIA/cutlass at the commit that checkout's csrc/cutlass submodule
# names (its include/ is read). Compiled: the bf16 kernels FA2's launch templates pick on an
# H100 without dropout (forward hd 64 on 128 x 128 tiles, hd 128 on 128 x 64, 4 warps; backward
# hd 64 on 128 x 128 tiles and hd 128 on 64 x 128, 8 warps), causal and not, each with whole
# tiles (Is_even_MN, Is_even_K), as PyTorch's SDPA flash backend runs them on the benchmark's
# shapes. FA2's sources include PyTorch's headers for the dropout's Philox state only; two stub
# headers stand in for them. OUTDIR (default target/fa2-sass) gets the sources, the cubins, the
# logs and fa2-sass.txt, the table this prints. The `sinkless` binary is $SINKLESS if set, else
# `cargo run --quiet --`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage="usage: bash scripts/fa2-sass.sh FLASH_ATTENTION_DIR CUTLASS_DIR [OUTDIR]"
fa=$(cd "${1:?$usage}" && pwd)
cutlass=$(cd "${2:?$usage}" && pwd)
out=${3:-$root/target/fa2-sass}
src=$fa/csrc/flash_attn/src
[[ -f $src/flash_fwd_kernel.h ]] || { echo "fa2-sass.sh: no $src/flash_fwd_kernel.h" >&2; exit 2; }
[[ -d $cutlass/include/cute ]] || { echo "fa2-sass.sh: no $cutlass/include/cute" >&2; exit 2; }
nvcc=${NVCC:-$root/.toolchain/cuda/bin/nvcc}
[[ -x $nvcc ]] || { echo "fa2-sass.sh: no nvcc at $nvcc (bash scripts/install-toolchain.sh, or set NVCC)" >&2; exit 2; }

mkdir -p "$out/stub/ATen/cuda/detail"
cat >"$out/stub/ATen/cuda/PhiloxCudaState.h" <<'EOF'
#pragma once
#include <cstdint>
namespace at {
struct PhiloxCudaState {
    uint64_t seed_, offset_;
};
}  // namespace at
EOF
cat >"$out/stub/ATen/cuda/detail/UnpackRaw.cuh" <<'EOF'
#pragma once
#include <tuple>
namespace at::cuda::philox {
__host__ __device__ inline std::tuple<uint64_t, uint64_t> unpack(const at::PhiloxCudaState& s) {
    return {s.seed_, s.offset_};
}
}  // namespace at::cuda::philox
EOF

# One kernel per choice around FA2's device functions, declared as FA2's own are (no launch
# bounds) and named for the table.
cat >"$out/fa2_fwd.cu" <<'EOF'
#include "namespace_config.h"
#include "flash.h"
#include "flash_fwd_kernel.h"
namespace FLASH_NAMESPACE {
#define FWD(NAME, HD, M, N, CAUSAL)                                                               \
    extern "C" __global__ void NAME(__grid_constant__ const Flash_fwd_params p) {                 \
        compute_attn<Flash_fwd_kernel_traits<HD, M, N, 4, false, false, cutlass::bfloat16_t>, false, \
                     CAUSAL, false, false, true, true, false, false>(p);                          \
    }
FWD(fa2_fwd_bf16_hd64, 64, 128, 128, false)
FWD(fa2_fwd_bf16_hd64_causal, 64, 128, 128, true)
FWD(fa2_fwd_bf16_hd128, 128, 128, 64, false)
FWD(fa2_fwd_bf16_hd128_causal, 128, 128, 64, true)
}  // namespace FLASH_NAMESPACE
EOF
cat >"$out/fa2_bwd.cu" <<'EOF'
#include "namespace_config.h"
#include "flash.h"
#include "flash_bwd_preprocess_kernel.h"
#include "flash_bwd_kernel.h"
namespace FLASH_NAMESPACE {
#define BWD(NAME, HD, M, N, A1, A2, A3, CAUSAL)                                                     \
    extern "C" __global__ void NAME(__grid_constant__ const Flash_bwd_params p) {                   \
        compute_dq_dk_dv_seqk_parallel<                                                             \
            Flash_bwd_kernel_traits<HD, M, N, 8, A1, A2, A3, false, false, cutlass::bfloat16_t>, false, \
            CAUSAL, false, false, true, true, false>(p);                                            \
    }
BWD(fa2_bwd_bf16_hd64, 64, 128, 128, 4, 4, 4, false)
BWD(fa2_bwd_bf16_hd64_causal, 64, 128, 128, 4, 4, 4, true)
BWD(fa2_bwd_bf16_hd128, 128, 64, 128, 2, 4, 2, false)
BWD(fa2_bwd_bf16_hd128_causal, 128, 64, 128, 2, 4, 2, true)
}  // namespace FLASH_NAMESPACE
EOF

pids=()
for pass in fwd bwd; do
    "$nvcc" -std=c++17 -O3 --use_fast_math -gencode=arch=compute_90a,code=sm_90a -cubin \
        -I "$src" -I "$cutlass/include" -I "$out/stub" --expt-relaxed-constexpr --expt-extended-lambda \
        -Xptxas -v -o "$out/fa2_$pass.cubin" "$out/fa2_$pass.cu" >"$out/fa2_$pass.log" 2>&1 &
    pids+=($!)
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "fa2-sass.sh: nvcc failed, see $out/fa2_$([[ $i == 0 ]] && echo fwd || echo bwd).log" >&2; exit 1; }
done

if [[ -n ${SINKLESS:-} ]]; then
    sinkless=("$SINKLESS")
else
    sinkless=(cargo run --quiet --manifest-path "$root/Cargo.toml" --)
fi
{
    echo "# FlashAttention-2 $(git -C "$fa" rev-parse --short HEAD 2>/dev/null || echo '(no git)'), CUTLASS $(git -C "$cutlass" rev-parse --short HEAD 2>/dev/null || echo '(no git)'), $("$nvcc" --version | tail -n 1)"
    echo "# ptxas, per function:"
    grep -h -E "Compiling entry|spill" "$out"/fa2_*.log |
        sed -e "s/.*Compiling entry function '\([^']*\)'.*/#   \1:/" -e 's/^ \+/#     /'
    CUOBJDUMP=$(dirname "$nvcc")/cuobjdump "${sinkless[@]}" sass "$out/fa2_fwd.cubin" "$out/fa2_bwd.cubin"
} >"$out/fa2-sass.txt"
cat "$out/fa2-sass.txt"
