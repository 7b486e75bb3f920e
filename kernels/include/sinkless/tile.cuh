// Shared-memory tiles of 16-bit elements and the warp-level tensor-core products over them.
//
// Layout. A tile of kRows x kCols elements is cut into column blocks of W 16-byte chunks
// (W = 8, i.e. 128 bytes, when kCols is a multiple of 64, else W = 4). Inside a block, row r's
// chunk c sits at chunk c ^ swz(r). ldmatrix reads one chunk from each of 8 consecutive rows:
// with W = 8 the XOR spreads those 8 reads over the 8 distinct 16-byte slots of a 128-byte
// bank line; with W = 4 two rows share a line and swz(r) = (r >> 1) & 3 does the same. So every
// ldmatrix (plain or .trans) and every 16-byte cp.async row write is conflict-free, for all
// head-dim buckets (96 = 3 blocks of 4, 192 = 3 blocks of 8).
//
// Fragments follow the PTX ISA tables of mma.m16n8k16 (f16/bf16, f32 accumulate); for a lane,
// g = lane / 4, t = lane % 4:
//   A (16x16): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B (16x8):  b0 (k 2t..2t+1, n g), b1 (k 2t+8..2t+9, n g)
//   C (16x8):  c0 c1 (g, 2t..2t+1), c2 c3 (g+8, 2t..2t+1)
// Accumulator arrays are acc[mt][nt][4]: m-tile mt (16 rows), n-tile nt (8 columns).
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"

namespace sinkless {

template <int kRows_, int kCols_>
struct smem_tile {
    static constexpr int kRows = kRows_;
    static constexpr int kCols = kCols_;
    static_assert(kCols % 32 == 0, "tile columns must be a multiple of 32");
    static constexpr int kChunks = kCols / 8;               // 16-byte chunks per row
    static constexpr int kW = (kCols % 64 == 0) ? 8 : 4;    // chunks per swizzle block
    static constexpr int kElems = kRows * kCols;
    static constexpr int kBytes = kElems * 2;
    static constexpr int kPattern = -1;  // read by any ldmatrix pattern (see smem_lane_view)

    uint16_t* base;

    static __device__ __forceinline__ int swz(int r) { return kW == 8 ? (r & 7) : ((r >> 1) & 3); }
    // Element offset of (row r, chunk c), c in chunk units.
    static __device__ __forceinline__ int offset(int r, int c) {
        return ((c / kW) * kRows + r) * (kW * 8) + (((c % kW) ^ swz(r)) * 8);
    }
    __device__ __forceinline__ uint16_t* chunk(int r, int c) const { return base + offset(r, c); }
    // The same tile seen from row r0 (a multiple of 8, so the swizzle is unchanged): its rows r0..
    // are the view's rows 0.., in every column block.
    __device__ __forceinline__ smem_tile from_row(int r0) const { return smem_tile{base + r0 * (kW * 8)}; }

    // Split addressing for ldmatrix patterns: row = r_lane + R, chunk = c_lane + C with
    // r_lane < 16, c_lane in {0, 1}, R a multiple of 8 and C even. Then swz(row) = swz(r_lane)
    // and the offset is lane_part(r_lane, c_lane) ^ ((C % kW) * 8) plus a term without the lane,
    // so the compiler keeps one register per pattern and folds the rest into the instruction's
    // immediate instead of holding one address register per fragment.
    static __device__ __forceinline__ int lane_part(int r_lane, int c_lane) {
        return r_lane * (kW * 8) + ((c_lane ^ swz(r_lane)) * 8);
    }
    __device__ __forceinline__ const uint16_t* at(int lane_off, int R, int C) const {
        return base + ((lane_off ^ ((C % kW) * 8)) + (C / kW) * (kRows * kW * 8) + R * (kW * 8));
    }
};

// The lane parts of the two ldmatrix.x4 patterns the fragment loads use: kLanesA (lanes 0-15
// rows 0-15 of chunk 0, lanes 16-31 of chunk 1: load_a, load_b_kn) and kLanesB (lanes 0-7 and
// 16-23 rows 0-7 and 8-15 of chunk 0, the rest of chunk 1: load_b_nk, load_a_trans).
constexpr int kLanesA = 0, kLanesB = 1;
// A lane view (below) has its lane part in its address and must be read with its own pattern.
template <class Tile, int kLanes>
__device__ __forceinline__ int pattern_lane_part(int lane) {
    static_assert(Tile::kPattern < 0 || Tile::kPattern == kLanes,
                  "a lane view read with another ldmatrix pattern than its own");
    return kLanes == kLanesA ? Tile::lane_part((lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4)
                             : Tile::lane_part((lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
}

// A tile read by one ldmatrix pattern, held as the shared-window byte address of the calling
// lane's row and chunk at row R0: addr = base + 2 pattern_lane_part + R0 kW 16. Each fragment
// then costs one XOR of it per k-step, the rows and column blocks going to the instruction's
// immediate, where element offsets from a pointer cost ptxas a XOR, an add and a shift per
// fragment, and the lane part again every step. The XOR acts on the whole address: the tile
// starts on a multiple of kW * 16 bytes (every tile sits a whole number of 128-byte rows into
// the 128-byte aligned dynamic shared memory), so bits 4 .. of addr are the lane's chunk bits.
template <class Tile, int kLanes>
struct smem_lane_view {
    static constexpr int kRows = Tile::kRows;
    static constexpr int kCols = Tile::kCols;
    static constexpr int kW = Tile::kW;
    static constexpr int kPattern = kLanes;

    uint32_t addr;

    // The view of tile bytes at shared-window address tile_addr, from row r0 (a multiple of 8).
    static __device__ __forceinline__ smem_lane_view of(uint32_t tile_addr, int r0, int lane) {
        return smem_lane_view{tile_addr + uint32_t(2 * pattern_lane_part<Tile, kLanes>(lane) + r0 * (kW * 16))};
    }
    // Another stage of the same tile, `bytes` on.
    __device__ __forceinline__ smem_lane_view plus(uint32_t bytes) const { return smem_lane_view{addr + bytes}; }
    // The fragment loads' address of (row R, chunk C) past the lane's own; lane_off, which they
    // pass for the pointer tiles, is in addr already.
    __device__ __forceinline__ uint32_t at(int /*lane_off*/, int R, int C) const {
        return (addr ^ uint32_t((C % kW) * 16)) + uint32_t((C / kW) * (kRows * kW * 16) + R * (kW * 16));
    }
    static __device__ __forceinline__ int lane_part(int, int) { return 0; }
};

// ---- fragment loads (all 32 lanes of the warp call these) --------------------------------

// A fragment for rows m0..m0+15, columns k0..k0+15 of a row-major tile (m0 % 8 == 0, k0 % 16 == 0).
template <class Tile>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const Tile& t, int m0, int k0, int lane) {
    ptx::ldmatrix_x4(a, t.at(pattern_lane_part<Tile, kLanesA>(lane), m0, k0 >> 3));
}

// A fragment of the transpose: the tile stores A^T as [k][m].
template <class Tile>
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const Tile& t, int m0, int k0, int lane) {
    ptx::ldmatrix_x4_trans(a, t.at(pattern_lane_part<Tile, kLanesB>(lane), k0, m0 >> 3));
}

// B fragments of two n-tiles (n0..n0+7 and n0+8..n0+15) at k0..k0+15, the tile storing B^T
// as [n][k] (K when forming Q K^T).
template <class Tile>
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[2][2], const Tile& t, int n0, int k0, int lane) {
    uint32_t r[4];
    ptx::ldmatrix_x4(r, t.at(pattern_lane_part<Tile, kLanesB>(lane), n0, k0 >> 3));
    b[0][0] = r[0]; b[0][1] = r[1]; b[1][0] = r[2]; b[1][1] = r[3];
}

// Same, the tile storing B as [k][n] (V when forming P V).
template <class Tile>
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[2][2], const Tile& t, int n0, int k0, int lane) {
    uint32_t r[4];
    ptx::ldmatrix_x4_trans(r, t.at(pattern_lane_part<Tile, kLanesA>(lane), k0, n0 >> 3));
    b[0][0] = r[0]; b[0][1] = r[1]; b[1][0] = r[2]; b[1][1] = r[3];
}

// ---- warp products -----------------------------------------------------------------------

// acc[mt][nt] += A[m0 + 16 mt, :] * B[n0 + 8 nt, :]^T over the first kK columns of both tiles
// (both row-major along the contraction). The k-steps go in groups of kStepsPerTest, and a group
// that starts at or past k_valid is skipped: it would multiply zero padding (as does the rest of
// a group that starts before k_valid, which runs whole).
template <class T, int MT, int NT, int kK, int kStepsPerTest = 1, class TA, class TB>
__device__ __forceinline__ void gemm_nt(float (&acc)[MT][NT][4], const TA& ta, int m0, const TB& tb,
                                        int n0, int k_valid, int lane) {
    static_assert(NT % 2 == 0, "n-tiles come in pairs");
    static_assert(kStepsPerTest >= 1 && (kK / 16) % kStepsPerTest == 0, "whole groups of k-steps");
#pragma unroll
    for (int kg = 0; kg < kK / 16; kg += kStepsPerTest) {
        if (kg * 16 < k_valid) {
#pragma unroll
            for (int ks = kg; ks < kg + kStepsPerTest; ++ks) {
                uint32_t a[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) load_a(a[mt], ta, m0 + 16 * mt, ks * 16, lane);
#pragma unroll
                for (int np = 0; np < NT / 2; ++np) {
                    uint32_t b[2][2];
                    load_b_nk(b, tb, n0 + 16 * np, ks * 16, lane);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        T::mma(acc[mt][2 * np], a[mt], b[0]);
                        T::mma(acc[mt][2 * np + 1], a[mt], b[1]);
                    }
                }
            }
        }
    }
}

// acc[mt][nt] += A(registers)[mt][ks] * B[k 16 ks .., n n0 + 8 nt ..], B stored [k][n].
// k-steps at or past k_valid are skipped (their A is all-zero masked probabilities).
// The n-tiles go in groups of 8 (4 ldmatrix) per basic block: with the whole row of n-tiles in
// one block, ptxas issues every B load of a k-step up front (64 registers at hd256) and spills
// the output accumulator; 4 loads in flight still hide the ldmatrix latency.
template <class T, int MT, int NT, int KS, class TB>
__device__ __forceinline__ void gemm_rn(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][KS][4],
                                        const TB& tb, int n0, int k_valid, int lane) {
    static_assert(NT % 2 == 0, "n-tiles come in pairs");
    // n-tile pairs per block: the largest of 4, 3, 2, 1 that divides NT / 2
    constexpr int kGroup = (NT / 2) % 4 == 0 ? 4 : (NT / 2) % 3 == 0 ? 3 : (NT / 2) % 2 == 0 ? 2 : 1;
#pragma unroll
    for (int g = 0; g < NT / 2 / kGroup; ++g) {
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
            if (ks * 16 < k_valid) {
#pragma unroll
                for (int np = g * kGroup; np < (g + 1) * kGroup; ++np) {
                    uint32_t b[2][2];
                    load_b_kn(b, tb, n0 + 16 * np, ks * 16, lane);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        T::mma(acc[mt][2 * np], a[mt][ks], b[0]);
                        T::mma(acc[mt][2 * np + 1], a[mt][ks], b[1]);
                    }
                }
            }
        }
    }
}

// acc[nt] += A[m0.., :] * B[:, n0 + 8 nt ..] with A stored transposed ([k][m]) and B stored
// [k][n]; the contraction runs over the first kK rows of both tiles, k-steps at or past k_valid
// skipped (zero rows). One k-step per basic block keeps ptxas from issuing every load up front.
template <class T, int NT, int kK, class TA, class TB>
__device__ __forceinline__ void gemm_tn(float (&acc)[NT][4], const TA& ta, int m0, const TB& tb, int n0, int k_valid,
                                        int lane) {
#pragma unroll
    for (int ks = 0; ks < kK / 16; ++ks) {
        if (ks * 16 < k_valid) {
            uint32_t a[4];
            load_a_trans(a, ta, m0, ks * 16, lane);
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
                uint32_t b[2][2];
                load_b_kn(b, tb, n0 + 16 * np, ks * 16, lane);
                T::mma(acc[2 * np], a, b[0]);
                T::mma(acc[2 * np + 1], a, b[1]);
            }
        }
    }
}

// An f32 accumulator (C layout) becomes A operands of the next product: the C fragments of
// n-tiles 2k and 2k+1 are exactly the A fragment of k-step k, rounded to T.
template <class T, int MT, int NT>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[MT][NT / 2][4], const float (&acc)[MT][NT][4]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int ks = 0; ks < NT / 2; ++ks) {
            a[mt][ks][0] = T::pack2(acc[mt][2 * ks][0], acc[mt][2 * ks][1]);
            a[mt][ks][1] = T::pack2(acc[mt][2 * ks][2], acc[mt][2 * ks][3]);
            a[mt][ks][2] = T::pack2(acc[mt][2 * ks + 1][0], acc[mt][2 * ks + 1][1]);
            a[mt][ks][3] = T::pack2(acc[mt][2 * ks + 1][2], acc[mt][2 * ks + 1][3]);
        }
}

template <int MT, int NT>
__device__ __forceinline__ void fill(float (&acc)[MT][NT][4], float v) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = v;
}

// Row and column, inside the warp's tile, of accumulator element e of n-tile nt, m-tile mt.
__device__ __forceinline__ int acc_row(int mt, int e, int lane) { return 16 * mt + (lane >> 2) + 8 * (e >> 1); }
__device__ __forceinline__ int acc_col(int nt, int e, int lane) { return 8 * nt + 2 * (lane & 3) + (e & 1); }

// Writes an f32 accumulator, rounded to T, into a row-major tile at (m0, n0).
template <class T, int MT, int NT, class Tile>
__device__ __forceinline__ void store_acc(const Tile& t, int m0, int n0, const float (&acc)[MT][NT][4],
                                          int lane) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = m0 + acc_row(mt, 2 * h, lane);
                const int c = n0 + acc_col(nt, 0, lane);
                uint32_t* dst = reinterpret_cast<uint32_t*>(t.chunk(r, c >> 3) + (c & 7));
                ptx::st_shared(dst, T::pack2(acc[mt][nt][2 * h], acc[mt][nt][2 * h + 1]));
            }
}

}  // namespace sinkless
