// Row-wise dot product of two [rows, heads, head_dim] tensors, accumulated in f32:
//
//     out[b, h, i] = sum_d x[b, i, h, d] * y[b, i, h, d]
//
// The softmax backward's preprocessing pass D = rowsum(dO * O). One warp per
// (row, head); each lane reads 8 contiguous elements (16 bytes) per step, so a
// warp covers 256 elements of the head dimension per step with coalesced 16-byte
// loads; head_dim is a multiple of 8 (the API checks it). The lanes' partial sums
// meet in a butterfly of shuffles, so every lane ends with the same total and
// lane 0 writes it. Memory-bound: 2 * head_dim * 2 bytes read per 4 bytes written.
//
// Shapes: dense x [batch, seqlen, heads, head_dim] with out [batch, heads, seqlen];
// varlen (cu_seqlens != NULL) x [total, heads, head_dim] with out [heads, total].
#pragma once
#include "sinkless/compat.cuh"
#include "sinkless/dtype.cuh"

namespace sinkless {

constexpr int kRowdotWarps = 4;

// Eight 16-bit elements; the alignment makes nvcc issue one 128-bit load.
struct alignas(16) Pack8 {
    uint32_t w[4];
};

template <typename T>
__device__ __forceinline__ float dot8(const uint16_t* a, const uint16_t* b) {
    const Pack8 va = *reinterpret_cast<const Pack8*>(a);
    const Pack8 vb = *reinterpret_cast<const Pack8*>(b);
    float acc = 0.f;
    for (int i = 0; i < 4; ++i) {
        acc += T::to_f32(uint16_t(va.w[i] & 0xffffu)) * T::to_f32(uint16_t(vb.w[i] & 0xffffu));
        acc += T::to_f32(uint16_t(va.w[i] >> 16)) * T::to_f32(uint16_t(vb.w[i] >> 16));
    }
    return acc;
}

// Grid: x = ceil(total_rows / kRowdotWarps), y = heads. Block: 32 * kRowdotWarps.
template <typename T>
__device__ __forceinline__ void rowdot(const sinkless_rowdot_params& p) {
    const int lane = threadIdx.x % 32;
    const int64_t row = int64_t(blockIdx.x) * kRowdotWarps + threadIdx.x / 32;
    const int head = blockIdx.y;
    if (row >= p.total_rows) return;

    // Locate the row's sequence: dense rows split evenly; varlen rows by a
    // binary search of the prefix sums (batch is small, the search is cheap).
    int64_t batch, pos;
    if (p.cu_seqlens != nullptr) {
        int lo = 0, hi = p.batch;
        while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            if (p.cu_seqlens[mid] <= row) lo = mid; else hi = mid;
        }
        batch = lo;
        pos = row - p.cu_seqlens[lo];
    } else {
        batch = row / p.seqlen;
        pos = row % p.seqlen;
    }
    const int64_t x_base = p.cu_seqlens != nullptr
        ? (p.cu_seqlens[batch] + pos) * p.x_row_stride + head * p.x_head_stride
        : batch * p.x_batch_stride + pos * p.x_row_stride + head * p.x_head_stride;
    const int64_t y_base = p.cu_seqlens != nullptr
        ? (p.cu_seqlens[batch] + pos) * p.y_row_stride + head * p.y_head_stride
        : batch * p.y_batch_stride + pos * p.y_row_stride + head * p.y_head_stride;
    const uint16_t* x = static_cast<const uint16_t*>(p.x) + x_base;
    const uint16_t* y = static_cast<const uint16_t*>(p.y) + y_base;

    float acc = 0.f;
    for (int d = lane * 8; d < p.head_dim; d += 32 * 8) acc += dot8<T>(x + d, y + d);
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, offset);

    if (lane == 0) {
        const int64_t out_index = p.cu_seqlens != nullptr
            ? int64_t(head) * p.total_rows + row
            : (batch * p.heads + head) * p.seqlen + pos;
        p.out[out_index] = acc;
    }
}

}  // namespace sinkless
