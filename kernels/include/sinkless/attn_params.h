/* Parameter structs of the attention kernel families (kernels/attn_fwd.cu,
 * kernels/attn_bwd.cu). Included by params.h; plain C, fixed-width fields only.
 *
 * Conventions shared by every struct here:
 *  - Strides count elements. The head_dim axis is contiguous (stride 1).
 *  - Dense layout when cu_seqlens_q == NULL: q/o/do/dq [batch, seqlen_q, heads_q, head_dim],
 *    k/v/dk/dv [batch, seqlen_k, heads_kv, head_dim]; row statistics [batch, heads_q, seqlen_q].
 *  - Varlen when cu_seqlens_q != NULL (then cu_seqlens_k must be set too): tokens packed, the
 *    batch strides are ignored, sequence b owns rows cu_seqlens[b] .. cu_seqlens[b + 1] - 1;
 *    row statistics are [heads_q, total_q].
 *  - Visibility of key j to query i of one sequence (sq, sk its lengths):
 *    i + sk - sq - window_left <= j <= i + sk - sq + window_right, a bound of -1 being absent.
 *    Causal = (-1, 0).
 *  - scale must be > 0 (the row max is taken on unscaled scores).
 *  - The activation is fixed per instantiation; fields of the others are ignored.
 */
#ifndef SINKLESS_ATTN_PARAMS_H
#define SINKLESS_ATTN_PARAMS_H

#include <stdint.h>

#include "tma_params.h"

/* The order in which an attention launch's CTAs take their tiles (blockIdx.x); only speed
 * differs. Longest first reverses the axis along which the tiles' work grows under the mask
 * (query_block_index, key_block_index in mask.cuh); grid order keeps blockIdx.x, so that a
 * benchmark can time the one against the other. */
typedef enum sinkless_block_order {
    SINKLESS_LONGEST_FIRST = 0,
    SINKLESS_GRID_ORDER = 1,
} sinkless_block_order;

/* Forward: o = act(scale * q k^T + bias) v, plus the per-row statistic below. */
typedef struct sinkless_attn_fwd_params {
    const void *q;               /* f16/bf16, layout above */
    const void *k;               /* f16/bf16 */
    const void *v;               /* f16/bf16 */
    void *o;                     /* f16/bf16 output, same shape as q (its own strides) */
    float *row_stat;             /* softmax: lse (natural log; -inf for a row that sees no key
                                    and has no sink). normalized sigmoid: the row sum of
                                    sigmoids (0 for an empty row). sigmoid: unused, may be NULL */
    const int32_t *cu_seqlens_q; /* [batch + 1] or NULL (dense) */
    const int32_t *cu_seqlens_k; /* [batch + 1] or NULL (dense) */
    const float *sink;           /* softmax: [heads_q] sink logits (natural units) or NULL */
    const float *bias;           /* sigmoid kinds, SINKLESS_BIAS_PER_HEAD: [heads_q] */
    int64_t q_batch_stride;      /* elements between batches of q (dense only) */
    int64_t q_row_stride;        /* elements between consecutive tokens of q */
    int64_t q_head_stride;       /* elements between heads of q */
    int64_t k_batch_stride;
    int64_t k_row_stride;
    int64_t k_head_stride;
    int64_t v_batch_stride;
    int64_t v_row_stride;
    int64_t v_head_stride;
    int64_t o_batch_stride;
    int64_t o_row_stride;
    int64_t o_head_stride;
    int32_t batch;               /* number of sequences */
    int32_t seqlen_q;            /* dense: rows per sequence; varlen: max over sequences */
    int32_t seqlen_k;            /* dense: keys per sequence; varlen: max over sequences */
    int32_t total_q;             /* varlen: cu_seqlens_q[batch] (row-stat layout); dense: unused */
    int32_t heads_q;
    int32_t heads_kv;            /* divides heads_q; query head h reads kv head h / (heads_q / heads_kv) */
    int32_t head_dim;            /* multiple of 8, <= the instantiation's bucket */
    int32_t window_left;         /* -1 = unbounded */
    int32_t window_right;        /* -1 = unbounded; 0 with window_left = -1 is causal */
    int32_t bias_kind;           /* sinkless_bias_kind, sigmoid activations only */
    float bias_value;            /* SINKLESS_BIAS_CONSTANT: the bias */
    float scale;                 /* score scale (> 0), usually 1/sqrt(head_dim) */
    int32_t block_order;         /* sinkless_block_order */
} sinkless_attn_fwd_params;

/* The forward of the warp-specialised kernels (kernels/attn_fwd.cu, fwd_traits with kWgmma_ 3):
 * the forward's params, and tensor maps (tma_params.h) over q, k and v viewed as 4D tensors
 * (head_dim, token, head, batch), innermost first, with the byte strides of the row, the head and
 * the batch; varlen: (head_dim, token of the packed layout, head, 1). Boxes are 64 columns wide
 * (one 128-byte swizzle block of the tile) by the kernel's block_m (q) or block_n (k, v) tokens
 * of one head; columns past head_dim and tokens past the tensor's end arrive as zeros. */
typedef struct sinkless_attn_fwd_tma_params {
    sinkless_attn_fwd_params base;
    sinkless_tma_map q;
    sinkless_tma_map k;
    sinkless_tma_map v;
} sinkless_attn_fwd_tma_params;

/* Backward. Launch order and buffers: see the header comment of kernels/attn_bwd.cu. */
typedef struct sinkless_attn_bwd_params {
    const void *q;               /* f16/bf16, forward inputs */
    const void *k;
    const void *v;
    const void *o;               /* forward output (read by the D pre-pass) */
    const void *dout;            /* gradient of o, same layout as q (its own strides) */
    const float *row_stat;       /* the forward's row_stat (softmax lse, normalized-sigmoid sum) */
    float *row_dot;              /* [row-stat layout] D = rowsum(dout * o); written by the
                                    pre-pass, read by the main pass (softmax, normalized sigmoid) */
    float *dq_accum;             /* f32 [batch * seqlen_q or total_q, heads_q, head_dim] packed
                                    (row stride heads_q * head_dim); the host zeroes it;
                                    atomic mode only */
    void *dq;                    /* f16/bf16 output, q's shape */
    void *dk;                    /* f16/bf16 output, k's shape */
    void *dv;                    /* f16/bf16 output, v's shape */
    float *dsink;                /* softmax with sink: [heads_q] output, else NULL */
    float *dbias_partial;        /* sigmoid kinds: f32 scratch [heads_q, batch, n_key_blocks,
                                    dbias_block_slots], every element written by the main pass
                                    (no zeroing) */
    float *dbias;                /* sigmoid kinds: [heads_q] output, sum of dS over the head */
    const int32_t *cu_seqlens_q;
    const int32_t *cu_seqlens_k;
    const float *sink;           /* softmax: [heads_q] or NULL */
    const float *bias;           /* SINKLESS_BIAS_PER_HEAD: [heads_q] */
    int64_t q_batch_stride;
    int64_t q_row_stride;
    int64_t q_head_stride;
    int64_t k_batch_stride;
    int64_t k_row_stride;
    int64_t k_head_stride;
    int64_t v_batch_stride;
    int64_t v_row_stride;
    int64_t v_head_stride;
    int64_t o_batch_stride;
    int64_t o_row_stride;
    int64_t o_head_stride;
    int64_t do_batch_stride;
    int64_t do_row_stride;
    int64_t do_head_stride;
    int64_t dq_batch_stride;
    int64_t dq_row_stride;
    int64_t dq_head_stride;
    int64_t dk_batch_stride;
    int64_t dk_row_stride;
    int64_t dk_head_stride;
    int64_t dv_batch_stride;
    int64_t dv_row_stride;
    int64_t dv_head_stride;
    int32_t batch;
    int32_t seqlen_q;            /* dense: rows per sequence; varlen: max */
    int32_t seqlen_k;
    int32_t total_q;             /* varlen: cu_seqlens_q[batch]; dense: batch * seqlen_q */
    int32_t heads_q;
    int32_t heads_kv;
    int32_t head_dim;
    int32_t window_left;
    int32_t window_right;
    int32_t bias_kind;
    float bias_value;
    float scale;
    int32_t n_key_blocks;        /* ceil(seqlen_k / kBlockN of the main pass); sizes dbias_partial */
    int32_t dbias_block_slots;   /* 2 * kBlockN of the main pass: partials per key block, one
                                    per lane of each 16-key warp */
    int32_t deterministic;       /* 0: main pass adds dQ into dq_accum with atomics;
                                    1: main pass skips dQ, the dQ pass computes it */
    int32_t block_order;         /* sinkless_block_order: the main pass's key blocks, the dQ
                                    pass's query blocks */
} sinkless_attn_bwd_params;

#endif /* SINKLESS_ATTN_PARAMS_H */
