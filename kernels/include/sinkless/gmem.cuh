// Global <-> shared copies of row tiles, 16 bytes per thread per step.
//
// A tile row is one token of one head: head_dim contiguous 16-bit elements. Rows past the
// sequence and chunks past head_dim are zero-filled by cp.async (nothing read), so the padded
// part of a head-dim bucket and the tail of the last tile multiply as zeros and no load ever
// leaves the tensor. Requires 16-byte aligned base pointers and row strides that are multiples
// of 8 elements (the host checks both).
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"
#include "sinkless/tile.cuh"

namespace sinkless {

struct __align__(16) chunk16 {
    uint32_t w[4];
};

// Thread tid copies chunk c of rows r0 + i * kRowsPerPass of the first kRows rows of the tile
// (all of them by default; fewer for a window of rows, below), so that the 8 threads of a
// quarter-warp, whose 16-byte shared accesses share one wavefront, hit 8 distinct bank slots:
//   - 128-byte swizzle blocks (kW = 8): c = tid % kChunks, r0 = tid / kChunks; 8 consecutive
//     threads take 8 chunks of one block of one row;
//   - rows of three or four such blocks (hd 192, 256; kSpan > 1): c = tid % 8, r0 = tid / 8, and
//     the thread copies chunk c of every block of its row, at the row's one global address plus
//     128 bytes a block (and kRows * 128 bytes in the tile), both immediate offsets of the copy.
//     One address per row instead of one per chunk: the forward's loop at hd 256 took 58
//     instructions fewer (SASS, sm_90a, bf16); at hd 128 (two blocks) ptxas gained nothing
//     and spilled the sigmoid forward, so two-block rows keep the rule above;
//   - several 64-byte blocks (kW = 4, hd 96): 8 consecutive threads take the 4 chunks of one
//     block in two consecutive rows (r0 even), which fill one 128-byte line; going along the row
//     instead would put two blocks' chunks, kRows * 64 bytes apart, in the same slots. With one
//     such block (hd 32) the first rule gives the same.
// kRowsPerPass is a power of two (threads beyond it idle), so row r0 + i * kRowsPerPass has
// swizzle swz(r0) ^ swz(i * kRowsPerPass % 8): the shared offset of pass i is the thread's base
// offset XOR a constant plus a constant, one register for all passes. The global pointer
// advances by one add per pass. Without this ptxas held an address per pass and spilled at hd256.
template <int kThreads, class Tile, int kRows = Tile::kRows>
struct row_copy_plan {
    static constexpr int kSpan = Tile::kW == 8 && Tile::kChunks >= 24 ? Tile::kChunks / 8 : 1;
    static constexpr int kSpanSmem = Tile::kRows * Tile::kW * 8;  // elements between blocks
    static constexpr int kSpanGmem = Tile::kW * 8;
    static constexpr bool kRowPairs = Tile::kW == 4 && Tile::kChunks > 4;
    static constexpr int kThreadsPerRow = Tile::kChunks / kSpan;  // per two rows when kRowPairs
    static constexpr int kGroup = kRowPairs ? 2 * kThreadsPerRow : kThreadsPerRow;
    static_assert(kThreads >= kGroup, "a pass must cover a whole row (two with kRowPairs)");
    static_assert(kRows <= Tile::kRows, "rows of the tile");
    static constexpr int pow2_floor(int x) { return x >= 2 ? 2 * pow2_floor(x / 2) : 1; }
    static constexpr int kRowsPerPass = (kRowPairs ? 2 : 1) * pow2_floor(kThreads / kGroup);
    static constexpr int kPasses = (kRows + kRowsPerPass - 1) / kRowsPerPass;
    static_assert(kRows % kRowsPerPass == 0, "whole passes");

    int c, r0;
    int smem_base;  // element offset of (r0, c)
    __device__ __forceinline__ explicit row_copy_plan(int tid)
        : c(kRowPairs ? 4 * (tid % kGroup / 8) + tid % 4 : tid % kGroup),
          r0(kRowPairs ? 2 * (tid / kGroup) + tid % 8 / 4 : tid / kGroup),
          smem_base(Tile::offset(r0, c)) {}
    __device__ __forceinline__ bool active() const { return r0 < kRowsPerPass; }
    // element offset of (r0 + i * kRowsPerPass, c + j * kW)
    __device__ __forceinline__ int smem_offset(int i, int j = 0) const {
        const int dr = i * kRowsPerPass;
        return (smem_base ^ (Tile::swz(dr % 8) * 8)) + dr * (Tile::kW * 8) + j * kSpanSmem;
    }
    // whether chunk c + j * kW lies inside the first cols_valid columns
    __device__ __forceinline__ bool col_ok(int j, int cols_valid) const { return (c + j * Tile::kW) * 8 < cols_valid; }
};

// Issues (does not wait for) the cp.async copies of the tile's rows from g (the thread's first
// chunk, plan.r0 and plan.c), rows_left of the thread's rows from there on being valid. A chunk
// outside the rows or columns reads nothing (source size 0), from a valid address: fallback (a
// row that exists), or in a row past the last its block of that row.
//
// With kSpan > 1 the columns are tested in the last block alone: a head dim runs in the smallest
// bucket that holds it (plan.rs, whose test bucket_padding_stays_in_the_last_block checks it),
// so at hd 192 and 256 it exceeds the bucket less 64 and every earlier block is whole. Testing
// them too cost 17 to 40 of the 58 to 67 instructions the span saves in the forward's loop.
template <class Plan, class Tile>
__device__ __forceinline__ void copy_rows_async(const Tile& t, const Plan& plan, const uint16_t* g,
                                                const uint16_t* fallback, int64_t row_stride, int rows_left,
                                                int cols_valid) {
    const int64_t step = Plan::kRowsPerPass * row_stride;
    if constexpr (Plan::kSpan == 1) {
        // written as before the span, whose form cost ptxas 8 bytes of spill at hd 128
        const bool col_ok = plan.col_ok(0, cols_valid);
#pragma unroll
        for (int i = 0; i < Plan::kPasses; ++i) {
            const bool full = col_ok && i * Plan::kRowsPerPass < rows_left;
            ptx::cp_async_16(t.base + plan.smem_offset(i), full ? g : fallback, full);
            g += step;
        }
    } else {
#pragma unroll
        for (int i = 0; i < Plan::kPasses; ++i) {
            const bool row_ok = i * Plan::kRowsPerPass < rows_left;
            const uint16_t* row = row_ok ? g : fallback;
#pragma unroll
            for (int j = 0; j < Plan::kSpan; ++j) {
                // the first kSpan - 1 blocks are inside the head dim (see above): only the row counts
                const bool full = row_ok && (j + 1 < Plan::kSpan || plan.col_ok(j, cols_valid));
                const uint16_t* a = j + 1 < Plan::kSpan ? row + j * Plan::kSpanGmem
                                    : full              ? g + j * Plan::kSpanGmem
                                                        : fallback;
                ptx::cp_async_16(t.base + plan.smem_offset(i, j), a, full);
            }
            g += step;
        }
    }
}

// copy_rows_async for a tile whose rows all exist (the caller knows it lies inside the sequence),
// from row, the thread's first row at column 0: no row test, and the chunk column is chosen once
// for all passes, c where it lies inside the head dim and 0 (in the same row, read nothing)
// where not. Three instructions a pass (the copy and a 64-bit add) where copy_rows_async takes
// six: a step of the forward or the backward 10 to 80 fewer (CHANGELOG, kernel report).
template <class Plan, class Tile>
__device__ __forceinline__ void copy_whole_rows_async(const Tile& t, const Plan& plan, const uint16_t* row,
                                                      int64_t row_stride, int cols_valid) {
    const int64_t step = Plan::kRowsPerPass * row_stride;
    if constexpr (Plan::kSpan == 1) {
        const bool col_ok = plan.col_ok(0, cols_valid);
        const uint16_t* g = row + (col_ok ? plan.c * 8 : 0);
        if constexpr (Plan::kPasses <= 4) {
            // the multiples of step held beside the loop: fewer instructions in it
#pragma unroll
            for (int i = 0; i < Plan::kPasses; ++i) ptx::cp_async_16(t.base + plan.smem_offset(i), g + i * step, col_ok);
        } else {
#pragma unroll
            for (int i = 0; i < Plan::kPasses; ++i) {
                ptx::cp_async_16(t.base + plan.smem_offset(i), g, col_ok);
                g += step;
            }
        }
    } else {
        // as copy_rows_async: the first kSpan - 1 blocks lie inside the head dim
        constexpr int kLast = Plan::kSpan - 1;
        const bool last_ok = plan.col_ok(kLast, cols_valid);
        const int last_off = last_ok ? kLast * Plan::kSpanGmem : -plan.c * 8;  // from g
        const uint16_t* g = row + plan.c * 8;
#pragma unroll
        for (int i = 0; i < Plan::kPasses; ++i) {
#pragma unroll
            for (int j = 0; j < kLast; ++j) ptx::cp_async_16(t.base + plan.smem_offset(i, j), g + j * Plan::kSpanGmem, true);
            ptx::cp_async_16(t.base + plan.smem_offset(i, kLast), g + last_off, last_ok);
            g += step;
        }
    }
}

// Issues (does not wait for) the cp.async copies of rows [0, rows_valid) x columns
// [0, cols_valid) from gmem (row 0 at src, rows row_stride elements apart) into the tile.
// kWholeRows: the caller knows rows_valid >= Tile::kRows (copy_whole_rows_async).
template <int kThreads, bool kWholeRows = false, class Tile>
__device__ __forceinline__ void load_rows_async(const Tile& t, const uint16_t* src, int64_t row_stride,
                                                int rows_valid, int cols_valid, int tid) {
    using plan_t = row_copy_plan<kThreads, Tile>;
    const plan_t plan(tid);
    if (!plan.active()) return;
    if constexpr (kWholeRows) {
        copy_whole_rows_async(t, plan, src + plan.r0 * row_stride, row_stride, cols_valid);
    } else {
        copy_rows_async(t, plan, src + plan.r0 * row_stride + plan.c * 8, src, row_stride, rows_valid - plan.r0,
                        cols_valid);
    }
}

// The same for rows [row0, row0 + Tile::kRows) of a sequence whose rows [0, rows_total) start at
// base (rows_total > 0): the caller keeps one pointer per sequence instead of working one out per
// tile, and each thread's address is one product, (row0 + r0) * row_stride (see fwd_traits).
template <int kThreads, bool kWholeRows = false, class Tile>
__device__ __forceinline__ void load_rows_async_at(const Tile& t, const uint16_t* base, int64_t row_stride, int row0,
                                                   int rows_total, int cols_valid, int tid) {
    using plan_t = row_copy_plan<kThreads, Tile>;
    const plan_t plan(tid);
    if (!plan.active()) return;
    const int r = row0 + plan.r0;  // >= 0
    const int64_t row = static_cast<int64_t>(static_cast<uint32_t>(r)) * row_stride;
    if constexpr (kWholeRows) {
        copy_whole_rows_async(t, plan, base + row, row_stride, cols_valid);
    } else {
        copy_rows_async(t, plan, base + (row + plan.c * 8), base, row_stride, rows_total - r, cols_valid);
    }
}

// Copies rows [0, rows_valid) x columns [0, cols_valid) of the tile (of its first kRows rows) to
// gmem with 16-byte stores. The caller synchronizes the threads before (the tile was written by
// other warps).
template <int kThreads, class Tile, int kRows = Tile::kRows>
__device__ __forceinline__ void store_rows(const Tile& t, uint16_t* dst, int64_t row_stride, int rows_valid,
                                           int cols_valid, int tid) {
    using plan_t = row_copy_plan<kThreads, Tile, kRows>;
    const plan_t plan(tid);
    if (!plan.active() || plan.c * 8 >= cols_valid) return;
    uint16_t* g = dst + plan.r0 * row_stride + plan.c * 8;
    const int64_t step = plan_t::kRowsPerPass * row_stride;
    const int rows_left = rows_valid - plan.r0;
#pragma unroll
    for (int i = 0; i < plan_t::kPasses; ++i) {
        if (i * plan_t::kRowsPerPass < rows_left) {
#pragma unroll
            for (int j = 0; j < plan_t::kSpan; ++j) {
                if (j == 0 || plan.col_ok(j, cols_valid)) {  // block 0: tested above
                    *reinterpret_cast<chunk16*>(g + j * plan_t::kSpanGmem) =
                        ptx::ld_shared(reinterpret_cast<const chunk16*>(t.base + plan.smem_offset(i, j)));
                }
            }
        }
        g += step;
    }
}

}  // namespace sinkless
