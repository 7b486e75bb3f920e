// Visibility of keys to queries for one sequence: bounds (sq, sk), bottom-right aligned causal
// and sliding windows. Key j is visible to query i when 0 <= i < sq, 0 <= j < sk and
//   i + sk - sq - left <= j <= i + sk - sq + right   (a bound of -1 is absent).
// The block-range helpers let kernels skip tiles that are entirely invisible and apply the
// per-element test only on tiles that are partly visible.
#pragma once

#include "sinkless/attn_params.h"
#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"

namespace sinkless {

struct seq_mask {
    int sq, sk, left, right;

    __device__ __forceinline__ int diag() const { return sk - sq; }
    __device__ __forceinline__ bool visible(int i, int j) const {
        return i < sq && j < sk && (left < 0 || j >= i + diag() - left) && (right < 0 || j <= i + diag() + right);
    }
    // Keys [*j_begin, *j_end) that some query of rows [i0, i1) may see (empty when begin >= end).
    __device__ __forceinline__ void key_range(int i0, int i1, int* j_begin, int* j_end) const {
        const int lo = left < 0 ? 0 : i0 + diag() - left;
        const int hi = right < 0 ? sk : i1 - 1 + diag() + right + 1;
        *j_begin = lo > 0 ? lo : 0;
        *j_end = hi < sk ? hi : sk;
    }
    // Queries [*i_begin, *i_end) that may see some key of [j0, j1).
    __device__ __forceinline__ void query_range(int j0, int j1, int* i_begin, int* i_end) const {
        const int lo = right < 0 ? 0 : j0 - diag() - right;
        const int hi = left < 0 ? sq : j1 - 1 - diag() + left + 1;
        *i_begin = lo > 0 ? lo : 0;
        *i_end = hi < sq ? hi : sq;
    }
    // True when every (i, j) of the tile is visible, so the per-element test can be skipped.
    __device__ __forceinline__ bool tile_full(int i0, int i1, int j0, int j1) const {
        return i1 <= sq && j1 <= sk && (left < 0 || j0 >= (i1 - 1) + diag() - left) &&
               (right < 0 || j1 - 1 <= i0 + diag() + right);
    }
};

// The tile a CTA of index x (blockIdx.x, out of n) works on. A GPU hands out CTAs in about the
// order of their index, blockIdx.x varying fastest, so when tiles differ in work the longest
// should have the lowest index: the last CTAs to start are then the shortest, and the SMs run
// out of work at nearly the same time (the longest-processing-time rule). Under a causal mask
// (right bound, no left bound) a query block sees more keys the further down it lies, so query
// blocks go last to first; a key block is seen by fewer queries the further right it lies, so
// key blocks keep their order. A left bound alone mirrors both. Where the lengths do not grow
// along the axis (no mask, or both bounds) the order stays. blockIdx.y and z (head, batch)
// keep each head's blocks together, and with them its K and V in L2. `order` (the params'
// block_order) SINKLESS_GRID_ORDER keeps blockIdx.x whatever the mask, for the benchmark's
// comparison.
__device__ __forceinline__ int query_block_index(int order, int left, int right, int x, int n) {
    return order == SINKLESS_LONGEST_FIRST && right >= 0 && left < 0 ? n - 1 - x : x;
}
__device__ __forceinline__ int key_block_index(int order, int left, int right, int x, int n) {
    return order == SINKLESS_LONGEST_FIRST && left >= 0 && right < 0 ? n - 1 - x : x;
}

// Sets acc elements whose (row, col) is invisible to `fill`. row0/col0: the query/key index of
// the warp tile's origin; kTransposed: rows are keys and columns queries (backward layout).
// Visibility along a row is one interval of columns, computed once per row, so each element
// costs two compares and a select, no branch.
template <bool kTransposed, int MT, int NT>
__device__ __forceinline__ void mask_tile(float (&acc)[MT][NT][4], const seq_mask& m, int row0, int col0,
                                          float fill, int lane) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + 16 * mt + (lane >> 2) + 8 * h;
            int lo, hi;  // visible columns [lo, hi) of row r, relative to col0
            if (kTransposed) {
                lo = m.right < 0 ? 0 : r - m.diag() - m.right;
                hi = m.left < 0 ? m.sq : (m.sq < r - m.diag() + m.left + 1 ? m.sq : r - m.diag() + m.left + 1);
                if (r >= m.sk) hi = lo;
            } else {
                lo = m.left < 0 ? 0 : r + m.diag() - m.left;
                hi = m.right < 0 ? m.sk : (m.sk < r + m.diag() + m.right + 1 ? m.sk : r + m.diag() + m.right + 1);
                if (r >= m.sq) hi = lo;
            }
            lo -= col0;
            hi -= col0;
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int c = 8 * nt + 2 * (lane & 3) + e;
                    if (c < lo || c >= hi) acc[mt][nt][2 * h + e] = fill;
                }
        }
}

}  // namespace sinkless
