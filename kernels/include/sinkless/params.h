/* Parameter structs passed by value to the kernels.
 *
 * Plain C so that bindgen can make the Rust twin (src/ffi.rs includes it) and
 * the host compiler can build the same kernels under the emulator. One struct
 * per kernel family; every field is commented. Strides count elements, not
 * bytes; the last dimension of every tensor is contiguous.
 *
 * Layouts (see shared semantics):
 *   dense:  q/o [batch, seqlen_q, heads_q, head_dim], k/v [batch, seqlen_k, heads_kv, head_dim]
 *   varlen: q/o [total_q, heads_q, head_dim] with cu_seqlens_q[batch + 1] prefix sums,
 *           k/v [total_k, heads_kv, head_dim] with cu_seqlens_k[batch + 1].
 *   Per-row f32 statistics (LSE, D): dense [batch, heads_q, seqlen_q],
 *           varlen [heads_q, total_q].
 */
#ifndef SINKLESS_PARAMS_H
#define SINKLESS_PARAMS_H

#include <stdint.h>

/* Which score activation a kernel applies. */
typedef enum sinkless_activation {
    SINKLESS_SOFTMAX = 0,            /* exp(s) / (sum exp(s) + exp(sink)) */
    SINKLESS_SIGMOID = 1,            /* sigmoid(s + b), no normalization */
    SINKLESS_NORMALIZED_SIGMOID = 2, /* sigmoid(s + b) / sum sigmoid(s + b) */
} sinkless_activation;

/* How the sigmoid bias b is chosen. */
typedef enum sinkless_bias_kind {
    SINKLESS_BIAS_CONSTANT = 0,     /* b = bias_value */
    SINKLESS_BIAS_PER_HEAD = 1,     /* b = bias[h] */
    SINKLESS_BIAS_NEG_LOG_SK = 2,   /* b = -ln(seqlen_k of this sequence) */
} sinkless_bias_kind;

/* Row-wise dot product of two [rows, heads, head_dim] tensors:
 *   out[b, h, i] = sum_d x[b, i, h, d] * y[b, i, h, d]   (f32 accumulate)
 * The softmax backward's D = rowsum(dO * O). Varlen when cu_seqlens != NULL. */
typedef struct sinkless_rowdot_params {
    const void *x;             /* f16/bf16 elements, [batch, seqlen, heads, head_dim] or varlen */
    const void *y;             /* same shape and dtype as x (its own strides) */
    float *out;                /* dense [batch, heads, seqlen]; varlen [heads, total] */
    const int32_t *cu_seqlens; /* [batch + 1] prefix sums, or NULL for dense */
    int64_t x_batch_stride;    /* elements between batches (unused for varlen) */
    int64_t x_row_stride;      /* elements between consecutive rows (tokens) */
    int64_t x_head_stride;     /* elements between heads */
    int64_t y_batch_stride;
    int64_t y_row_stride;
    int64_t y_head_stride;
    int32_t batch;             /* number of sequences */
    int32_t seqlen;            /* rows per sequence (dense) or max rows per sequence (varlen) */
    int32_t total_rows;        /* varlen: cu_seqlens[batch]; dense: batch * seqlen */
    int32_t heads;
    int32_t head_dim;
} sinkless_rowdot_params;

/* Launch geometry of one instantiation, exported from the host-compiled copy of its traits so
 * that the Rust plan sizes launches from the same constants the device code uses. */
typedef struct sinkless_kernel_traits {
    int32_t block_m;    /* query rows per CTA */
    int32_t block_n;    /* key rows per tile */
    int32_t threads;    /* threads per CTA */
    int32_t smem_bytes; /* dynamic shared memory per CTA */
} sinkless_kernel_traits;

#include "attn_params.h"
#include "conformance_params.h"

#endif /* SINKLESS_PARAMS_H */
