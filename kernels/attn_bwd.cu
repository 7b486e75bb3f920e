#pragma once
#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"
// Attention backward, one set of templates for every activation (softmax with sinks, sigmoid,
// normalized sigmoid), element type and head-dim bucket.
//
// Math (activation.cuh has the per-element rules): with s = scale * q.k + bias recomputed from
// Q and K, a = act(s) (softmax from the saved lse, normalized sigmoid from the saved row sum L),
// dP = dO.V^T, D = rowsum(dO * O):
//   dV = W^T dO with W the weights that multiplied V (a, or a / L),
//   dS from (a, dP, D, L) per policy,  dK = scale * dS^T Q,  dQ = scale * dS K,
//   softmax with sinks: dsink[h] = -sum_i exp(sink[h] - lse_i) D_i,
//   sigmoids: db[h] = sum over the head of dS.
// GQA: a CTA owns one key block of one kv head and loops over every query head that shares it,
// so dK/dV are summed in registers and written once (no atomics, no expanded buffers).
//
// Kernels and launch plan (T = f16/bf16 traits, Act = policy, all params by value; every
// *_traits struct has kBlockM, kBlockN, kThreads, kSmemBytes):
//   rowdot<T> (rowdot.cu)     D = rowsum(dO * O) into row_dot, softmax and normalized sigmoid
//                             only (x = o, y = dout, out = row_dot, same layouts).
//   attn_bwd<T, Act, kHD>     dK, dV; dQ into dq_accum with f32 atomics unless deterministic;
//                             dbias_partial (sigmoids). grid (n_key_blocks =
//                             ceil(seqlen_k / kBlockN), heads_kv, batch), bwd_traits<kHD>.
//                             attn_bwd<T, Act, kHD, true>: the same with the key warps'
//                             products by wgmma (sm_90a, hd 64/128), bwd_traits<kHD, true>.
//   attn_bwd_dq<T, Act, kHD>  deterministic mode only: dQ directly, one CTA per query block
//                             looping over its key blocks in a fixed order.
//                             grid (ceil(seqlen_q / kBlockM), heads_q, batch), bwd_dq_traits<kHD>.
//                             attn_bwd_dq<T, Act, kHD, true>: its products by wgmma (sm_90a,
//                             hd 64/128), bwd_dq_traits<kHD, true>.
//   attn_bwd_dq_convert<T>    atomic mode only: dq = scale * dq_accum rounded to T.
//                             grid (ceil(seqlen_q / 16), heads_q, batch), bwd_rows_traits.
//   attn_bwd_head_reduce<Act> dsink (softmax, only with a sink) or dbias (sigmoids), each head
//                             summed in a fixed order. grid (heads_q), bwd_head_reduce_traits.
// (seqlen_q/seqlen_k: the maxima under varlen.) Order: rowdot -> attn_bwd (dq_accum zeroed by
// the host before) -> dq_convert -> head_reduce; deterministic: rowdot -> attn_bwd -> attn_bwd_dq
// -> head_reduce. Every output element is written by some launch, including the zero gradients
// of keys that no query sees.
//
// Numeric policy: as the forward; P and dS are rounded to T before their products, f32
// accumulation everywhere, dQ partial sums in f32. The deterministic mode has no atomics at all,
// so its gradients are bitwise identical run to run; the atomic mode differs only in the
// summation order of dQ.
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

// ---- shared per-element step ----------------------------------------------------------------

// What an element's query contributes to its gradient: the prepared row statistic
// (activation.cuh: prep_stat) and D.
struct query_stats {
    float stat, dot;
};

// Recomputed scores s -> activations a, in place; masked entries become exactly 0 (whatever
// the activation of a masked score is), so every product below gives them nothing.
// stat_dot(nt, e) gives (prepared statistic, D) of the query at accumulator element (nt, e):
// its column when kTransposed (rows are keys), else its row.
template <bool kTransposed, class Act, int NT, class StatDot>
__device__ __forceinline__ void activations(const Act& act, float (&s)[1][NT][4], StatDot&& stat_dot, bool need_mask,
                                            const seq_mask& mask, int row0, int col0, int lane) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[0][nt][e] = act.act(s[0][nt][e], stat_dot(nt, e).stat);
    if (need_mask) mask_tile<kTransposed>(s, mask, row0, col0, 0.f, lane);
}

// The weights that multiplied V, as A operands of the next product.
template <class T, class Act, int NT, class StatDot>
__device__ __forceinline__ void dv_weights(uint32_t (&w)[1][NT / 2][4], const Act& act, const float (&a)[1][NT][4],
                                           StatDot&& stat_dot) {
    float x[1][NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) x[0][nt][e] = act.dv_weight(a[0][nt][e], stat_dot(nt, e).stat);
    acc_to_a<T>(w, x);
}

// dp (= dO.v) -> dS in place.
template <class Act, int NT, class StatDot>
__device__ __forceinline__ void score_grads(const Act& act, const float (&a)[1][NT][4], float (&dp)[1][NT][4],
                                            StatDot&& stat_dot) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const query_stats sd = stat_dot(nt, e);
            dp[0][nt][e] = act.grad(a[0][nt][e], dp[0][nt][e], sd.dot, sd.stat);
        }
}

// Adds one warp's 16 rows of dQ, kN n-tiles of 8 columns in the accumulator layout (rows r0 +
// acc_row, columns c0 + acc_col), to dq_accum of query head h, rows m0 + ... of the sequence,
// skipping rows at or past `rows` and columns at or past the head dim. A thread's values lie in
// two rows, as pairs of adjacent columns at fixed steps: each row's address is worked out once,
// and each pair is one red_add_f32x2 at an immediate offset from it (8-byte aligned: the column
// is even and dq_accum's rows are whole multiples of 8 floats). A tile whose rows and columns
// all exist, the usual case and known to the whole warp, adds every pair without a test; a
// tested add costs a branch and nvcc's BSSY/BSYNC pair around it, four instructions more.
template <int kN>
__device__ __forceinline__ void add_dq_rows(const sinkless_attn_bwd_params& p, int b, int q_start, int m0, int h,
                                            int r0, int c0, int rows, const float (&acc)[kN][4], int lane) {
    const int col = c0 + acc_col(0, 0, lane);
    auto row_dst = [&](int half) {
        return p.dq_accum + (packed_row(p, b, q_start, m0 + r0 + acc_row(0, 2 * half, lane)) * p.heads_q + h) *
                                p.head_dim +
               col;
    };
    if (r0 + 16 <= rows && c0 + 8 * kN <= p.head_dim) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float* const dst = row_dst(half);
#pragma unroll
            for (int nt = 0; nt < kN; ++nt) ptx::red_add_f32x2(dst + 8 * nt, acc[nt][2 * half], acc[nt][2 * half + 1]);
        }
        return;
    }
    const int cols_left = p.head_dim - col;  // even, as col is: a pair is in or out whole
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        if (r0 + acc_row(0, 2 * half, lane) >= rows) continue;
        float* const dst = row_dst(half);
#pragma unroll
        for (int nt = 0; nt < kN; ++nt)
            if (8 * nt < cols_left) ptx::red_add_f32x2(dst + 8 * nt, acc[nt][2 * half], acc[nt][2 * half + 1]);
    }
}

// i / d and i % d for 0 <= i < 2^31 and a divisor d >= 1 that a loop keeps (the step loop's
// query head and block). m = floor((2^32 - 1) / d) is one 32-bit division, made once; then q' =
// floor(i m / 2^32) is floor(i / d) or one less, because 1 <= 2^32 - m d <= d makes i / d - i m /
// 2^32 = i (2^32 - m d) / (d 2^32) lie in (0, 1/2), and one compare mends it. Five instructions
// a division, where nvcc's own redoes the divisor's reciprocal each time (about 25).
struct quot_rem {
    int q, r;
};
struct step_divider {
    uint32_t d, m;
    __device__ explicit step_divider(int divisor)
        : d(uint32_t(divisor)), m(divisor > 0 ? 0xffffffffu / uint32_t(divisor) : 0u) {}
    __device__ __forceinline__ quot_rem operator()(int i) const {
        uint32_t q = uint32_t((uint64_t(uint32_t(i)) * m) >> 32);
        uint32_t r = uint32_t(i) - q * d;
        if (r >= d) {
            ++q;
            r -= d;
        }
        return quot_rem{int(q), int(r)};
    }
};

// ---- row-wise helper geometry -----------------------------------------------------------------

constexpr int kRowKernelRows = 16;  // rows per CTA of dq_convert (4 per warp)

// Launch geometry of dq_convert, in the shape the host reads from every kernel.
struct bwd_rows_traits {
    static constexpr int kBlockM = kRowKernelRows;
    static constexpr int kBlockN = 0;
    static constexpr int kThreads = 128;
    static constexpr int kSmemBytes = 0;
};

// ---- main pass: one key block, every query that sees it --------------------------------------

// Tiles. Warp w owns keys 16 (w % 4) .. +15 of the block and, of dK/dV, the columns
// [kDv (w / 4), kDv (w / 4 + 1)). It computes S^T and dP^T for its keys directly in the
// accumulator layout, so P^T and dS^T are already the A operands of dV += P^T dO and
// dK += dS^T Q: no shared-memory round trip for them, no cross-warp reduction of dK/dV.
// dK + dV take kDv registers per thread, and a thread's registers do not depend on how many
// key warps the CTA has, so:
//   hd 32, 64:     8 warps, 128 keys x 64 queries per step.
//   hd 96, 128:    8 warps, 128 keys x 32 queries: 64 queries spilled (S^T, dP^T and their
//                  operand copies on top of 192/256 accumulator registers).
//   hd 192, 256:   8 warps, the dK/dV columns split in two halves (kDv = 96/128); both halves
//                  recompute the same S and dP (2 of the 5 products done twice) rather than trade
//                  them through shared memory; 64 keys x 32 queries.
// Eight key warps rather than four (FlashAttention-2 also takes 128 keys per block): each Q/dO
// tile that a step loads from memory and each dQ atomic serve 128 keys instead of 64, which
// halves both per FLOP at the same registers per thread and the same 8 warps per SM (one CTA
// of 8 warps instead of two of 4).
// Shared memory (K, V, two stages of Q and dO, dS^T, statistics): 49/81/81/105/101/133 KiB at
// hd 32/64/96/128/192/256, within an A100's 163 KiB.
// dQ = dS K is cut into (16 rows x kDqCols) units spread over the warps, one unit per warp where
// the shape allows; 64-column units spilled once dK/dV held 128 registers.
//
// kWgmma_ (sm_90a only, hd 64 and 128): the four products of the key warps (S^T, dV, dP^T, dK)
// by wgmma.mma_async (wgmma.cuh) instead of mma.sync, each warpgroup over its 64 keys: the 8
// key warps are two warpgroups, and the accumulator layout per warp is mma.sync's, so the
// activations, masks, dS^T tile and epilogue are unchanged. The fifth product, dQ's, is a
// wgmma too, reading dS^T from shared memory M-major (see kDqSplitKeys). K, V, Q and dO come
// out of shared memory once per warpgroup and product rather than once per warp. The tiles sit
// on 1024-byte boundaries (1 KiB of slack), as the 128-byte swizzle needs. 64 queries per step
// at both head dims: at hd 128 that is dK + dV 128, S^T and dP^T 32 each, P^T and dS^T 16 each
// registers per thread, which mma.sync could not hold next to its B fragments.
template <int kHD_, bool kWgmma_ = false>
struct bwd_traits {
    static constexpr int kHD = kHD_;
    static constexpr bool kWgmma = kWgmma_;
    static_assert(!kWgmma || kHD == 64 || kHD == 128, "wgmma backward: hd 64 and 128");
    static constexpr int kDSplit = kHD > 128 ? 2 : 1;
    static constexpr int kDv = kHD / kDSplit;
    static constexpr int kWarpsN = kDSplit == 1 ? 8 : 4;  // key warps, 16 keys each
    static constexpr int kWarps = kWarpsN * kDSplit;
    static constexpr int kThreads = 32 * kWarps;
    static constexpr int kBlockN = 16 * kWarpsN;
    static constexpr int kBlockM = kDv > 64 && !kWgmma ? 32 : 64;
    // dQ's wgmma product (atomic mode). At hd 128 each warpgroup takes one 64-column half of dQ
    // (a whole column block) over all 128 keys. At hd 64 a half would start inside a swizzled
    // line, so each warpgroup takes all 64 columns over its own 64 keys instead, and the two
    // partial sums meet in shared memory: each warpgroup adds the other's share of one
    // 32-column half and issues its atomics (as many atomics as the column split). The hand-over
    // goes into dS^T's tile, each warpgroup's into the rows (its keys) that only its own,
    // retired, product read, so one block barrier (after the writes) is all it needs.
    static constexpr bool kDqSplitKeys = kWgmma && kHD == 64;
    // dQ = dS K is split over the warps in (16 rows x kDqCols) units: 8 units at hd 32, 64, 128
    static constexpr int kDqCols = kHD == 32 ? 16 : 32;
    // S = K Q^T and dP = V dO^T run over every column of the head-dim bucket (all four tiles
    // are zero past the head dim), dK = dS^T Q and dV = P^T dO over every query row of the
    // block (Q and dO are zero past the last row) and dQ = dS K over every key (K is zero past
    // the last key), where a test of each 16-wide step against the real extent cut the step
    // into blocks that ptxas scheduled one by one, working the ldmatrix addresses out again in
    // each: the step's path is about 45% shorter without them (SASS, sm_90a, bf16, hd 128:
    // softmax 1377 -> 701 instructions, sigmoid 1718 -> 950). Where dropping a test spills, the
    // policy keeps it: dV's for the sigmoids from hd 128, dQ's for the normalized sigmoid at
    // hd 128.
    template <class Act>
    static constexpr bool kWholeDvRows = !(kHD >= 128 && Act::kDvRowTestFromHd128);
    template <class Act>
    static constexpr bool kWholeDqKeys = !(kHD == 128 && Act::kDqKeyTestAtHd128);
    // Every query block but a sequence's last is whole, and its Q and dO copies skip the row
    // test (copy_whole_rows_async), a branch on the block: the step's path 23 to 30
    // instructions shorter (sm_90a, bf16), except where ptxas then spills, the normalized
    // sigmoid at hd 128 (4 bytes), which tests every block.
    template <class Act>
    static constexpr bool kWholeQCopies = !(kHD == 128 && Act::kQRowTestAtHd128);
    // dbias partials per key block, one per lane of a key warp (the host's dbias_block_slots)
    static constexpr int kBiasSlots = 32 * kWarpsN;
    static_assert(kBiasSlots == 2 * kBlockN, "attn_params.h: dbias_block_slots = 2 * kBlockN");
    using kv_tile = smem_tile<kBlockN, kHD>;
    using q_tile = smem_tile<kBlockM, kHD>;
    using ds_tile = smem_tile<kBlockN, kBlockM>;  // dS^T, [key][query]
    static constexpr int kStatFloats = 2 * 2 * kBlockM;  // [stage][stat, D][row]
    static constexpr int kAlignSlack = kWgmma ? 1024 : 0;
    // K, V, Q[2], dO[2], dS^T, row statistics
    static constexpr int kSmemBytes =
        kAlignSlack + 2 * kv_tile::kBytes + 4 * q_tile::kBytes + ds_tile::kBytes + 4 * kStatFloats;
};

// dbias partials: one per (query head, sequence, key block, lane of a key warp), each written
// once by the main pass: [heads_q][batch][n_key_blocks][p.dbias_block_slots]. The warps owning
// the second half of dK/dV columns (hd > 128) recompute the same dS and do not contribute.
template <class P>
__device__ __forceinline__ int64_t dbias_slot(const P& p, int h, int b, int n_block) {
    return ((static_cast<int64_t>(h) * p.batch + b) * p.n_key_blocks + n_block) * p.dbias_block_slots;
}

template <class T, class Act, int kHD, class tr>
__device__ __forceinline__ void attn_bwd_body(const sinkless_attn_bwd_params& p) {
    static_assert(tr::kHD == kHD, "traits of another head dim");
    constexpr int kThreads = tr::kThreads;
    constexpr int NQ = tr::kBlockM / 8;  // query n-tiles of S^T
    constexpr int NDV = tr::kDv / 8;     // dK/dV n-tiles per warp
    using kv_tile = typename tr::kv_tile;
    using q_tile = typename tr::q_tile;
    using ds_tile = typename tr::ds_tile;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wn0 = 16 * (warp % tr::kWarpsN);     // warp's first key inside the block
    const int dv0 = tr::kDv * (warp / tr::kWarpsN);  // warp's first dK/dV column
    const int n_block = key_block_index(p.block_order, p.window_left, p.window_right, blockIdx.x, gridDim.x);
    const int hk = blockIdx.y, b = blockIdx.z;
    const seq_bounds sb = get_seq_bounds(p, b);
    const int group = p.heads_q / p.heads_kv;
    const int n0 = n_block * tr::kBlockN;
    const int keys = sb.sk - n0 < tr::kBlockN ? sb.sk - n0 : tr::kBlockN;  // <= 0: no key here

    const seq_mask mask{sb.sq, sb.sk, p.window_left, p.window_right};
    int i_begin = 0, i_end = 0;
    if (keys > 0) mask.query_range(n0, n0 + keys, &i_begin, &i_end);
    const int m_begin = i_begin / tr::kBlockM;
    const int nm = i_begin < i_end ? (i_end + tr::kBlockM - 1) / tr::kBlockM - m_begin : 0;

    uint16_t* smem = dynamic_smem<uint16_t>();
    if constexpr (tr::kWgmma) smem += ((1024u - (ptx::smem_addr(smem) & 1023u)) & 1023u) / 2;
    const kv_tile k_tile{smem};
    const kv_tile v_tile{smem + kv_tile::kElems};
    uint16_t* const q_base = smem + 2 * kv_tile::kElems;  // Q stage s at q_base + s * kElems
    uint16_t* const do_base = q_base + 2 * q_tile::kElems;
    const ds_tile dst_tile{do_base + 2 * q_tile::kElems};
    float* const stats = reinterpret_cast<float*>(dst_tile.base + ds_tile::kElems);

    const int64_t k_off = row_offset(p, b, p.k_batch_stride, p.k_row_stride, p.k_head_stride, sb.k_start, n0, hk);
    const int64_t v_off = row_offset(p, b, p.v_batch_stride, p.v_row_stride, p.v_head_stride, sb.k_start, n0, hk);
    if (keys > 0) {
        load_rows_async<kThreads>(k_tile, static_cast<const uint16_t*>(p.k) + k_off, p.k_row_stride, keys,
                                  p.head_dim, tid);
        load_rows_async<kThreads>(v_tile, static_cast<const uint16_t*>(p.v) + v_off, p.v_row_stride, keys,
                                  p.head_dim, tid);
    }

    float dk[1][NDV][4], dv[1][NDV][4];
    fill(dk, 0.f);
    fill(dv, 0.f);
    float db = 0.f;  // this thread's share of sum dS for the current query head
    // head-independent parts computed once; set_head re-targets a copy per step
    const Act act_seq(p, hk * group, sb.sk);
    float* const db_slot =
        Act::kBiasGrad ? p.dbias_partial + dbias_slot(p, hk * group, b, n_block) + warp * 32 + lane : nullptr;
    const int64_t db_head_stride = static_cast<int64_t>(p.batch) * p.n_key_blocks * p.dbias_block_slots;

    // Step i: query head hk * group + i / nm, query block m_begin + i % nm.
    const step_divider by_nm(nm);
    auto load = [&](int i, int stage) {
        const quot_rem step = by_nm(i);
        const int h = hk * group + step.q;
        const int m0 = (m_begin + step.r) * tr::kBlockM;
        const int rows = sb.sq - m0;
        const q_tile q_t{q_base + stage * q_tile::kElems};
        const q_tile do_t{do_base + stage * q_tile::kElems};
        const uint16_t* q = static_cast<const uint16_t*>(p.q) +
                            row_offset(p, b, p.q_batch_stride, p.q_row_stride, p.q_head_stride, sb.q_start, m0, h);
        const uint16_t* dout =
            static_cast<const uint16_t*>(p.dout) +
            row_offset(p, b, p.do_batch_stride, p.do_row_stride, p.do_head_stride, sb.q_start, m0, h);
        if (tr::template kWholeQCopies<Act> && rows >= tr::kBlockM) {
            load_rows_async<kThreads, true>(q_t, q, p.q_row_stride, rows, p.head_dim, tid);
            load_rows_async<kThreads, true>(do_t, dout, p.do_row_stride, rows, p.head_dim, tid);
        } else {
            load_rows_async<kThreads>(q_t, q, p.q_row_stride, rows, p.head_dim, tid);
            load_rows_async<kThreads>(do_t, dout, p.do_row_stride, rows, p.head_dim, tid);
        }
        if (Act::kRowStat || Act::kRowDot) {
            // A thread per row, the index the block's first row's plus the row: with a loop over
            // rows and the whole index per row this took 110 to 150 instructions more a step.
            static_assert(kThreads >= tr::kBlockM, "a thread per row");
            if (tid < tr::kBlockM) {
                const int r = tid;
                const bool valid = r < rows;
                const int64_t si = stat_index(p, b, h, sb.q_start, m0) + r;
                // a padding row gets the statistic of an empty row: every weight 0
                const float raw = valid && Act::kRowStat ? p.row_stat[si] : (Act::kRowStat ? -INFINITY : 0.f);
                ptx::st_shared(&stats[(stage * 2 + 0) * tr::kBlockM + r], act_seq.prep_stat(raw));
                ptx::st_shared(&stats[(stage * 2 + 1) * tr::kBlockM + r], valid && Act::kRowDot ? p.row_dot[si] : 0.f);
            }
        }
    };

    auto body = [&](int i, int stage) {
        const quot_rem step = by_nm(i);
        const int h = hk * group + step.q;
        const int m0 = (m_begin + step.r) * tr::kBlockM;
        const int rows = sb.sq - m0;
        Act act = act_seq;
        act.set_head(p, h);
        const q_tile q_t{q_base + stage * q_tile::kElems};
        const q_tile do_t{do_base + stage * q_tile::kElems};
        const float* st = stats + stage * 2 * tr::kBlockM;
        // the warpgroup (wgmma), keys 64 wg ..; broadcast here in the step, as once per CTA ptxas
        // kept more registers live through the loop (the sigmoid at hd 128 spilled 4 bytes)
        const int wg = tr::kWgmma ? warp_uniform(warp / 4) : 0;

        auto stat_dot = [&](int nt, int e) {
            const int c = acc_col(nt, e, lane);
            return query_stats{ptx::ld_shared(&st[c]), ptx::ld_shared(&st[tr::kBlockM + c])};
        };
        const bool need_mask = !mask.tile_full(m0, m0 + tr::kBlockM, n0, n0 + tr::kBlockN);
        float s[1][NQ][4];
        fill(s, act.score_init());
        float dp[1][NQ][4];
        uint32_t dsa_wg[1][NQ / 2][4];  // dS^T as dK's register A (wgmma: in flight to the step's end)
        if constexpr (tr::kWgmma) {
            // S^T; then dV's product and dP^T's together; dK's runs on under the dQ product
            // below (in atomic mode it is issued after dQ's, to run under dQ's atomics) and is
            // waited for at the end of the step.
            wg_gemm_nt<T, NQ, kHD>(s[0], k_tile, 64 * wg, q_t);
            activations<true>(act, s, stat_dot, need_mask, mask, n0 + wn0, m0, lane);
            uint32_t wa[1][NQ / 2][4];
            dv_weights<T>(wa, act, s, stat_dot);
            wg_issue_rn<T>(dv[0], wa[0], do_t);
            fill(dp, 0.f);
            wg_issue_nt<T, NQ, kHD>(dp[0], v_tile, 64 * wg, do_t);
            ptx::wgmma_wait<0>();
            ptx::fence_operand(flat(dv[0]));
            ptx::fence_operand(flat(dp[0]));
            ptx::fence_operand(reinterpret_cast<uint32_t(&)[NQ * 2]>(wa[0]));
            score_grads(act, s, dp, stat_dot);
            acc_to_a<T>(dsa_wg, dp);
            if (p.deterministic) wg_issue_rn<T>(dk[0], dsa_wg[0], q_t);
        } else {
            // dV's product runs before dP is formed, so the two score-sized tiles and their
            // operand copies are never live at once (the sigmoids spilled at hd128 otherwise).
            gemm_nt<T, 1, NQ, kHD>(s, k_tile, wn0, q_t, 0, kHD, lane);
            activations<true>(act, s, stat_dot, need_mask, mask, n0 + wn0, m0, lane);
            {
                uint32_t wa[1][NQ / 2][4];
                dv_weights<T>(wa, act, s, stat_dot);
                gemm_rn<T>(dv, wa, do_t, dv0, tr::template kWholeDvRows<Act> ? tr::kBlockM : rows, lane);
            }
            fill(dp, 0.f);
            gemm_nt<T, 1, NQ, kHD>(dp, v_tile, wn0, do_t, 0, kHD, lane);
            score_grads(act, s, dp, stat_dot);
            uint32_t dsa[1][NQ / 2][4];
            acc_to_a<T>(dsa, dp);
            gemm_rn<T>(dk, dsa, q_t, dv0, tr::kBlockM, lane);
        }

        if (Act::kBiasGrad && dv0 == 0) {
#pragma unroll
            for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) db += dp[0][nt][e];
        }

        if constexpr (tr::kWgmma) {
            // dQ = dS K by wgmma, dS^T read M-major and K N-major; warp w of warpgroup wg holds
            // queries 16 (w % 4) .. in the accumulator layout of mma.sync. hd 128: warpgroup wg
            // takes dQ's columns 64 wg .. for all 128 keys; hd 64: every column for keys 64 wg ..
            // (traits). dK's product is issued right after, so that it runs under the atomics.
            if (!p.deterministic) {
                store_acc<T>(dst_tile, wn0, 0, dp, lane);
                ptx::fence_proxy_async();
                __syncthreads();
                float acc[1][tr::kDqSplitKeys ? kHD / 8 : kHD / 16][4];
                fill(acc, 0.f);
                if constexpr (tr::kDqSplitKeys) {
                    wg_issue_tn<T, kHD / 8, tr::kBlockN / 2>(acc[0], dst_tile, k_tile, 0, 64 * wg);
                } else {
                    wg_issue_tn<T, kHD / 16, tr::kBlockN>(acc[0], dst_tile, k_tile, wg);
                }
                wg_issue_rn<T>(dk[0], dsa_wg[0], q_t);
                ptx::wgmma_wait<1>();
                ptx::fence_operand(flat(acc[0]));
                constexpr int kOwn = kHD / 16;  // n-tiles of dQ this thread adds
                float own[kOwn][4];
                int c0 = 64 * wg;  // first column of own[0]
                if constexpr (tr::kDqSplitKeys) {
                    // Warpgroup wg finishes columns 32 wg ..: it hands the other its n-tiles of
                    // the other half, [16 values][128 threads] per direction (no bank conflict),
                    // direction wg in the half of dS^T's tile that holds keys 64 wg .. (traits).
                    static_assert(ds_tile::kBytes == 2 * 16 * 128 * 4, "dS^T's tile holds both halves");
                    float* const red = reinterpret_cast<float*>(dst_tile.base);
                    const int t = tid % 128;
#pragma unroll
                    for (int j = 0; j < kOwn; ++j)
#pragma unroll
                        for (int e = 0; e < 4; ++e)
                            ptx::st_shared(&red[(16 * wg + 4 * j + e) * 128 + t],
                                           wg == 0 ? acc[0][kOwn + j][e] : acc[0][j][e]);
                    __syncthreads();
#pragma unroll
                    for (int j = 0; j < kOwn; ++j)
#pragma unroll
                        for (int e = 0; e < 4; ++e)
                            own[j][e] = (wg == 0 ? acc[0][j][e] : acc[0][kOwn + j][e]) +
                                        ptx::ld_shared(&red[(16 * (1 - wg) + 4 * j + e) * 128 + t]);
                    c0 = 32 * wg;
                } else {
#pragma unroll
                    for (int j = 0; j < kOwn; ++j)
#pragma unroll
                        for (int e = 0; e < 4; ++e) own[j][e] = acc[0][j][e];
                }
                add_dq_rows(p, b, sb.q_start, m0, h, 16 * (warp % 4), c0, rows, own, lane);
            }
        } else if (!p.deterministic) {
            if (dv0 == 0) store_acc<T>(dst_tile, wn0, 0, dp, lane);
            __syncthreads();
            constexpr int kMTiles = tr::kBlockM / 16;
            constexpr int kUnits = kMTiles * (kHD / tr::kDqCols);
            for (int u = warp; u < kUnits; u += tr::kWarps) {
                const int mt = u % kMTiles, c0 = (u / kMTiles) * tr::kDqCols;
                float acc[tr::kDqCols / 8][4];
#pragma unroll
                for (int nt = 0; nt < tr::kDqCols / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
                gemm_tn<T, tr::kDqCols / 8, tr::kBlockN>(acc, dst_tile, 16 * mt, k_tile, c0,
                                                         tr::template kWholeDqKeys<Act> ? tr::kBlockN : keys, lane);
                add_dq_rows(p, b, sb.q_start, m0, h, 16 * mt, c0, rows, acc, lane);
            }
        }

        if constexpr (tr::kWgmma) {
            ptx::wgmma_wait<0>();
            ptx::fence_operand(flat(dk[0]));
            ptx::fence_operand(reinterpret_cast<uint32_t(&)[NQ * 2]>(dsa_wg[0]));
        }

        if (Act::kBiasGrad && dv0 == 0 && step.r == nm - 1) {  // last block of this query head
            // one partial per lane: a shuffle reduction here made ptxas spill dK/dV
            db_slot[step.q * db_head_stride] = db;
            db = 0.f;
        }
    };
    double_buffered<tr::kWgmma>(group * nm, load, body);

    if (Act::kBiasGrad && nm == 0) {  // no query sees this block: its share of every head is 0
        for (int t = tid; t < group * tr::kBiasSlots; t += kThreads)
            p.dbias_partial[dbias_slot(p, hk * group + t / tr::kBiasSlots, b, n_block) + t % tr::kBiasSlots] = 0.f;
    }
    if (keys <= 0) return;

    // dK, dV staged through the K and V tiles (no longer read), then 16-byte stores.
    ptx::cp_async_wait_all();
    __syncthreads();
#pragma unroll
    for (int nt = 0; nt < NDV; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dk[0][nt][e] *= p.scale;
    store_acc<T>(k_tile, wn0, dv0, dk, lane);
    store_acc<T>(v_tile, wn0, dv0, dv, lane);
    __syncthreads();
    store_rows<kThreads>(k_tile,
                         static_cast<uint16_t*>(p.dk) +
                             row_offset(p, b, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride, sb.k_start, n0, hk),
                         p.dk_row_stride, keys, p.head_dim, tid);
    store_rows<kThreads>(v_tile,
                         static_cast<uint16_t*>(p.dv) +
                             row_offset(p, b, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride, sb.k_start, n0, hk),
                         p.dv_row_stride, keys, p.head_dim, tid);
}

template <class T, class Act, int kHD, bool kWgmma = false>
__device__ __forceinline__ void attn_bwd(const sinkless_attn_bwd_params& p) {
    if constexpr (kWgmma && !ptx::kHasWgmma) {
        // the wgmma kernels' copies for other targets (the host plans them on sm_90 only)
        ptx::trap();
    } else {
        attn_bwd_body<T, Act, kHD, bwd_traits<kHD, kWgmma>>(p);
    }
}

// ---- deterministic dQ pass: one query block, every key that it sees --------------------------

// 4 warps of 16 query rows; dQ (kHD / 2 registers) plus S and dP (kBlockN / 2 each) per thread:
// 64 keys per step up to hd 128, 32 above.
// kWgmma_ (sm_90a only, hd 64 and 128): the three products (S = Q K^T, dP = dO V^T, dQ += dS K)
// by wgmma, two warpgroups of 64 query rows each (128 per CTA, twice the mma.sync block, so that
// each K/V tile loaded serves twice the queries), 64 keys per step: dQ 64/32, S and dP 32 each,
// dS 16 registers per thread at hd 128/64. Q, dO and both stages of K and V are read by the
// tensor core straight from shared memory (A and B of the first two products K-major, K as dQ's
// B N-major), on 1024-byte boundaries for the 128-byte swizzle (1 KiB of slack).
template <int kHD_, bool kWgmma_ = false>
struct bwd_dq_traits {
    static constexpr int kHD = kHD_;
    static constexpr bool kWgmma = kWgmma_;
    static_assert(!kWgmma || kHD == 64 || kHD == 128, "wgmma dQ pass: hd 64 and 128");
    static constexpr int kWarps = kWgmma ? 8 : 4;
    static constexpr int kThreads = 32 * kWarps;
    static constexpr int kBlockM = 16 * kWarps;
    static constexpr int kBlockN = kHD <= 128 ? 64 : 32;
    // As bwd_traits: S and dP over the whole head-dim bucket and dQ = dS K over every key of the
    // tile, padding included (K is zero past the last key), without a test per 16-wide step
    // (SASS per step, sm_90a, bf16, hd 128: softmax 907 -> 629 instructions, sigmoid 1528 -> 932).
    using q_tile = smem_tile<kBlockM, kHD>;
    using kv_tile = smem_tile<kBlockN, kHD>;
    static constexpr int kAlignSlack = kWgmma ? 1024 : 0;
    // Q, dO, K[2], V[2]
    static constexpr int kSmemBytes = kAlignSlack + 2 * q_tile::kBytes + 4 * kv_tile::kBytes;
};

template <class T, class Act, int kHD, class tr>
__device__ __forceinline__ void attn_bwd_dq_body(const sinkless_attn_bwd_params& p) {
    static_assert(tr::kHD == kHD, "traits of another head dim");
    constexpr int kThreads = tr::kThreads;
    constexpr int NT = tr::kBlockN / 8;
    constexpr int NO = kHD / 8;
    using q_tile = typename tr::q_tile;
    using kv_tile = typename tr::kv_tile;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int m_block = query_block_index(p.block_order, p.window_left, p.window_right, blockIdx.x, gridDim.x);
    const int h = blockIdx.y, b = blockIdx.z;
    const seq_bounds sb = get_seq_bounds(p, b);
    const int m0 = m_block * tr::kBlockM;
    if (m0 >= sb.sq) return;
    const int hk = h / (p.heads_q / p.heads_kv);
    const int rows = sb.sq - m0 < tr::kBlockM ? sb.sq - m0 : tr::kBlockM;
    // warp's first row; under wgmma warp w is warp w % 4 of warpgroup w / 4, whose 64 rows start
    // at 64 (w / 4), so the row is the same
    const int wm0 = 16 * warp;
    const int wg_m0 = tr::kWgmma ? 64 * warp_uniform(warp / 4) : 0;  // the warpgroup's first row (wgmma)

    uint16_t* smem = dynamic_smem<uint16_t>();
    if constexpr (tr::kWgmma) smem += ((1024u - (ptx::smem_addr(smem) & 1023u)) & 1023u) / 2;
    const q_tile q_t{smem};
    const q_tile do_t{smem + q_tile::kElems};
    uint16_t* const k_base = smem + 2 * q_tile::kElems;
    uint16_t* const v_base = k_base + 2 * kv_tile::kElems;

    const seq_mask mask{sb.sq, sb.sk, p.window_left, p.window_right};
    int j_begin, j_end;
    mask.key_range(m0, m0 + rows, &j_begin, &j_end);
    const int n_begin = j_begin / tr::kBlockN;
    const int n_end = j_begin < j_end ? (j_end + tr::kBlockN - 1) / tr::kBlockN : n_begin;

    const Act act(p, h, sb.sk);
    query_stats sd[2];  // (prepared statistic, D) of this thread's two rows
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
        const int r = wm0 + acc_row(0, 2 * hh, lane);
        const bool valid = r < rows;
        const int64_t si = stat_index(p, b, h, sb.q_start, m0 + r);
        const float raw = valid && Act::kRowStat ? p.row_stat[si] : (Act::kRowStat ? -INFINITY : 0.f);
        sd[hh] = query_stats{act.prep_stat(raw), valid && Act::kRowDot ? p.row_dot[si] : 0.f};
    }

    const uint16_t* k = static_cast<const uint16_t*>(p.k) +
                        row_offset(p, b, p.k_batch_stride, p.k_row_stride, p.k_head_stride, sb.k_start, 0, hk);
    const uint16_t* v = static_cast<const uint16_t*>(p.v) +
                        row_offset(p, b, p.v_batch_stride, p.v_row_stride, p.v_head_stride, sb.k_start, 0, hk);
    load_rows_async<kThreads>(q_t, static_cast<const uint16_t*>(p.q) +
                                       row_offset(p, b, p.q_batch_stride, p.q_row_stride, p.q_head_stride, sb.q_start, m0, h),
                              p.q_row_stride, rows, p.head_dim, tid);
    load_rows_async<kThreads>(do_t, static_cast<const uint16_t*>(p.dout) +
                                        row_offset(p, b, p.do_batch_stride, p.do_row_stride, p.do_head_stride, sb.q_start, m0, h),
                              p.do_row_stride, rows, p.head_dim, tid);

    float dq[1][NO][4];
    fill(dq, 0.f);
    double_buffered<tr::kWgmma>(
        n_end - n_begin,
        [&](int i, int stage) {
            // from the sequence's first row, as the forward's K and V (fwd_traits::kKvFromSeqStart),
            // and as there the last tile first: only it may reach past the sequence, so the copies
            // of the steps after it, all issued in the loop, skip the row test
            const int n0 = (n_end - 1 - i) * tr::kBlockN;
            const kv_tile k_t{k_base + stage * kv_tile::kElems};
            const kv_tile v_t{v_base + stage * kv_tile::kElems};
            if (i > 0) {
                load_rows_async_at<kThreads, true>(k_t, k, p.k_row_stride, n0, sb.sk, p.head_dim, tid);
                load_rows_async_at<kThreads, true>(v_t, v, p.v_row_stride, n0, sb.sk, p.head_dim, tid);
            } else {
                load_rows_async_at<kThreads>(k_t, k, p.k_row_stride, n0, sb.sk, p.head_dim, tid);
                load_rows_async_at<kThreads>(v_t, v, p.v_row_stride, n0, sb.sk, p.head_dim, tid);
            }
        },
        [&](int i, int stage) {
            const int n0 = (n_end - 1 - i) * tr::kBlockN;
            const kv_tile k_t{k_base + stage * kv_tile::kElems};
            const kv_tile v_t{v_base + stage * kv_tile::kElems};
            float s[1][NT][4], dp[1][NT][4];
            fill(s, act.score_init());
            fill(dp, 0.f);
            if constexpr (tr::kWgmma) {
                // the two score-sized products in flight together; dP's zeros are fixed in
                // its own registers before S's product is issued (else ptxas may take them
                // from a register of S's accumulator in flight, and wait for it)
                ptx::fence_operand(flat(dp[0]));
                wg_issue_nt<T, NT, kHD>(s[0], q_t, wg_m0, k_t);
                wg_issue_nt<T, NT, kHD>(dp[0], do_t, wg_m0, v_t);
                ptx::wgmma_wait<0>();
                ptx::fence_operand(flat(s[0]));
                ptx::fence_operand(flat(dp[0]));
            } else {
                gemm_nt<T, 1, NT, kHD>(s, q_t, wm0, k_t, 0, kHD, lane);
                gemm_nt<T, 1, NT, kHD>(dp, do_t, wm0, v_t, 0, kHD, lane);
            }
            auto stat_dot = [&](int, int e) { return sd[e >> 1]; };
            activations<false>(act, s, stat_dot, !mask.tile_full(m0, m0 + tr::kBlockM, n0, n0 + tr::kBlockN), mask,
                               m0 + wm0, n0, lane);
            score_grads(act, s, dp, stat_dot);
            uint32_t dsa[1][NT / 2][4];
            acc_to_a<T>(dsa, dp);
            if constexpr (tr::kWgmma) {
                wg_gemm_rn<T>(dq[0], dsa[0], k_t);
            } else {
                gemm_rn<T>(dq, dsa, k_t, 0, tr::kBlockN, lane);
            }
        });

#pragma unroll
    for (int nt = 0; nt < NO; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dq[0][nt][e] *= p.scale;
    ptx::cp_async_wait_all();
    __syncthreads();
    store_acc<T>(q_t, wm0, 0, dq, lane);
    __syncthreads();
    store_rows<kThreads>(q_t, static_cast<uint16_t*>(p.dq) +
                                  row_offset(p, b, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride, sb.q_start, m0, h),
                         p.dq_row_stride, rows, p.head_dim, tid);
}

template <class T, class Act, int kHD, bool kWgmma = false>
__device__ __forceinline__ void attn_bwd_dq(const sinkless_attn_bwd_params& p) {
    if constexpr (kWgmma && !ptx::kHasWgmma) {
        // the wgmma kernels' copies for other targets (the host plans them on sm_90 only)
        ptx::trap();
    } else {
        attn_bwd_dq_body<T, Act, kHD, bwd_dq_traits<kHD, kWgmma>>(p);
    }
}

// ---- small finishing kernels ------------------------------------------------------------------

// dq = scale * dq_accum, rounded to T. One warp per row, 8 columns per lane.
template <class T>
__device__ __forceinline__ void attn_bwd_dq_convert(const sinkless_attn_bwd_params& p) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int h = blockIdx.y, b = blockIdx.z;
    const seq_bounds sb = get_seq_bounds(p, b);
    for (int r = warp; r < kRowKernelRows; r += bwd_rows_traits::kThreads / 32) {
        const int i = blockIdx.x * kRowKernelRows + r;
        if (i >= sb.sq) break;
        const int c = lane * 8;
        if (c >= p.head_dim) continue;
        const float* src = p.dq_accum + (packed_row(p, b, sb.q_start, i) * p.heads_q + h) * p.head_dim + c;
        chunk16 out;
#pragma unroll
        for (int w = 0; w < 4; ++w) out.w[w] = T::pack2(src[2 * w] * p.scale, src[2 * w + 1] * p.scale);
        *reinterpret_cast<chunk16*>(static_cast<uint16_t*>(p.dq) +
                                    row_offset(p, b, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride, sb.q_start, i, h) +
                                    c) = out;
    }
}

// Per-head sums in a fixed order (bitwise reproducible): softmax with a sink gives
// dsink[h] = -sum_i exp(sink[h] - lse_i) D_i, the sigmoids dbias[h] = sum of the main pass's
// partials. Each thread sums a strided slice in order, then a fixed tree over the block.
constexpr int kHeadReduceThreads = 256;

struct bwd_head_reduce_traits {
    static constexpr int kBlockM = 0;
    static constexpr int kBlockN = 0;
    static constexpr int kThreads = kHeadReduceThreads;
    static constexpr int kSmemBytes = 4 * (kHeadReduceThreads / 32);  // one float per warp
};

template <class Act>
__device__ __forceinline__ void attn_bwd_head_reduce(const sinkless_attn_bwd_params& p) {
    const int h = blockIdx.x, tid = threadIdx.x;
    float acc = 0.f;
    if (Act::kBiasGrad) {
        const int64_t n = static_cast<int64_t>(p.batch) * p.n_key_blocks * p.dbias_block_slots;
        const float* part = p.dbias_partial + static_cast<int64_t>(h) * n;
        for (int64_t t = tid; t < n; t += kHeadReduceThreads) acc += part[t];
    } else {
        if (p.sink == nullptr) return;
        const float sink = p.sink[h];
        // dense rows (b, i) sit at (b * heads_q + h) * seqlen_q + i, varlen at h * total_q + t
        const bool varlen = p.cu_seqlens_q != nullptr;
        const int64_t n = varlen ? p.total_q : static_cast<int64_t>(p.batch) * p.seqlen_q;
        for (int64_t t = tid; t < n; t += kHeadReduceThreads) {
            const int64_t idx = varlen ? static_cast<int64_t>(h) * p.total_q + t
                                       : ((t / p.seqlen_q) * p.heads_q + h) * p.seqlen_q + t % p.seqlen_q;
            acc += expf(sink - p.row_stat[idx]) * p.row_dot[idx];
        }
    }
    float* red = dynamic_smem<float>();
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (tid % 32 == 0) ptx::st_shared(&red[tid / 32], acc);
    __syncthreads();
    if (tid == 0) {
        float t = 0.f;
        for (int w = 0; w < kHeadReduceThreads / 32; ++w) t += ptx::ld_shared(&red[w]);
        if (Act::kBiasGrad) {
            p.dbias[h] = t;
        } else {
            p.dsink[h] = -t;
        }
    }
}

}  // namespace sinkless
