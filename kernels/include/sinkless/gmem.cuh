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

// Thread tid copies chunk tid % kChunks of rows tid / kChunks + i * kRowsPerPass. Rows per pass
// are rounded down to a multiple of 8 where possible so that the swizzle of a thread's rows is
// the same every pass and its shared addresses differ by immediates; the global pointer advances
// by one add per pass instead of being recomputed (or held) per row.
template <int kThreads, class Tile>
struct row_copy_plan {
    static_assert(kThreads >= Tile::kChunks, "a pass must cover a whole row");
    static constexpr int kFit = kThreads / Tile::kChunks;
    static constexpr int kRowsPerPass = kFit >= 8 ? kFit / 8 * 8 : kFit;
    static constexpr int kPasses = (Tile::kRows + kRowsPerPass - 1) / kRowsPerPass;
};

// Issues (does not wait for) the cp.async copies of rows [0, rows_valid) x columns
// [0, cols_valid) from gmem (row 0 at src, rows row_stride elements apart) into the tile.
template <int kThreads, class Tile>
__device__ __forceinline__ void load_rows_async(const Tile& t, const uint16_t* src, int64_t row_stride,
                                                int rows_valid, int cols_valid, int tid) {
    using plan = row_copy_plan<kThreads, Tile>;
    const int c = tid % Tile::kChunks;
    const int r0 = tid / Tile::kChunks;
    if (r0 >= plan::kRowsPerPass) return;
    const bool col_ok = c * 8 < cols_valid;
    const uint16_t* g = src + r0 * row_stride + c * 8;
    const int64_t step = plan::kRowsPerPass * row_stride;
#pragma unroll
    for (int i = 0; i < plan::kPasses; ++i) {
        const int r = r0 + i * plan::kRowsPerPass;
        if (Tile::kRows % plan::kRowsPerPass == 0 || r < Tile::kRows) {
            const bool full = col_ok && r < rows_valid;
            ptx::cp_async_16(t.chunk(r, c), full ? g : src, full);
        }
        g += step;
    }
}

// Copies rows [0, rows_valid) x columns [0, cols_valid) of the tile to gmem with 16-byte stores.
// The caller synchronizes the block before (the tile was written by other warps).
template <int kThreads, class Tile>
__device__ __forceinline__ void store_rows(const Tile& t, uint16_t* dst, int64_t row_stride, int rows_valid,
                                           int cols_valid, int tid) {
    using plan = row_copy_plan<kThreads, Tile>;
    const int c = tid % Tile::kChunks;
    const int r0 = tid / Tile::kChunks;
    if (r0 >= plan::kRowsPerPass || c * 8 >= cols_valid) return;
    uint16_t* g = dst + r0 * row_stride + c * 8;
    const int64_t step = plan::kRowsPerPass * row_stride;
#pragma unroll
    for (int i = 0; i < plan::kPasses; ++i) {
        const int r = r0 + i * plan::kRowsPerPass;
        if (r < rows_valid && (Tile::kRows % plan::kRowsPerPass == 0 || r < Tile::kRows)) {
            *reinterpret_cast<chunk16*>(g) = *reinterpret_cast<const chunk16*>(t.chunk(r, c));
        }
        g += step;
    }
}

}  // namespace sinkless
