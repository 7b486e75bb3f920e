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
    static constexpr bool kRowPairs = Tile::kW == 4 && Tile::kChunks > 4;
    static constexpr int kThreadsPerRow = Tile::kChunks;  // per two rows when kRowPairs
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
    // element offset of (r0 + i * kRowsPerPass, c)
    __device__ __forceinline__ int smem_offset(int i) const {
        const int dr = i * kRowsPerPass;
        return (smem_base ^ (Tile::swz(dr % 8) * 8)) + dr * (Tile::kW * 8);
    }
};

// Issues (does not wait for) the cp.async copies of rows [0, rows_valid) x columns
// [0, cols_valid) from gmem (row 0 at src, rows row_stride elements apart) into the tile.
template <int kThreads, class Tile>
__device__ __forceinline__ void load_rows_async(const Tile& t, const uint16_t* src, int64_t row_stride,
                                                int rows_valid, int cols_valid, int tid) {
    using plan_t = row_copy_plan<kThreads, Tile>;
    const plan_t plan(tid);
    if (!plan.active()) return;
    const bool col_ok = plan.c * 8 < cols_valid;
    const uint16_t* g = src + plan.r0 * row_stride + plan.c * 8;
    const int64_t step = plan_t::kRowsPerPass * row_stride;
    const int rows_left = rows_valid - plan.r0;
#pragma unroll
    for (int i = 0; i < plan_t::kPasses; ++i) {
        const bool full = col_ok && i * plan_t::kRowsPerPass < rows_left;
        ptx::cp_async_16(t.base + plan.smem_offset(i), full ? g : src, full);
        g += step;
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
            *reinterpret_cast<chunk16*>(g) = ptx::ld_shared(reinterpret_cast<const chunk16*>(t.base + plan.smem_offset(i)));
        }
        g += step;
    }
}

}  // namespace sinkless
