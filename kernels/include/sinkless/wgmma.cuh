// Warpgroup products over the shared-memory tiles of tile.cuh (sm_90a, wgmma.mma_async).
//
// A tile whose columns come in blocks of 64 (kW == 8) is already in the layout wgmma reads with
// the 128-byte swizzle: inside a column block, row r is 128 contiguous bytes whose 16-byte chunk
// c sits at c ^ (r & 7), which is the swizzle's XOR of address bits 4-6 with bits 7-9 as long as
// each column block starts on a 1024-byte boundary (the kernels align their shared memory so).
// So the same tiles, filled by the same cp.async copies, feed both the mma.sync path and this one:
//   K-major (rows of M or N, k contiguous): 8-row groups 1024 bytes apart (stride byte offset);
//       the k-step of 16 inside a column block moves the start address by 32 bytes.
//   N-major (B stored [k][n], V in P V): rows are k, 128-byte groups of 64 columns are the
//       column blocks (leading byte offset kRows * 128), 8-row groups of k 1024 bytes apart.
//       An M-major A (stored [k][m], dS^T in dQ = dS K) is laid out and described the same way.
// Descriptor bits (PTX ISA, "Matrix Descriptor Format"): start address 0-13, leading byte
// offset 16-29, stride byte offset 32-45 (each in 16-byte units), base offset 49-51 (0 here:
// every start is 1024-aligned up to the k-step's 32-byte offset, which leaves bits 7-9 alone),
// swizzle mode 62-63 (1: 128 bytes).
// A product's k-steps and column blocks move the start address by a constant, so a descriptor
// is made once per operand and each step adds its offset to the low word (desc_advance):
// shared-memory addresses stay below 2^18, so the 14-bit field never carries into the next.
// Made from a lane-dependent address, every descriptor took about 12 instructions per wgmma
// (the field's mask and shift, then R2UR into uniform registers); made once from an address
// ptxas knows to be warp-uniform (warp_uniform), it takes two uniform adds and two moves.
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"
#include "sinkless/tile.cuh"

namespace sinkless {

__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return uint64_t((addr & 0x3ffffu) >> 4) | uint64_t((lbo >> 4) & 0x3fffu) << 16 |
           uint64_t((sbo >> 4) & 0x3fffu) << 32 | uint64_t(1) << 62;
}

// desc with its start address moved by `bytes` (a multiple of 16), the high word left alone.
__device__ __forceinline__ uint64_t desc_advance(uint64_t desc, uint32_t bytes) {
    return (desc & 0xffffffff00000000ull) | uint32_t(uint32_t(desc) + (bytes >> 4));
}

// x as lane 0 of the warp has it, for an x that every lane has anyway (a function of the warp
// index): ptxas cannot tell that of a value computed from threadIdx, but can of a broadcast,
// and then keeps the descriptors made from it in uniform registers.
__device__ __forceinline__ int warp_uniform(int x) { return __shfl_sync(0xffffffffu, x, 0); }

// The K-major operand at rows r0.. (r0 % 8 == 0) and columns k0..k0+15 (k0 % 16 == 0). The
// leading byte offset is unused with a swizzle (1, as CUTLASS writes it).
template <class Tile>
__device__ __forceinline__ uint64_t desc_k_major(const Tile& t, int r0, int k0) {
    static_assert(Tile::kW == 8, "wgmma tiles have 64-column blocks");
    static_assert(Tile::kRows % 8 == 0, "column blocks a whole number of 1024-byte row groups apart");
    return desc_advance(smem_desc(ptx::smem_addr(t.base + r0 * 64), 16, 1024),
                        uint32_t((k0 / 64) * (Tile::kRows * 128) + (k0 % 64) * 2));
}

// The N-major operand B over rows k0..k0+15 (k0 % 16 == 0) and the columns from column block
// cb0 on (each block starts on a 1024-byte boundary, as the whole tile does).
template <class Tile>
__device__ __forceinline__ uint64_t desc_n_major(const Tile& t, int k0, int cb0 = 0) {
    static_assert(Tile::kW == 8, "wgmma tiles have 64-column blocks");
    static_assert(Tile::kRows % 8 == 0, "column blocks a whole number of 1024-byte row groups apart");
    return desc_advance(smem_desc(ptx::smem_addr(t.base), Tile::kRows * 128, 1024),
                        uint32_t(cb0 * (Tile::kRows * 128) + k0 * 128));
}

template <int NT>
__device__ __forceinline__ float (&flat(float (&acc)[NT][4]))[NT * 4] {
    return reinterpret_cast<float(&)[NT * 4]>(acc);
}

// Unlike the mma.sync products of tile.cuh, these skip no k-step past the valid data: a
// condition between two wgmma.mma_async splits them into separate basic blocks, and ptxas then
// waits for each before issuing the next. The padding they multiply is zero (gmem.cuh fills it).

// acc[nt] += A[m0 .. m0 + 63, :] * B[8 nt .., :]^T over the first kK columns of both tiles (both
// K-major), for the calling warpgroup (its warp w gets rows m0 + 16 w ..): issued as one wgmma
// group, not waited for (acc belongs to the tensor core until a wgmma_wait retires the group).
template <class T, int NT, int kK, class TA, class TB>
__device__ __forceinline__ void wg_issue_nt(float (&acc)[NT][4], const TA& ta, int m0, const TB& tb) {
    static_assert(TB::kRows == NT * 8, "B holds the n-tiles");
    constexpr uint32_t kNoA[4] = {0, 0, 0, 0};
    ptx::fence_operand(flat(acc));
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kK / 16; ++ks) {
        ptx::wgmma<T::kBf16, false, NT * 8>(flat(acc), kNoA, desc_k_major(ta, m0, ks * 16), desc_k_major(tb, 0, ks * 16));
    }
    ptx::wgmma_commit();
}

// acc[nt] += A(registers)[ks] * B[k 16 ks .., n 8 nt ..] with B stored [k][n] (N-major) over all
// of its columns: issued as one wgmma group, not waited for (acc and a belong to the tensor core
// until a wgmma_wait retires the group; fence a after that wait). Wider than 128 columns (head
// dims 192 and 256), the columns go in products of 128 (or 64, at 192) over their own slices of
// acc: wgmma's accumulator of n columns is n-tiles 0 .. n / 8 - 1 in acc's layout.
template <class T, int NT, int KS, class TB>
__device__ __forceinline__ void wg_issue_rn(float (&acc)[NT][4], uint32_t (&a)[KS][4], const TB& tb) {
    static_assert(TB::kCols == NT * 8, "B holds the n-tiles");
    constexpr int kPart = NT % 16 == 0 ? 16 : 8;  // n-tiles per product
    static_assert(NT % kPart == 0, "B's columns: whole blocks of 64");
    ptx::fence_operand(flat(acc));
    ptx::fence_operand(reinterpret_cast<uint32_t(&)[KS * 4]>(a));
    ptx::wgmma_fence();
#pragma unroll
    for (int part = 0; part < NT / kPart; ++part) {
        float(&d)[kPart * 4] = reinterpret_cast<float(&)[kPart * 4]>(acc[part * kPart]);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
            ptx::wgmma<T::kBf16, true, kPart * 8>(d, a[ks], 0, desc_n_major(tb, ks * 16, part * kPart / 8));
        }
    }
    ptx::wgmma_commit();
}

// acc[nt] += A[k, 0 .. 63]^T * B[k, 64 cb0 + 8 nt ..] over rows k0 .. k0 + kK - 1 of both
// (k0 % 16 == 0, inside both tiles), with A stored [k][m] (M-major, its one column block) and B
// stored [k][n] (N-major): issued as one wgmma group, not waited for. The columns are whole
// blocks of 64 from cb0 on, so no operand starts inside a swizzled line.
template <class T, int NT, int kK, class TA, class TB>
__device__ __forceinline__ void wg_issue_tn(float (&acc)[NT][4], const TA& ta, const TB& tb, int cb0, int k0 = 0) {
    static_assert(TA::kCols == 64, "A: one block of 64 rows of M");
    static_assert(NT == 8 || NT == 16, "B: one or two blocks of 64 columns");
    static_assert(kK % 16 == 0 && kK <= TA::kRows && kK <= TB::kRows, "k: whole steps of 16 inside both tiles");
    constexpr uint32_t kNoA[4] = {0, 0, 0, 0};
    ptx::fence_operand(flat(acc));
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kK / 16; ++ks) {
        ptx::wgmma<T::kBf16, false, NT * 8, true>(flat(acc), kNoA, desc_n_major(ta, k0 + ks * 16),
                                                  desc_n_major(tb, k0 + ks * 16, cb0));
    }
    ptx::wgmma_commit();
}

// The same products, waited for.
template <class T, int NT, int kK, class TA, class TB>
__device__ __forceinline__ void wg_gemm_nt(float (&acc)[NT][4], const TA& ta, int m0, const TB& tb) {
    wg_issue_nt<T, NT, kK>(acc, ta, m0, tb);
    ptx::wgmma_wait<0>();
    ptx::fence_operand(flat(acc));
}
template <class T, int NT, int kK, class TA, class TB>
__device__ __forceinline__ void wg_gemm_tn(float (&acc)[NT][4], const TA& ta, const TB& tb, int cb0) {
    wg_issue_tn<T, NT, kK>(acc, ta, tb, cb0);
    ptx::wgmma_wait<0>();
    ptx::fence_operand(flat(acc));
}
template <class T, int NT, int KS, class TB>
__device__ __forceinline__ void wg_gemm_rn(float (&acc)[NT][4], uint32_t (&a)[KS][4], const TB& tb) {
    wg_issue_rn<T>(acc, a, tb);
    ptx::wgmma_wait<0>();
    ptx::fence_operand(flat(acc));
    ptx::fence_operand(reinterpret_cast<uint32_t(&)[KS * 4]>(a));
}

}  // namespace sinkless
