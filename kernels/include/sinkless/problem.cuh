// Where a CTA's sequence lives: bounds of sequence b for the dense and varlen layouts, element
// offsets of (sequence, token, head) rows, and the index of a per-row f32 statistic.
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"

namespace sinkless {

struct seq_bounds {
    int q_start, k_start;  // first token of the sequence in the packed (varlen) layout, else 0
    int sq, sk;            // its lengths
};

template <class P>
__device__ __forceinline__ seq_bounds get_seq_bounds(const P& p, int b) {
    seq_bounds s;
    if (p.cu_seqlens_q != nullptr) {
        s.q_start = p.cu_seqlens_q[b];
        s.sq = p.cu_seqlens_q[b + 1] - s.q_start;
        s.k_start = p.cu_seqlens_k[b];
        s.sk = p.cu_seqlens_k[b + 1] - s.k_start;
    } else {
        s.q_start = 0;
        s.k_start = 0;
        s.sq = p.seqlen_q;
        s.sk = p.seqlen_k;
    }
    return s;
}

// Element offset of (sequence b, token seq_start + i, head h) for a tensor with these strides;
// the batch stride is ignored under varlen.
template <class P>
__device__ __forceinline__ int64_t row_offset(const P& p, int b, int64_t batch_stride, int64_t row_stride,
                                              int64_t head_stride, int seq_start, int i, int h) {
    const int64_t bo = p.cu_seqlens_q != nullptr ? 0 : static_cast<int64_t>(b) * batch_stride;
    return bo + static_cast<int64_t>(seq_start + i) * row_stride + static_cast<int64_t>(h) * head_stride;
}

// Index of row i's statistic: dense [batch, heads_q, seqlen_q], varlen [heads_q, total_q].
template <class P>
__device__ __forceinline__ int64_t stat_index(const P& p, int b, int h, int q_start, int i) {
    if (p.cu_seqlens_q != nullptr) return static_cast<int64_t>(h) * p.total_q + q_start + i;
    return (static_cast<int64_t>(b) * p.heads_q + h) * p.seqlen_q + i;
}

// Token index of query row i in a packed [rows, heads, head_dim] buffer (dq_accum).
template <class P>
__device__ __forceinline__ int64_t packed_row(const P& p, int b, int q_start, int i) {
    return p.cu_seqlens_q != nullptr ? static_cast<int64_t>(q_start) + i
                                     : static_cast<int64_t>(b) * p.seqlen_q + i;
}

}  // namespace sinkless
