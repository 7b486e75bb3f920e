// Conformance kernels: one small kernel per family of PTX wrappers (ptx.cuh) and emulated
// intrinsics (compat.cuh). Under the CPU emulator their outputs are checked against values
// worked out from the PTX ISA tables; on a GPU the same launches must give the same bits,
// which is what ties the emulator to the hardware. Inputs are chosen so that the answer is
// exact on both sides (small integers for mma, exactly representable values for shuffles), and
// ex2/tanh are compared with a tolerance, since the GPU's approximations are not libm's.
//
// Kernels and what each covers (shapes and launch sizes are in conformance_params.h):
//   conf_index      threadIdx/blockIdx/blockDim/gridDim in 3D grids and blocks
//   conf_reduce     dynamic shared memory, __syncthreads, __shfl_xor_sync; planted bugs
//   conf_cp_async   cp.async with zero-fill, commit groups, wait_group 2/1/0, wait_all
//   conf_ldmatrix   ldmatrix x1/x2/x4, with and without .trans
//   conf_mma        mma.m16n8k16 f16/bf16, fragments by the table and by ldmatrix
//   conf_wgmma      wgmma.mma_async.m64n64k16 and m64n128k16 f16/bf16 (sm_90a): A and B by
//                   descriptors (both K-major, or A M-major and B N-major), or A from registers and
//                   B N-major; the 128-byte swizzle of tile.cuh; operands at a row offset, in the
//                   second column block or across both; one or two commit groups in flight
//   conf_tma        cp.async.bulk.tensor.4d (sm_90): tensor maps, the 128-byte swizzle, zero fill
//                   out of bounds; mbarrier init, arrive.expect_tx and parity waits over four
//                   phases; named barriers (bar.sync, bar.arrive)
//   conf_shfl       __shfl_sync/_xor/_up/_down with widths and a partial mask, __syncwarp,
//                   __ballot_sync, __any_sync, __all_sync
//   conf_math       ex2.approx, tanh.approx, rcp.approx, f32 -> f16/bf16 and packed conversions;
//                   the attention kernels' two sigmoids (activation.cuh), each within its bound
//   conf_widen      f16/bf16 -> f32
//   conf_atomic     atomicAdd(float*) and red_add_f32x2 across blocks
//   conf_spin       not a conformance check: a kernel that runs until the host releases it,
//                   for the GPU tests of the wait with a deadline (GPU only)
// The planted-bug variants (plant != 0) exist to prove the emulator catches missing barriers,
// missing cp.async and mbarrier waits and deadlocks; they must never run on a GPU.
#pragma once

#include <type_traits>

#include "sinkless/activation.cuh"
#include "sinkless/compat.cuh"
#include "sinkless/conformance_params.h"
#include "sinkless/gmem.cuh"
#include "sinkless/ptx.cuh"
#include "sinkless/tile.cuh"
#include "sinkless/wgmma.cuh"

namespace sinkless {

__device__ __forceinline__ uint32_t conf_linear_thread() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

__device__ __forceinline__ void conf_index(const sinkless_conf_index_params& p) {
    const uint32_t threads = blockDim.x * blockDim.y * blockDim.z;
    const uint32_t blocks = gridDim.x * gridDim.y * gridDim.z;
    const uint32_t block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    uint32_t* o = p.out + (uint64_t(block) * threads + conf_linear_thread()) * 8;
    o[0] = threadIdx.x;
    o[1] = threadIdx.y;
    o[2] = threadIdx.z;
    o[3] = blockIdx.x;
    o[4] = blockIdx.y;
    o[5] = blockIdx.z;
    o[6] = threads;
    o[7] = blocks;
}

// 128 inputs -> 64 -> 32 partial sums in shared memory, then a butterfly within warp 0.
__device__ __forceinline__ void conf_reduce(const sinkless_conf_reduce_params& p) {
    uint32_t* s = dynamic_smem<uint32_t>();
    const uint32_t t = threadIdx.x;
    if (p.plant == SINKLESS_CONF_PLANT_EXIT_EARLY && t >= 64) return;
    if (p.plant == SINKLESS_CONF_PLANT_PLAIN_SHARED_STORE) {
        s[t] = p.in[blockIdx.x * 128 + t];
    } else if (p.plant == SINKLESS_CONF_PLANT_SHARED_BANK_CONFLICT) {
        // a permutation of the slots (the sum is the same): lanes 4a + b store word 32 b + a,
        // so lanes 0, 1, 2 and 3 all store into bank 0
        ptx::st_shared(&s[(t % 4) * 32 + t / 4], p.in[blockIdx.x * 128 + t]);
    } else {
        ptx::st_shared(&s[t], p.in[blockIdx.x * 128 + t]);
    }
    for (uint32_t stride = 64; stride >= 32; stride /= 2) {
        if (p.plant == SINKLESS_CONF_PLANT_DIVERGENT_BARRIER && (t / 32) % 2 == 1) {
            __syncthreads();
        } else if (p.plant != SINKLESS_CONF_PLANT_SKIP_SYNC) {
            __syncthreads();
        }
        if (t < stride) ptx::st_shared(&s[t], ptx::ld_shared(&s[t]) + ptx::ld_shared(&s[t + stride]));
    }
    if (p.plant != SINKLESS_CONF_PLANT_SKIP_SYNC) __syncthreads();
#if !defined(__CUDACC__)  // a plant, which only the emulator runs
    // warp 1 overwrites the partial sums warp 0 reads below, with nothing ordering the two
    if (p.plant == SINKLESS_CONF_PLANT_STORE_AFTER_LOAD && t >= 32 && t < 64) ptx::st_shared(&s[t - 32], 0u);
#endif
    if (t >= 32) return;
    if (p.plant == SINKLESS_CONF_PLANT_WARP_EXIT && t == 5) return;
    const uint32_t v0 = p.plant == SINKLESS_CONF_PLANT_PLAIN_SHARED_LOAD ? s[t] : ptx::ld_shared(&s[t]);
    uint32_t v = v0;
    for (int m = 16; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
    if (t == 0) p.out[blockIdx.x] = v;
    // Lane t clears the word lane t + 1 read above. The shuffles order nothing, so a __syncwarp
    // must order the store after that read; the plant leaves it out (emulator only).
#if !defined(__CUDACC__)
    if (p.plant != SINKLESS_CONF_PLANT_SAME_WARP_STORE_AFTER_LOAD) __syncwarp();
#else
    __syncwarp();
#endif
    ptx::st_shared(&s[(t + 1) % 32], 0u);
}

__device__ __forceinline__ void conf_cp_async(const sinkless_conf_cp_async_params& p) {
    constexpr uint32_t kStages = 4, kChunks = 128;
    unsigned char* smem = dynamic_smem<unsigned char>();
    const uint32_t u = threadIdx.x;
    const uint32_t* src = p.src + uint64_t(blockIdx.x) * kStages * kChunks * 4;
    uint32_t* dst = p.dst + uint64_t(blockIdx.x) * kStages * kChunks * 4;
    // Stage 3 stays uncommitted: wait_all must commit it itself.
    for (uint32_t s = 0; s < kStages; ++s) {
        const uint32_t chunk = s * kChunks + u;
        const uint32_t slot = s * kChunks + (5 * u + 1) % kChunks;
        ptx::cp_async_16(smem + slot * 16, src + chunk * 4, chunk % 7 != 3);
        if (s + 1 < kStages) ptx::cp_async_commit();
    }
    // one 16-byte load a thread: a quarter-warp reads 128 consecutive bytes, one wavefront
    auto drain = [&](uint32_t s) {
        const chunk16 v = ptx::ld_shared(reinterpret_cast<const chunk16*>(smem) + s * kChunks + u);
        for (int w = 0; w < 4; ++w) dst[(s * kChunks + u) * 4 + w] = v.w[w];
    };
    if (p.plant != SINKLESS_CONF_PLANT_SKIP_WAIT) ptx::cp_async_wait<2>();
    __syncthreads();
    drain(0);
    ptx::cp_async_wait<1>();
    __syncthreads();
    drain(1);
    ptx::cp_async_wait<0>();
    __syncthreads();
    drain(2);
    ptx::cp_async_wait_all();
    __syncthreads();
    drain(3);
}

__device__ __forceinline__ void conf_ldmatrix(const sinkless_conf_ldmatrix_params& p) {
    // Rows staged 24 elements (48 bytes) apart: row r starts in 16-byte slot 3r mod 8, and lane
    // l's row is (7l + 3) % 32, so any 8 consecutive lanes (one matrix) hit 8 distinct slots
    // (3 (7l + 3) = 5l + 1 mod 8): no bank conflict, which the emulator would fail.
    constexpr uint32_t kStride = 24;
    uint16_t* s = dynamic_smem<uint16_t>();
    const uint32_t lane = threadIdx.x;
    for (uint32_t i = lane; i < 32 * 16; i += 32) ptx::st_shared(&s[(i / 16) * kStride + i % 16], p.src[i]);
    __syncwarp();
    const uint16_t* row = s + ((7 * lane + 3) % 32) * kStride + 8 * ((lane / 8) % 2);
    uint32_t* o = p.out + lane * 4;
    auto put = [&](int variant, const uint32_t* r, int count) {
        for (int i = 0; i < 4; ++i) o[variant * 32 * 4 + i] = i < count ? r[i] : 0u;
    };
    uint32_t r1[1], r2[2], r4[4];
    ptx::ldmatrix_x1(r1, row);
    put(0, r1, 1);
    ptx::ldmatrix_x2(r2, row);
    put(1, r2, 2);
    ptx::ldmatrix_x4(r4, row);
    put(2, r4, 4);
    ptx::ldmatrix_x1_trans(r1, row);
    put(3, r1, 1);
    ptx::ldmatrix_x2_trans(r2, row);
    put(4, r2, 2);
    ptx::ldmatrix_x4_trans(r4, row);
    put(5, r4, 4);
}

__device__ __forceinline__ uint32_t conf_pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | uint32_t(hi) << 16; }

template <bool kBf16>
__device__ __forceinline__ void conf_mma(const sinkless_conf_mma_params& p) {
    const uint32_t lane = threadIdx.x, g = lane / 4, t = 2 * (lane % 4), k = p.k;
    float d[4] = {p.c[g * 8 + t], p.c[g * 8 + t + 1], p.c[(g + 8) * 8 + t], p.c[(g + 8) * 8 + t + 1]};
    // A's rows sit k + 8 elements apart, an odd number of 16-byte slots (k is a multiple of 16),
    // so the 8 rows of each ldmatrix matrix fall in 8 distinct slots; B's rows are 16 bytes
    // apart. The planted bank conflict packs A's rows k apart instead (an even slot count).
    const uint32_t lda = p.plant == SINKLESS_CONF_PLANT_LDMATRIX_BANK_CONFLICT ? k : k + 8;
    uint16_t* sa = dynamic_smem<uint16_t>();
    uint16_t* sb = sa + 16 * (k + 8);
    if (p.use_ldmatrix) {
        for (uint32_t i = lane; i < 16 * k; i += 32) ptx::st_shared(&sa[(i / k) * lda + i % k], p.a[i]);
        for (uint32_t i = lane; i < 8 * k; i += 32) ptx::st_shared(&sb[i], p.b[i]);
        __syncwarp();
    }
    for (uint32_t k0 = 0; k0 < k; k0 += 16) {
        uint32_t a[4], b[2];
        if (p.use_ldmatrix) {
            // Lanes 0-15 address rows 0-15 at column k0, lanes 16-31 the same rows at k0 + 8:
            // matrices 0-3 are then exactly fragments a[0..3]. B is stored k-major, so its 8x8
            // blocks are read transposed; lanes 16-31 repeat addresses that x2 ignores.
            ptx::ldmatrix_x4(a, sa + (lane % 16) * lda + k0 + (lane / 16) * 8);
            ptx::ldmatrix_x2_trans(b, sb + (k0 + lane % 16) * 8);
        } else {
            const uint16_t* ar = p.a + g * k + k0 + t;
            a[0] = conf_pair(ar[0], ar[1]);
            a[1] = conf_pair(ar[8 * k], ar[8 * k + 1]);
            a[2] = conf_pair(ar[8], ar[9]);
            a[3] = conf_pair(ar[8 * k + 8], ar[8 * k + 9]);
            const uint16_t* bc = p.b + (k0 + t) * 8 + g;
            b[0] = conf_pair(bc[0], bc[8]);
            b[1] = conf_pair(bc[64], bc[72]);
        }
        if (kBf16) {
            ptx::mma_m16n8k16_bf16(d, a, b);
        } else {
            ptx::mma_m16n8k16_f16(d, a, b);
        }
    }
    p.d[g * 8 + t] = d[0];
    p.d[g * 8 + t + 1] = d[1];
    p.d[(g + 8) * 8 + t] = d[2];
    p.d[(g + 8) * 8 + t + 1] = d[3];
}

// Each case writes out[case][thread]. With lane = thread % 32 and v = in[thread]:
//   0  __shfl_sync       unsigned  src (5 lane + 3) % 32
//   1  __shfl_sync       int       src 3 lane, width 8
//   2  __shfl_sync       float     src 5, width 16
//   3-7 __shfl_xor_sync  float     lane mask 1, 2, 4, 8, 16
//   8  __shfl_xor_sync   int       lane mask 4, width 4 (a later segment gives the own value)
//   9  __shfl_down_sync  unsigned  delta 3
//   10 __shfl_up_sync    int       delta 2, width 16
//   11 __shfl_down_sync  float     delta 1, width 8
//   12 __shfl_sync with mask 0x0000ffff among lanes 0-15, src 15 - lane; lanes 16-31 keep v
//   13 __ballot_sync     bit 19 of v
//   14 __any_sync        v == in[39] as 0/1 (true in the second warp only)
//   15 __all_sync        v < 4.9f as 0/1 (true in the first warp only)
__device__ __forceinline__ void conf_shfl(const sinkless_conf_shfl_params& p) {
    const uint32_t tid = threadIdx.x, lane = tid % 32, n = blockDim.x;
    const uint32_t v = p.in[tid];
    const float f = __uint_as_float(v);
    uint32_t* o = p.out + tid;
    o[0 * n] = __shfl_sync(0xffffffffu, v, int((5 * lane + 3) % 32));
    o[1 * n] = uint32_t(__shfl_sync(0xffffffffu, int(v), int(3 * lane), 8));
    o[2 * n] = __float_as_uint(__shfl_sync(0xffffffffu, f, 5, 16));
    for (int i = 0; i < 5; ++i) o[(3 + i) * n] = __float_as_uint(__shfl_xor_sync(0xffffffffu, f, 1 << i));
    o[8 * n] = uint32_t(__shfl_xor_sync(0xffffffffu, int(v), 4, 4));
    o[9 * n] = __shfl_down_sync(0xffffffffu, v, 3u);
    o[10 * n] = uint32_t(__shfl_up_sync(0xffffffffu, int(v), 2u, 16));
    o[11 * n] = __float_as_uint(__shfl_down_sync(0xffffffffu, f, 1u, 8));
    o[13 * n] = __ballot_sync(0xffffffffu, (v >> 19) & 1u);
    o[14 * n] = __any_sync(0xffffffffu, v == p.in[39]) ? 1u : 0u;
    o[15 * n] = __all_sync(0xffffffffu, f < 4.9f) ? 1u : 0u;
    __syncwarp();
    o[12 * n] = lane < 16 ? __shfl_sync(0x0000ffffu, v, int(15 - lane)) : v;
}

__device__ __forceinline__ void conf_math(const sinkless_conf_math_params& p) {
    const uint32_t stride = blockDim.x * gridDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        const float x = p.in[i], y = p.in[p.n - 1 - i];
        p.ex2[i] = ptx::ex2_approx(x);
        p.tanh[i] = ptx::tanh_approx(x);
        p.rcp[i] = ptx::rcp_approx(x);
        p.sigmoid[i] = sigmoid_scaled<4>(x, kLog2e);
        p.sigmoid3[i] = sigmoid_scaled<3>(x, kLog2e);
        p.f16[i] = ptx::f32_to_f16(x);
        p.bf16[i] = ptx::f32_to_bf16(x);
        p.f16x2[i] = ptx::pack_f16x2(x, y);
        p.bf16x2[i] = ptx::pack_bf16x2(x, y);
    }
}

__device__ __forceinline__ void conf_widen(const sinkless_conf_widen_params& p) {
    const uint32_t stride = blockDim.x * gridDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        p.f16[i] = ptx::f16_to_f32(p.in[i]);
        p.bf16[i] = ptx::bf16_to_f32(p.in[i]);
    }
}

__device__ __forceinline__ void conf_atomic(const sinkless_conf_atomic_params& p) {
    atomicAdd(&p.sums[(blockIdx.x + threadIdx.x) % p.nsums], float(1 + threadIdx.x % 3));
    const uint32_t j = (blockIdx.x + 2 * threadIdx.x) % p.npairs;
    ptx::red_add_f32x2(&p.pairs[2 * j], float(1 + threadIdx.x % 3), float(1 + threadIdx.x % 5));
}

// Spins on a volatile load (ld.volatile.global: every read goes to memory, so the host's write
// is seen) until the host writes a non-zero release.
__device__ __forceinline__ void conf_spin(const sinkless_conf_spin_params& p) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    const volatile uint32_t* release = p.release;
    while (*release == 0) {
    }
    *p.done = 1;
}

// Stages rows x cols (cols a multiple of 8) of a tile from src(row, col), one 16-byte store a
// chunk, 128 threads: the 8 threads of a quarter-warp store 8 chunks of one row's 128-byte
// block, which the swizzle puts in 8 distinct bank slots, so no store replays.
template <class Tile, class Src>
__device__ __forceinline__ void conf_stage(const Tile& tile, uint32_t rows, uint32_t cols, uint32_t t, Src src) {
    for (uint32_t i = t; i < rows * Tile::kChunks; i += 128) {
        const uint32_t r = i / Tile::kChunks, c = i % Tile::kChunks;
        if (8 * c >= cols) continue;
        chunk16 v;
        for (uint32_t e = 0; e < 4; ++e) {
            v.w[e] = uint32_t(src(r, 8 * c + 2 * e)) | uint32_t(src(r, 8 * c + 2 * e + 1)) << 16;
        }
        ptx::st_shared(reinterpret_cast<chunk16*>(tile.chunk(int(r), int(c))), v);
    }
}

// One warpgroup: D = A B + C (64 x k x n) by wgmma, A and B staged with plain stores (then the
// proxy fence) at the places conformance_params.h describes, decoys everywhere else in their
// tiles. The register-A form gathers its fragments from global memory by the mma.m16n8k16 A
// table (warp w: rows 16w..), all of them before the first product, so no register a product
// reads is rewritten while it runs.
template <bool kBf16>
__device__ __forceinline__ void conf_wgmma(const sinkless_conf_wgmma_params& p) {
    if constexpr (!ptx::kHasWgmma) {
        ptx::trap();
    } else {
        using ka_tile_t = smem_tile<128, 128>;  // A K-major: [m][k]
        using ma_tile_t = smem_tile<128, 64>;   // A M-major: [k][m]
        using kb_tile_t = smem_tile<128, 128>;  // B K-major: [n][k]
        using nb_tile_t = smem_tile<128, 128>;  // B N-major: [k][n], two column blocks
        static_assert(ma_tile_t::kElems <= ka_tile_t::kElems, "both forms of A in one region");
        const uint32_t t = threadIdx.x, k = p.k, n = p.n, row0 = p.row0, c0 = 64 * p.block;
        const bool reg_a = p.form == SINKLESS_CONF_WGMMA_REGISTER_A, mn = p.form == SINKLESS_CONF_WGMMA_SHARED_MN;
        uint16_t* smem = dynamic_smem<uint16_t>();
        smem += ((1024u - (ptx::smem_addr(smem) & 1023u)) & 1023u) / 2;
        const ka_tile_t ska{smem};
        const ma_tile_t sma{smem};
        const kb_tile_t skb{smem + ka_tile_t::kElems};
        const nb_tile_t snb{smem + ka_tile_t::kElems};
        // A decoy: the input at a position spread from (r, c), negated, so it is finite, exact in
        // either type, and differs from what belongs there unless both are zero.
        const auto decoy = [](const uint16_t* x, uint32_t count, uint32_t r, uint32_t c) {
            return uint16_t(x[(131 * r + 7 * c + 3) % count] ^ 0x8000u);
        };
        const auto in = [](uint32_t x, uint32_t lo, uint32_t len) { return x >= lo && x < lo + len; };
        if (mn) {
            conf_stage(sma, 128, 64, t, [&](uint32_t r, uint32_t m) {
                return in(r, row0, k) ? p.a[m * k + r - row0] : decoy(p.a, 64 * k, r, m);
            });
        } else if (!reg_a) {
            conf_stage(ska, 128, 128, t, [&](uint32_t r, uint32_t kk) {
                return in(r, row0, 64) && kk < k ? p.a[(r - row0) * k + kk] : decoy(p.a, 64 * k, r, kk);
            });
        }
        if (reg_a || mn) {
            conf_stage(snb, 128, 128, t, [&](uint32_t r, uint32_t c) {
                return in(r, row0, k) && in(c, c0, n) ? p.b[(r - row0) * n + c - c0] : decoy(p.b, k * n, r, c);
            });
        } else {
            conf_stage(skb, 128, 128, t, [&](uint32_t r, uint32_t kk) {
                return r < n && kk < k ? p.b[kk * n + r] : decoy(p.b, k * n, r, kk);
            });
        }
        if (p.plant != SINKLESS_CONF_PLANT_SKIP_PROXY_FENCE) ptx::fence_proxy_async();
        __syncthreads();
        uint32_t a[8][4] = {};
        if (reg_a) {
            const uint32_t r = 16 * (t / 32) + (t % 32) / 4, c = 2 * (t % 4);
#pragma unroll
            for (uint32_t ks = 0; ks < 8; ++ks) {
                if (16 * ks >= k) break;
                const uint16_t* ar = p.a + r * k + 16 * ks + c;
                a[ks][0] = conf_pair(ar[0], ar[1]);
                a[ks][1] = conf_pair(ar[8 * k], ar[8 * k + 1]);
                a[ks][2] = conf_pair(ar[8], ar[9]);
                a[ks][3] = conf_pair(ar[8 * k + 8], ar[8 * k + 9]);
            }
        }
#if defined(__CUDACC__)
        constexpr int misplaced = 0;
#else  // a plant, which only the emulator runs
        const int misplaced = p.plant == SINKLESS_CONF_PLANT_MISPLACED_B ? 1 : 0;
#endif
        const int b_block = int(p.block) + misplaced;
        const auto row = [&](int i) { return 16 * (t / 32) + (t % 32) / 4 + 8 * ((i >> 1) & 1); };
        const auto col = [&](int i) { return 8 * (i >> 2) + 2 * (t % 4) + (i & 1); };
        // The operand form, the width and the grouping are chosen outside the products: no
        // branch sits between a fence and its product, so ptxas has nothing to patch. KS is 0
        // for one group a k-step, else the k-steps of the two-group schedule.
        const auto run = [&](auto form, auto wide, auto steps) {
            constexpr uint32_t kForm = decltype(form)::value;
            constexpr int N = decltype(wide)::value ? 128 : 64;
            constexpr int KS = decltype(steps)::value;
            constexpr uint32_t kNoA[4] = {0, 0, 0, 0};
            const auto product = [&](float(&acc)[N / 2], uint32_t ks) {
                if constexpr (kForm == SINKLESS_CONF_WGMMA_REGISTER_A) {
                    ptx::wgmma<kBf16, true, N>(acc, a[ks], 0, desc_n_major(snb, int(row0 + 16 * ks), b_block));
                } else if constexpr (kForm == SINKLESS_CONF_WGMMA_SHARED_MN) {
                    ptx::wgmma<kBf16, false, N, true>(acc, kNoA, desc_n_major(sma, int(row0 + 16 * ks)),
                                                      desc_n_major(snb, int(row0 + 16 * ks), b_block));
                } else {
                    uint64_t desc_a = desc_k_major(ska, int(row0), int(16 * ks));
#if !defined(__CUDACC__)  // a plant, which only the emulator runs
                    if (p.plant == SINKLESS_CONF_PLANT_DESCRIPTOR_OVERFLOW && ks == 0) {
                        desc_a = desc_advance(desc_a, 1u << 18);
                    }
#endif
                    ptx::wgmma<kBf16, false, N>(acc, kNoA, desc_a, desc_k_major(skb, 8 * misplaced, int(16 * ks)));
                }
            };
            float d[N / 2];
#pragma unroll
            for (int i = 0; i < N / 2; ++i) d[i] = p.c[row(i) * N + col(i)];
            if constexpr (KS == 0) {
#pragma unroll
                for (uint32_t ks = 0; ks < 8; ++ks) {
                    if (16 * ks >= k) break;
                    ptx::fence_operand(d);
                    ptx::fence_operand(a[ks]);
                    ptx::wgmma_fence();
                    product(d, ks);
                    ptx::wgmma_commit();
#if !defined(__CUDACC__)  // a plant, which only the emulator runs: no branch here on the GPU
                    if (p.plant == SINKLESS_CONF_PLANT_STORE_UNDER_WGMMA && ks == 0) {
                        ptx::st_shared(&snb.chunk(0, int(t % 8))[0], uint16_t(t));
                    }
#endif
                    ptx::wgmma_wait<0>();
                    ptx::fence_operand(d);
                }
#pragma unroll
                for (int i = 0; i < N / 2; ++i) p.d[row(i) * N + col(i)] = d[i];
            } else {
                float e[N / 2];
#pragma unroll
                for (int i = 0; i < N / 2; ++i) e[i] = 0.0f;
                ptx::fence_operand(d);
                ptx::fence_operand(reinterpret_cast<uint32_t(&)[32]>(a));
                ptx::wgmma_fence();
#pragma unroll
                for (uint32_t ks = 0; ks < KS - 1; ++ks) product(d, ks);
                ptx::wgmma_commit();
                ptx::fence_operand(e);
                ptx::wgmma_fence();
                product(e, KS - 1);
                ptx::wgmma_commit();
                ptx::wgmma_wait<1>();
                ptx::fence_operand(d);
#pragma unroll
                for (int i = 0; i < N / 2; ++i) p.d[row(i) * N + col(i)] = d[i];
                ptx::wgmma_wait<0>();
                ptx::fence_operand(e);
#pragma unroll
                for (int i = 0; i < N / 2; ++i) p.d[row(i) * N + col(i)] += e[i];
            }
        };
        const auto by_form = [&](auto wide, auto steps) {
            if (reg_a) {
                run(std::integral_constant<uint32_t, SINKLESS_CONF_WGMMA_REGISTER_A>{}, wide, steps);
            } else if (mn) {
                run(std::integral_constant<uint32_t, SINKLESS_CONF_WGMMA_SHARED_MN>{}, wide, steps);
            } else {
                run(std::integral_constant<uint32_t, SINKLESS_CONF_WGMMA_SHARED_K>{}, wide, steps);
            }
        };
        const auto by_steps = [&](auto wide) {
            if (p.groups == 1) {
                by_form(wide, std::integral_constant<int, 0>{});
            } else if (k == 64) {
                by_form(wide, std::integral_constant<int, 4>{});
            } else {
                by_form(wide, std::integral_constant<int, 8>{});
            }
        };
        if (n == 128) {
            by_steps(std::true_type{});
        } else {
            by_steps(std::false_type{});
        }
    }
}

// Copies i = 0 .. 3 of the box at coords[i] into buffer i % 2, each completing phase i of one
// mbarrier (conformance_params.h); the buffers are read back raw, so the swizzle shows.
__device__ __forceinline__ void conf_tma(const sinkless_conf_tma_params& p) {
    if constexpr (!ptx::kHasWgmma) {
        ptx::trap();
    } else {
        const uint32_t t = threadIdx.x;
        unsigned char* smem = dynamic_smem<unsigned char>();
        smem += (1024u - (ptx::smem_addr(smem) & 1023u)) & 1023u;
        uint64_t* bar = reinterpret_cast<uint64_t*>(smem + 2 * SINKLESS_CONF_TMA_MAX_BOX);
        uint32_t* handoff = reinterpret_cast<uint32_t*>(smem + 2 * SINKLESS_CONF_TMA_MAX_BOX + 64);
        if (t == 0) {
            ptx::mbarrier_init(bar, 1);
            ptx::fence_mbarrier_init();
        }
        __syncthreads();
        for (uint32_t i = 0; i < SINKLESS_CONF_TMA_LOADS; ++i) {
            unsigned char* buf = smem + (i % 2) * SINKLESS_CONF_TMA_MAX_BOX;
            if (t == 0) {
                ptx::mbarrier_arrive_expect_tx(bar, p.box_bytes);
                ptx::tma_load_4d(buf, &p.map, p.coords[i][0], p.coords[i][1], p.coords[i][2], p.coords[i][3], bar);
            }
            if (!(p.plant == SINKLESS_CONF_PLANT_SKIP_MBARRIER_WAIT && i == 0 && t >= 64)) ptx::mbarrier_wait(bar, i % 2);
            for (uint32_t c = t; c < p.box_bytes / 16; c += 128) {
                const chunk16 v = ptx::ld_shared(reinterpret_cast<const chunk16*>(buf) + c);
                uint32_t* dst = reinterpret_cast<uint32_t*>(p.out + i * (p.box_bytes / 2) + 8 * c);
                for (int w = 0; w < 4; ++w) dst[w] = v.w[w];
            }
            // every thread is past phase i (a wait must not fall two phases behind) and done
            // with buffer i % 2 before copy i + 1 is issued
            ptx::bar_sync(1, 128);
        }
        if (t < 64) {
            if (p.plant == SINKLESS_CONF_PLANT_ARRIVE_BEFORE_STORE) {
                ptx::bar_arrive(2, 128);
                ptx::st_shared(&handoff[t], 7 * t + 3);
            } else {
                ptx::st_shared(&handoff[t], 7 * t + 3);
                ptx::bar_arrive(2, 128);
            }
        } else {
            ptx::bar_sync(2, 128);
            // lane l of an ldmatrix.x1 gets word l of the 8 rows of 16 bytes that lanes 0-7 name
            uint32_t r[1];
            ptx::ldmatrix_x1(r, handoff + 32 * (t / 32 - 2) + 4 * (t % 8));
            p.named[t - 64] = r[0];
        }
#if !defined(__CUDACC__)  // a plant, which only the emulator runs
        if (p.plant == SINKLESS_CONF_PLANT_STORE_AFTER_LDMATRIX && t == 0) {
            // the emulator lands this copy only when no other thread can run, so the store comes
            // after the other warps' ldmatrix of the hand-off, and nothing orders it after them
            ptx::mbarrier_arrive_expect_tx(bar, p.box_bytes);
            ptx::tma_load_4d(smem, &p.map, p.coords[0][0], p.coords[0][1], p.coords[0][2], p.coords[0][3], bar);
            ptx::mbarrier_wait(bar, SINKLESS_CONF_TMA_LOADS % 2);
            ptx::st_shared(&handoff[1], 0u);
        }
#endif
    }
}

}  // namespace sinkless
