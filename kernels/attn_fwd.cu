#pragma once
#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"
// Attention forward, one template for every activation (softmax with sinks, sigmoid,
// normalized sigmoid), element type (f16, bf16) and head-dim bucket (32 64 96 128 192 256).
//
// Math: o[i] = sum_j act(scale * q[i].k[j] + bias)_j v[j] over keys j visible to i (mask.cuh),
// act per activation.cuh. Softmax also writes lse[i] (natural log, f32), normalized sigmoid the
// row sum L[i] of the sigmoids, both into row_stat.
//
// Shapes: params in sinkless/attn_params.h (bshd dense or varlen, GQA by head index).
// Grid (ceil(seqlen_q / kBlockM), heads_q, batch), block kThreads, dynamic shared memory
// kSmemBytes, all from fwd_traits<kHD, Act>; blocks past a varlen sequence's end exit at once.
//
// Numeric policy: products on tensor cores in T with f32 accumulation; scores, softmax state,
// o in f32; probabilities rounded to T before P.V (as FlashAttention); ex2.approx (MUFU) for every activation; the sigmoid
// adds a polynomial for 1 / (1 + e) instead of tanh.approx, see activation.cuh.
// Rows with no visible key give o = 0 (never NaN) and lse = -inf, or the sink logit with one.
//
// Structure (FlashAttention-2 forward): a CTA owns kBlockM query rows of one head, each warp
// 16 * kMTiles of them, so the softmax needs no cross-warp reduction. Q stays in shared memory;
// K/V tiles of kBlockN keys arrive by cp.async, either double-buffered (the copies of tile n-1
// in flight while tile n is multiplied) or with one buffer each (pipeline.cuh,
// kv_single_buffered), as fwd_traits::kKvStages says. Key tiles run from the last visible one
// down, and only tiles cut by a mask boundary pay the per-element test. O is staged through the
// Q tile so the global stores are 16-byte and row-contiguous. Under a causal mask the CTAs take
// the query blocks last to first, the longest first (query_block_index, mask.cuh).
#include "sinkless/params.h"
#include "sinkless/dtype.cuh"
#include "sinkless/tile.cuh"
#include "sinkless/gmem.cuh"
#include "sinkless/mask.cuh"
#include "sinkless/activation.cuh"
#include "sinkless/problem.cuh"
#include "sinkless/pipeline.cuh"
#include "sinkless/wgmma.cuh"

namespace sinkless {

// Tile choice per head-dim bucket and activation, 4 warps each. A thread holds the O
// accumulator (kMTiles * kHD / 2 f32 registers) and one score tile (kMTiles * kBlockN / 2), within
// the 255-register limit and with no spill (ptxas -v, every bucket, both dtypes, sm_80/sm_90a):
//   hd 32:       128 x 128 (O 32 + S 128): FA2's shape; wide key tiles halve the softmax
//                rescales and barriers per key.
//   hd 64, 96:   128 x 64 (O 64/96 + S 64). 128 x 128 at hd64 spills with the sigmoid; softmax
//                fits it in 252-254 registers, and the benchmark times that as a variant.
//   hd 128:      128 x 64 (O 128 + S 64), FA2's shape: two m-tiles per warp keep each K/V
//                fragment read from shared memory used twice (one m-tile per warp makes the
//                loop bound by shared memory bandwidth rather than by the tensor cores), and
//                64-key tiles read Q from shared memory, wait at the barriers and reduce the row
//                maxima half as often per score as 32-key tiles. It takes 254-255 registers
//                without a spill since the softmax rescale became lazy (it spilled before); 128 x
//                32 (O 128 + S 32, about 230 registers) is the fallback should a change tip it
//                over. The normalized sigmoid's epilogue (a log and a reciprocal per row with O
//                live) spilled at 128 rows, so it runs 64 x 64 with one m-tile.
//   hd 192, 256: 64 x 64, one m-tile per warp (O 96/128 + S 32): 128 rows would need 192/256
//                registers for O alone.
// K and V are double-buffered up to hd 96 and single-buffered from hd 128 on, where double
// buffers would cost occupancy: shared memory per CTA (Q + K + V) is then 64/72/96 KiB at hd
// 128/192/256 instead of 96/120/160, so two CTAs (8 warps) fit an SM at hd 128 and 192 on an
// A100 (164 KiB) and at every hd on an H100 (228 KiB), where double buffers left one at hd 192
// and 256 everywhere and at hd 128 on the A100. Registers allow two CTAs in every case.
//
// kBlockN_ and kKvStages_, when not 0, override the key tile and the K/V stages: the forward
// variants the benchmark measures against these choices (config.rs, KernelVariant).
//
// kWgmma_ (sm_90a only, hd 64 to 256 in whole 64-column blocks): both products by wgmma.mma_async
// (wgmma.cuh) instead of mma.sync. Two warpgroups of 64 query rows each (8 warps, one m-tile per
// warp, in the same accumulator layout, so the activations, masks and epilogue are shared) over 128
// x 128 tiles with double-buffered K/V: Q's 64 rows and K's 128 each come out of shared memory once
// per key tile per warpgroup instead of once per warp, and P V takes P from registers. 16/32 KiB
// per tile at hd 64/128: 80 KiB (two CTAs an SM) or 160 KiB (one), plus 1 KiB to align the tiles on
// the 1024-byte boundary the 128-byte swizzle needs. Registers per thread at hd 128: S 64 + O 64 +
// P 32. At hd 192 and 256 the key tile is 64: O alone takes 96/128 registers, and S 32 + P 16 keep
// the total (144/176) clear of the 240 a warp-specialised consumer gets (128 keys would need 224 at
// hd 256 before any address or statistic), and the shared memory is 144/192 KiB (Q 48/64, K and V
// two stages of 24/32 each), within an H100's 227 KiB; P V is issued as products of 64/128 columns
// (wgmma.cuh).
//
// kWgmma_ >= 2 adds FlashAttention-3's intra-warpgroup overlap: step i issues S_i = Q K_i^T and
// O += P_{i-1} V_{i-1} back to back, applies the activation to S_i while the tensor core works
// on the second product, and only then waits for it (and, for the softmax, rescales O). The
// tensor core gets the P V product of one step while the warpgroup's FP32 and MUFU pipes work
// on the next step's scores, instead of each waiting for the other. K and V move on different
// steps (K_{i+1} and V_i are copied during step i, each into the buffer its tile of two steps
// earlier has left), in the same shared memory as double buffering. Registers: S 64 + O 64 +
// P 32 live at once at hd 128.
//
// kWgmma_ == 3 is FlashAttention-3's warp specialisation on top: a third warpgroup, the producer,
// loads Q once and K and V tile by tile with the tensor memory accelerator (tma_load_4d, one
// thread issuing every copy) into the same two-stage ring, guarded by mbarriers (a full and an
// empty barrier per buffer), while the two consumer warpgroups only compute. The consumers
// never meet at a block barrier: a buffer goes back to the producer when both warpgroups have
// retired the products that read it (256 arrivals on its empty barrier), so one warpgroup can run
// ahead of the other by a tile. setmaxnreg gives the producer 24 registers a thread and each
// consumer thread 240, the whole register file for 384 threads (one CTA an SM, as its 160 KiB
// of shared memory at hd 128 allow anyway). Copies need no address arithmetic in the compute
// threads, and tails need no predicates: elements outside the tensor arrive as zeros. Under
// varlen the tokens past a sequence are the next one's instead: the mask hides their keys, but
// their values would still be multiplied by zero weights, and 0 * Inf is NaN, so the consumers
// zero those rows of the one tile that has them (the first step's) and meet at a named barrier
// before a P V reads it: a non-finite value in one sequence never reaches another's output.
//
// kWgmma_ == 4 adds FlashAttention-3's ping-pong between the two consumer warpgroups: they take
// turns issuing a step's two products, so that one warpgroup's activation (MUFU and FP32 work)
// runs while the other's products keep the tensor core busy, instead of both warpgroups wanting
// the tensor core, then both the MUFU, at the same moments. A warpgroup waits for its turn at its
// named barrier (kTurnBarrier + its index, 256 threads: itself and the other's arrival) and,
// once its products are issued, arrives at the other's. Warpgroup 0 takes the first turn by
// arriving at its own barrier before the loop; the first step's QK^T and the last P V run outside
// the turns, as they have no partner product to overlap (the last arrival is left unmatched,
// which the hardware forgets at block exit).
template <int kHD_, class Act, int kBlockN_ = 0, int kKvStages_ = 0, int kWgmma_ = 0>
struct fwd_traits {
    static constexpr int kHD = kHD_;
    static_assert(kHD == 32 || kHD == 64 || kHD == 96 || kHD == 128 || kHD == 192 || kHD == 256,
                  "head-dim bucket");
    static_assert(kBlockN_ == 0 || kBlockN_ == 32 || kBlockN_ == 64 || kBlockN_ == 128, "key tile");
    static_assert(kKvStages_ == 0 || kKvStages_ == 1 || kKvStages_ == 2, "K/V stages");
    static_assert(kWgmma_ >= 0 && kWgmma_ <= 4,
                  "0: mma.sync, 1: wgmma, 2: wgmma with overlap, 3: and warp-specialised with TMA, "
                  "4: and ping-pong between the consumer warpgroups");
    static constexpr bool kWgmma = kWgmma_ != 0;
    static constexpr bool kOverlap = kWgmma_ >= 2;
    static constexpr bool kTma = kWgmma_ >= 3;
    static constexpr bool kPingPong = kWgmma_ == 4;
    // named barriers: 1 + w the epilogue of consumer warpgroup w, kTurnBarrier + w its turns,
    // kClearBarrier the varlen tail's zeroed values
    static constexpr uint32_t kTurnBarrier = 3, kClearBarrier = 5;
    static_assert(!kWgmma || kHD % 64 == 0, "wgmma path: hd 64, 128, 192 and 256 (whole 64-column blocks)");
    static constexpr int kWarps = kWgmma ? 8 : 4;  // the warps that compute
    static constexpr int kComputeThreads = 32 * kWarps;
    static constexpr int kProducerThreads = kTma ? 128 : 0;  // a whole warpgroup: setmaxnreg is per warpgroup
    static constexpr int kThreads = kProducerThreads + kComputeThreads;
    static constexpr int kProducerRegs = 24, kConsumerRegs = 240;  // 24 * 128 + 240 * 256 <= 65536
    static constexpr bool kTall = !kWgmma && (kHD <= 96 || (kHD == 128 && Act::kTallTilesAtHd128));
    static constexpr int kMTiles = kTall ? 2 : 1;
    static constexpr int kBlockM = 16 * kMTiles * kWarps;
    static constexpr int kBlockN = kBlockN_ != 0 ? kBlockN_ : kWgmma ? (kHD <= 128 ? 128 : 64) : kHD == 32 ? 128 : 64;
    static constexpr int kKvStages = kKvStages_ != 0 ? kKvStages_ : kWgmma ? 2 : kHD >= 128 ? 1 : 2;
    // The mma.sync products run over the whole tile, padding included: Q K^T over every column
    // of the head-dim bucket (Q and K are zero past the head dim), P V over every key of the
    // tile (V is zero past the last key), where a test of each 16-wide step against the real
    // extent cut the loop into blocks that ptxas scheduled one by one, working the ldmatrix
    // addresses out again in each. Without the tests the loop's path is 13 to 20% shorter
    // (SASS, sm_90a, bf16: softmax hd 64 871 -> 674 instructions a step, hd 256 1498 -> 1017,
    // sigmoid hd 64 1108 -> 889; the whole loop at hd 128, both branches of the mask test: sigmoid
    // 2304 -> 2011). Where that needs more than 255 registers and spills, Q K^T tests once per
    // group of k-steps instead, the fewest groups that do not spill, and P V keeps its test per
    // k-step. ptxas decides where, so the rule is what it did on sm_80 and sm_90a, f16 and bf16:
    //   - Q K^T at hd 96 in two groups of 3 (whole: 8 to 444 bytes spilled), at hd 128 for
    //     softmax in two groups of 4 (policy kQkTestAtHd128; whole: 12 bytes on sm_90a), on
    //     128 x 64 tiles with two K/V stages at hd 128 per k-step (groups of 2: 4 bytes);
    //   - P V over 128-key tiles (as at hd 32) and on those two-stage tiles (20 to 440 bytes).
    // The loop at hd 128 softmax: 2010 -> 1818 instructions, hd 96 1908 -> 1679.
    static constexpr bool kTightHd128 = kHD == 128 && kBlockN == 64 && kKvStages == 2;
    static constexpr int kQkStepsPerTest = kTightHd128 ? 1
                                           : kHD == 96 ? 3
                                           : kHD == 128 && kBlockN == 64 && Act::kQkTestAtHd128 ? 4
                                           : kHD / 16;
    static constexpr bool kWholeKeys = kBlockN <= 64 && !kTightHd128;
    // K and V tiles addressed from the sequence's first row (load_rows_async_at: one 64-bit
    // product a tile per thread instead of two, and no tile pointer): the loop 18 to 48
    // instructions shorter (sm_90a, bf16: hd 64 1440 -> 1393, hd 128 1818 -> 1800, hd 256 1389 ->
    // 1365, Wgmma hd 128 1275 -> 1240), except where ptxas then spills, so those keep a pointer
    // per tile: hd 128 on 128 x 64 tiles whose Q K^T runs whole (the sigmoids, 16 bytes) or with
    // two K/V stages (4 bytes), and hd 64 on 128 x 128 tiles (12 bytes).
    static constexpr bool kKvFromSeqStart =
        kWgmma || !((kHD == 128 && kBlockN == 64 && ((kTall && kQkStepsPerTest == kHD / 16) || kKvStages == 2)) ||
                    (kHD == 64 && kBlockN == 128));
    // V's copies skip the row test after step 0 (attn_fwd_body). The one-stage loop issues step
    // 0's copy in the loop too, so there both forms sit in it behind a branch: the usual step 20
    // to 30 instructions shorter all the same (sm_90a, bf16: softmax hd 128 899 -> 878, hd 256
    // 754 -> 728, sigmoid hd 256 878 -> 847), except where ptxas then spills: hd 128 on 128 x 64
    // tiles with the whole Q K^T (the sigmoids, 16 bytes), which test every V copy.
    static constexpr bool kWholeV =
        kKvStages == 2 || !(kHD == 128 && kBlockN == 64 && kTall && kQkStepsPerTest == kHD / 16);
    // The mma.sync loop's fragment loads through lane views (tile.cuh's smem_lane_view: one
    // address register per tile and ldmatrix pattern, one XOR per fragment and k-step), not tile
    // pointers, except at hd 128: there the three address registers cost ptxas a spill on sm_80
    // (bf16, the sigmoids on 128 x 64 tiles and two K/V stages: 4 bytes each), for a step only
    // 2.6% shorter (f16 softmax, sm_90a, 878 -> 855).
    static constexpr bool kLaneViews = !kWgmma && kHD != 128;
    static_assert(!kOverlap || kKvStages == 2, "the overlapped loop has two K and two V buffers");
    using q_tile = smem_tile<kBlockM, kHD>;
    using kv_tile = smem_tile<kBlockN, kHD>;
    static constexpr int kAlignSlack = kWgmma ? 1024 : 0;
    // the producer's mbarriers: Q full, then K full, V full, K empty, V empty per stage
    static constexpr int kBarriers = kTma ? 1 + 4 * kKvStages : 0;
    // Q, then K[kKvStages], then V[kKvStages], then the barriers
    static constexpr int kSmemBytes = kAlignSlack + q_tile::kBytes + 2 * kKvStages * kv_tile::kBytes + 8 * kBarriers;
};

// The mbarriers of the warp-specialised forward (fwd_traits::kTma) and who waits for which
// phase. Tile i of K and V sits in buffer i % kStages; its copy completes phase i / kStages of
// the buffer's full barrier, and the products reading it complete phase i / kStages of the empty
// barrier (all kArrivals consumer threads arrive), after which the producer may refill it.
template <int kStages, int kArrivals>
struct fwd_barriers {
    uint64_t* base;  // q_full, k_full[kStages], v_full[kStages], k_empty[kStages], v_empty[kStages]

    __device__ __forceinline__ uint64_t* q_full() const { return base; }
    __device__ __forceinline__ uint64_t* k_full(int i) const { return base + 1 + i % kStages; }
    __device__ __forceinline__ uint64_t* v_full(int i) const { return base + 1 + kStages + i % kStages; }
    __device__ __forceinline__ uint64_t* k_empty(int i) const { return base + 1 + 2 * kStages + i % kStages; }
    __device__ __forceinline__ uint64_t* v_empty(int i) const { return base + 1 + 3 * kStages + i % kStages; }
    static __device__ __forceinline__ uint32_t parity(int i) { return uint32_t(i / kStages) & 1u; }

    // One thread, before the block barrier that publishes them.
    __device__ __forceinline__ void init() const {
        ptx::mbarrier_init(q_full(), 1);
        for (int s = 0; s < kStages; ++s) {
            ptx::mbarrier_init(k_full(s), 1);
            ptx::mbarrier_init(v_full(s), 1);
            ptx::mbarrier_init(k_empty(s), kArrivals);
            ptx::mbarrier_init(v_empty(s), kArrivals);
        }
        ptx::fence_mbarrier_init();
    }
    // The producer before refilling tile i's buffer: the consumers are done with tile
    // i - kStages (a fresh buffer needs no wait).
    __device__ __forceinline__ void wait_k_empty(int i) const {
        if (i >= kStages) ptx::mbarrier_wait(k_empty(i), parity(i - kStages));
    }
    __device__ __forceinline__ void wait_v_empty(int i) const {
        if (i >= kStages) ptx::mbarrier_wait(v_empty(i), parity(i - kStages));
    }
};

// The producer of the warp-specialised forward, one thread: Q's rows m0.. of query head h, then
// K and V of key tiles n_end - 1, n_end - 2, .. (step i's) of kv head hk, each box one 64-column
// block of a tile (tensor maps: attn_params.h). Token coordinates are the sequence's start plus
// the row; the batch coordinate is b, or 0 under varlen where the token axis is packed.
template <class tr>
__device__ __forceinline__ void fwd_produce(const sinkless_attn_fwd_tma_params& pp, const seq_bounds& sb, int b, int h,
                                            int hk, int m0, int n_end, int count, uint16_t* q_smem,
                                            uint16_t* k_base, uint16_t* v_base,
                                            const fwd_barriers<tr::kKvStages, tr::kComputeThreads>& bars) {
    using q_tile = typename tr::q_tile;
    using kv_tile = typename tr::kv_tile;
    constexpr int kBlocks = tr::kHD / 64;
    if (count == 0) return;  // nothing to compute: the consumers do not wait for Q either
    const int batch = pp.base.cu_seqlens_q != nullptr ? 0 : b;
    ptx::mbarrier_arrive_expect_tx(bars.q_full(), q_tile::kBytes);
    for (int cb = 0; cb < kBlocks; ++cb) {
        ptx::tma_load_4d(q_smem + cb * q_tile::kRows * 64, &pp.q, 64 * cb, sb.q_start + m0, h, batch, bars.q_full());
    }
    for (int i = 0; i < count; ++i) {
        const int n0 = (n_end - 1 - i) * tr::kBlockN;
        const int stage = i % tr::kKvStages;
        bars.wait_k_empty(i);
        ptx::mbarrier_arrive_expect_tx(bars.k_full(i), kv_tile::kBytes);
        for (int cb = 0; cb < kBlocks; ++cb) {
            ptx::tma_load_4d(k_base + stage * kv_tile::kElems + cb * kv_tile::kRows * 64, &pp.k, 64 * cb,
                             sb.k_start + n0, hk, batch, bars.k_full(i));
        }
        bars.wait_v_empty(i);
        ptx::mbarrier_arrive_expect_tx(bars.v_full(i), kv_tile::kBytes);
        for (int cb = 0; cb < kBlocks; ++cb) {
            ptx::tma_load_4d(v_base + stage * kv_tile::kElems + cb * kv_tile::kRows * 64, &pp.v, 64 * cb,
                             sb.k_start + n0, hk, batch, bars.v_full(i));
        }
    }
}

__device__ __forceinline__ const sinkless_attn_fwd_params& fwd_params(const sinkless_attn_fwd_params& p) { return p; }
__device__ __forceinline__ const sinkless_attn_fwd_params& fwd_params(const sinkless_attn_fwd_tma_params& p) {
    return p.base;
}

template <class T, class Act, int kHD, class tr, class P>
__device__ __forceinline__ void attn_fwd_body(const P& pp) {
    static_assert(tr::kHD == kHD, "traits of another head dim");
    constexpr int MT = tr::kMTiles;
    constexpr int NT = tr::kBlockN / 8;  // score n-tiles
    constexpr int NO = kHD / 8;          // output n-tiles
    constexpr int kThreads = tr::kComputeThreads;
    using q_tile = typename tr::q_tile;
    using kv_tile = typename tr::kv_tile;
    using barriers = fwd_barriers<tr::kKvStages, kThreads>;
    const sinkless_attn_fwd_params& p = fwd_params(pp);

    // Longest tiles first (query_block_index), except on sm_80 in the 128-row tiles at hd 128:
    // they sit at 253 to 255 registers, and there the reversed index, which ptxas cannot re-read
    // from blockIdx near its uses as it does the plain one, made five kernels spill 4 to 8 bytes.
    constexpr bool kLongestFirst = ptx::kHasWgmma || !(tr::kTall && kHD == 128);
    const int m_block = kLongestFirst ? query_block_index(p.block_order, p.window_left, p.window_right, blockIdx.x, gridDim.x)
                                      : int(blockIdx.x);
    const int h = blockIdx.y, b = blockIdx.z;
    const seq_bounds sb = get_seq_bounds(p, b);
    const int m0 = m_block * tr::kBlockM;
    if (m0 >= sb.sq) return;
    const int hk = h / (p.heads_q / p.heads_kv);
    const int rows = sb.sq - m0 < tr::kBlockM ? sb.sq - m0 : tr::kBlockM;

    uint16_t* smem = dynamic_smem<uint16_t>();
    if constexpr (tr::kWgmma) smem += ((1024u - (ptx::smem_addr(smem) & 1023u)) & 1023u) / 2;
    const q_tile sq_tile{smem};
    // stage s of K at k_base + s * kElems, of V at v_base + s * kElems
    uint16_t* const k_base = smem + q_tile::kElems;
    uint16_t* const v_base = k_base + tr::kKvStages * kv_tile::kElems;
    const barriers bars{reinterpret_cast<uint64_t*>(v_base + tr::kKvStages * kv_tile::kElems)};

    const seq_mask mask{sb.sq, sb.sk, p.window_left, p.window_right};
    int j_begin, j_end;
    mask.key_range(m0, m0 + rows, &j_begin, &j_end);
    const int n_begin = j_begin / tr::kBlockN;
    const int n_end = j_begin < j_end ? (j_end + tr::kBlockN - 1) / tr::kBlockN : n_begin;
    const int count = n_end - n_begin;

    // Warp specialisation: warpgroup 0 loads (one thread of it) and leaves; the rest computes,
    // numbered from 0 below.
    if constexpr (tr::kTma) {
        if (threadIdx.x == 0) bars.init();
        __syncthreads();
        if (threadIdx.x < tr::kProducerThreads) {
            ptx::setmaxnreg_dec<tr::kProducerRegs>();
            if (threadIdx.x == 0) fwd_produce<tr>(pp, sb, b, h, hk, m0, n_end, count, smem, k_base, v_base, bars);
            return;
        }
        ptx::setmaxnreg_inc<tr::kConsumerRegs>();
    }
    const int tid = int(threadIdx.x) - tr::kProducerThreads, lane = tid % 32, warp = tid / 32;

    const uint16_t* q = static_cast<const uint16_t*>(p.q) +
                        row_offset(p, b, p.q_batch_stride, p.q_row_stride, p.q_head_stride, sb.q_start, m0, h);
    const uint16_t* k = static_cast<const uint16_t*>(p.k) +
                        row_offset(p, b, p.k_batch_stride, p.k_row_stride, p.k_head_stride, sb.k_start, 0, hk);
    const uint16_t* v = static_cast<const uint16_t*>(p.v) +
                        row_offset(p, b, p.v_batch_stride, p.v_row_stride, p.v_head_stride, sb.k_start, 0, hk);

    // Step i works on key tile n_end - 1 - i: the last (most often partly masked) first. Only
    // that one may reach past the sequence, so the copies of steps i > 0 skip the row test
    // (whole: i > 0, folded away where the loop knows it; for V see fwd_traits::kWholeV).
    auto load_kv = [&](const kv_tile& t, const uint16_t* seq, int64_t row_stride, int i, bool whole) {
        const int n0 = (n_end - 1 - i) * tr::kBlockN;
        if constexpr (tr::kKvFromSeqStart) {
            if (whole) {
                load_rows_async_at<kThreads, true>(t, seq, row_stride, n0, sb.sk, p.head_dim, tid);
            } else {
                load_rows_async_at<kThreads>(t, seq, row_stride, n0, sb.sk, p.head_dim, tid);
            }
        } else if (whole) {
            load_rows_async<kThreads, true>(t, seq + n0 * row_stride, row_stride, sb.sk - n0, p.head_dim, tid);
        } else {
            load_rows_async<kThreads>(t, seq + n0 * row_stride, row_stride, sb.sk - n0, p.head_dim, tid);
        }
    };
    auto load_k = [&](int i, int stage) {
        load_kv(kv_tile{k_base + stage * kv_tile::kElems}, k, p.k_row_stride, i, i > 0);
    };
    auto load_v = [&](int i, int stage) {
        load_kv(kv_tile{v_base + stage * kv_tile::kElems}, v, p.v_row_stride, i, tr::kWholeV && i > 0);
    };
    const Act act(p, h, sb.sk);
    typename Act::template state<MT> st;
    act.init(st, lane);
    float o[MT][NO][4];
    fill(o, 0.f);
    const int wm0 = warp * 16 * MT;  // warp's first row inside the CTA tile
    const int wg = tr::kWgmma ? warp_uniform(warp / 4) : 0;  // warpgroup (wgmma): rows 64 wg ..
    // The mma.sync path's lane views (fwd_traits::kLaneViews): Q from the warp's rows, stage 0
    // of K and V, each by its ldmatrix pattern; stage s is s * kv_tile::kBytes on.
    const uint32_t q_addr = ptx::smem_addr(smem);
    const uint32_t k_addr = q_addr + q_tile::kBytes, v_addr = k_addr + tr::kKvStages * kv_tile::kBytes;
    const auto q_view = smem_lane_view<q_tile, kLanesA>::of(q_addr, wm0, lane);
    const auto k_view = smem_lane_view<kv_tile, kLanesB>::of(k_addr, 0, lane);
    const auto v_view = smem_lane_view<kv_tile, kLanesA>::of(v_addr, 0, lane);

    // A step in two halves: S = Q K^T and the activation into P operands, then O += P V. (The
    // array types are named out here: g++ 12 crashes on template-dependent array types spelled
    // inside these lambdas.)
    using score_tile = float[MT][NT][4];
    using p_tile = uint32_t[MT][NT / 2][4];
    p_tile pa;
    auto scores = [&](int i, int stage) {
        const int n0 = (n_end - 1 - i) * tr::kBlockN;
        score_tile s;
        fill(s, act.score_init());
        const kv_tile k_tile{k_base + stage * kv_tile::kElems};
        if constexpr (tr::kWgmma) {
            wg_gemm_nt<T, NT, kHD>(s[0], sq_tile, 64 * wg, k_tile);
        } else {
            constexpr int kSteps = tr::kQkStepsPerTest;
            const int k_valid = kSteps == kHD / 16 ? kHD : p.head_dim;
            if constexpr (tr::kLaneViews) {
                gemm_nt<T, MT, NT, kHD, kSteps>(s, q_view, 0, k_view.plus(stage * kv_tile::kBytes), 0, k_valid, lane);
            } else {
                gemm_nt<T, MT, NT, kHD, kSteps>(s, sq_tile, wm0, k_tile, 0, k_valid, lane);
            }
        }
        auto mask_fn = [&](score_tile& x, float fill_value) { mask_tile<false>(x, mask, m0 + wm0, n0, fill_value, lane); };
        if (mask.tile_full(m0, m0 + tr::kBlockM, n0, n0 + tr::kBlockN)) {
            act.template apply<false, T>(st, s, o, mask_fn);
        } else {
            act.template apply<true, T>(st, s, o, mask_fn);
        }
        acc_to_a<T>(pa, s);
    };
    auto finish = [&](int i, int stage) {
        const int n0 = (n_end - 1 - i) * tr::kBlockN;
        const kv_tile v_tile{v_base + stage * kv_tile::kElems};
        if constexpr (tr::kWgmma) {
            wg_gemm_rn<T>(o[0], pa[0], v_tile);
        } else {
            const int k_valid = tr::kWholeKeys ? tr::kBlockN : sb.sk - n0;
            if constexpr (tr::kLaneViews) {
                gemm_rn<T>(o, pa, v_view.plus(stage * kv_tile::kBytes), 0, k_valid, lane);
            } else {
                gemm_rn<T>(o, pa, v_tile, 0, k_valid, lane);
            }
        }
    };

    if constexpr (!tr::kTma) load_rows_async<kThreads>(sq_tile, q, p.q_row_stride, rows, p.head_dim, tid);
    if constexpr (tr::kOverlap) {
        // Step i: S_i = Q K_i^T and O += P_{i-1} V_{i-1} in flight together, the activation of
        // S_i under the second, then O rescaled and P_i formed (traits comment). Tile i's K sits
        // in K buffer i % 2 and its V in V buffer i % 2. How the tiles arrive and leave:
        //   k_ready(i), v_ready(i): return once the tensor core may read tile i of K, of V;
        //   issued(i): step i's products are in flight;
        //   k_done(i), v_done(i): the products that read tile i of K, of V have retired.
        // cp.async (kWgmma_ 2): K_0 comes with Q, then V_0 with K_1, and step i copies V_i and
        // K_{i+1} while its products run; a block barrier per step publishes the copies and frees
        // the buffers of K_{i-1} and V_{i-2}. TMA (kWgmma_ 3, 4): the producer's barriers.
        // take_turn(), pass_turn(): around the issue of steps 1.. under ping-pong (kWgmma_ 4).
        const int wg_m0 = 64 * wg;
        auto k_tile = [&](int i) { return kv_tile{k_base + (i & 1) * kv_tile::kElems}; };
        auto v_tile = [&](int i) { return kv_tile{v_base + (i & 1) * kv_tile::kElems}; };
        auto publish = [&] {
            ptx::fence_proxy_async();
            __syncthreads();
        };
        auto k_ready = [&](int i) {
            if constexpr (tr::kTma) {
                if (i == 0) ptx::mbarrier_wait(bars.q_full(), 0);
                ptx::mbarrier_wait(bars.k_full(i), barriers::parity(i));
            } else {
                if (i == 0) {
                    ptx::cp_async_wait<1>();
                } else {
                    ptx::cp_async_wait<0>();
                }
                // i > 0: V_{i-1} has landed too, and both warpgroups are past step i - 1, so the
                // buffers of K_{i-1} and V_{i-2} are free for K_{i+1} and V_i
                publish();
            }
        };
        auto v_ready = [&](int i) {
            if constexpr (tr::kTma) {
                ptx::mbarrier_wait(bars.v_full(i), barriers::parity(i));
            } else if (i == count - 1) {
                // the last V (the others arrived with the next step's K)
                ptx::cp_async_wait<0>();
                publish();
            }
        };
        auto issued = [&](int i) {
            if constexpr (!tr::kTma) {
                load_v(i, i & 1);
                if (i + 1 < count) load_k(i + 1, (i + 1) & 1);
                ptx::cp_async_commit();
            }
        };
        auto k_done = [&](int i) {
            if constexpr (tr::kTma) ptx::mbarrier_arrive(bars.k_empty(i));
        };
        auto v_done = [&](int i) {
            if constexpr (tr::kTma) ptx::mbarrier_arrive(bars.v_empty(i));
        };
        auto take_turn = [&] {
            if constexpr (tr::kPingPong) ptx::bar_sync(tr::kTurnBarrier + wg, 2 * 128);
        };
        auto pass_turn = [&] {
            if constexpr (tr::kPingPong) ptx::bar_arrive(tr::kTurnBarrier + (1 - wg), 2 * 128);
        };
        if constexpr (tr::kPingPong) {
            if (wg == 0 && count > 1) ptx::bar_arrive(tr::kTurnBarrier, 2 * 128);  // the first turn
        }
        score_tile s;
        float corr[MT][2];
        auto activate = [&](int i) {
            const int n0 = (n_end - 1 - i) * tr::kBlockN;
            auto mask_fn = [&](score_tile& x, float fill_value) { mask_tile<false>(x, mask, m0 + wm0, n0, fill_value, lane); };
            if (mask.tile_full(m0, m0 + tr::kBlockM, n0, n0 + tr::kBlockN)) {
                return act.template apply_deferred<false, T>(st, s, corr, mask_fn);
            }
            return act.template apply_deferred<true, T>(st, s, corr, mask_fn);
        };
        if (count > 0) {
            if constexpr (!tr::kTma) {
                load_k(0, 0);
                ptx::cp_async_commit();  // Q and K_0
                load_v(0, 0);
                if (count > 1) load_k(1, 1);
                ptx::cp_async_commit();
            }
            k_ready(0);
            fill(s, act.score_init());
            wg_gemm_nt<T, NT, kHD>(s[0], sq_tile, wg_m0, k_tile(0));
            k_done(0);
            // o is still 0: nothing to rescale
            activate(0);
            acc_to_a<T>(pa, s);
            if constexpr (tr::kTma) {
                // varlen: V rows past the sequence in the first step's tile belong to the next
                // sequence (traits comment); both warpgroups zero their share of them before
                // either multiplies the tile (condition uniform over the block)
                const int valid = sb.sk - (n_end - 1) * tr::kBlockN;
                if (p.cu_seqlens_k != nullptr && valid < tr::kBlockN) {
                    ptx::mbarrier_wait(bars.v_full(0), 0);
                    const kv_tile vt = v_tile(0);
                    for (int idx = tid; idx < (tr::kBlockN - valid) * kv_tile::kChunks; idx += kThreads) {
                        ptx::st_shared(reinterpret_cast<chunk16*>(
                                           vt.chunk(valid + idx / kv_tile::kChunks, idx % kv_tile::kChunks)),
                                       chunk16{});
                    }
                    ptx::fence_proxy_async();
                    ptx::bar_sync(tr::kClearBarrier, kThreads);
                }
            }
        }
        for (int i = 1; i < count; ++i) {
            k_ready(i);
            fill(s, act.score_init());
            take_turn();
            wg_issue_nt<T, NT, kHD>(s[0], sq_tile, wg_m0, k_tile(i));
            v_ready(i - 1);
            wg_issue_rn<T>(o[0], pa[0], v_tile(i - 1));
            pass_turn();
            issued(i);
            ptx::wgmma_wait<1>();
            ptx::fence_operand(flat(s[0]));
            k_done(i);
            const bool moved = activate(i);
            ptx::wgmma_wait<0>();
            ptx::fence_operand(flat(o[0]));
            ptx::fence_operand(reinterpret_cast<uint32_t(&)[NT * 2]>(pa[0]));
            v_done(i - 1);
            if (moved) act.rescale(corr, o);
            acc_to_a<T>(pa, s);
        }
        if (count > 0) {
            v_ready(count - 1);
            wg_gemm_rn<T>(o[0], pa[0], v_tile(count - 1));
            v_done(count - 1);
        }
    } else if constexpr (tr::kKvStages == 2) {
        double_buffered<tr::kWgmma>(
            count,
            [&](int i, int stage) {
                load_k(i, stage);
                load_v(i, stage);
            },
            [&](int i, int stage) {
                scores(i, stage);
                finish(i, stage);
            });
    } else {
        kv_single_buffered<tr::kWgmma>(
            count, [&](int i) { load_k(i, 0); }, [&](int i) { load_v(i, 0); }, [&](int i) { scores(i, 0); },
            [&](int i) { finish(i, 0); });
    }

    float stat[MT][2];
    act.finalize(st, o, stat);

    // Stage O through the Q tile and store it in 16-byte row pieces.
    uint16_t* out = static_cast<uint16_t*>(p.o) +
                    row_offset(p, b, p.o_batch_stride, p.o_row_stride, p.o_head_stride, sb.q_start, m0, h);
    if constexpr (tr::kTma) {
        // Each warpgroup on its own 64 rows, which only its own products read (all retired; and
        // with no key tile Q was never loaded), meeting at its own named barrier.
        store_acc<T>(sq_tile, wm0, 0, o, lane);
        ptx::bar_sync(1 + wg, 128);
        store_rows<128, q_tile, 64>(sq_tile.from_row(64 * wg), out + 64 * wg * p.o_row_stride, p.o_row_stride,
                                    rows - 64 * wg, p.head_dim, tid % 128);
    } else {
        // the Q copy may still be in flight if no key tile ran
        ptx::cp_async_wait_all();
        __syncthreads();
        store_acc<T>(sq_tile, wm0, 0, o, lane);
        __syncthreads();
        store_rows<kThreads>(sq_tile, out, p.o_row_stride, rows, p.head_dim, tid);
    }

    if (Act::kRowStat && (lane & 3) == 0) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int i = wm0 + acc_row(mt, 2 * hh, lane);
                if (i < rows) p.row_stat[stat_index(p, b, h, sb.q_start, m0 + i)] = stat[mt][hh];
            }
    }
}

template <class T, class Act, int kHD, class tr = fwd_traits<kHD, Act>, class P>
__device__ __forceinline__ void attn_fwd(const P& p) {
    if constexpr (tr::kWgmma && !ptx::kHasWgmma) {
        // the wgmma kernels' copies for other targets (the host plans them on sm_90 only)
        ptx::trap();
    } else {
        attn_fwd_body<T, Act, kHD, tr>(p);
    }
}

}  // namespace sinkless
