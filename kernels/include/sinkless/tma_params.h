/* Tensor maps of Hopper's tensor memory accelerator (TMA), as kernel parameters. Included by
 * attn_params.h and conformance_params.h; plain C, fixed-width fields only.
 *
 * The kernels that copy tiles with cp.async.bulk.tensor take one sinkless_tma_map per tensor,
 * inside their params struct, which the kernel receives as a __grid_constant__ parameter (the
 * instruction reads the map through its address in parameter space). The host plan fills each
 * map with a sinkless_tma_desc, the map it asks for in plain numbers; then
 *   - the CUDA backend re-encodes every map in place into the driver's opaque CUtensorMap
 *     (cuTensorMapEncodeTiled, with the fixed choices below) before the launch;
 *   - the emulator reads the sinkless_tma_desc as it is (kernels/sim/sim_tma.cpp).
 * Fixed choices: 16-bit elements, the 128-byte swizzle (the layout of tile.cuh, whose 64-column
 * blocks wgmma reads), zeros for elements outside the tensor, no interleave, element strides 1. */
#ifndef SINKLESS_TMA_PARAMS_H
#define SINKLESS_TMA_PARAMS_H

#include <stdint.h>

#define SINKLESS_TMA_MAX_RANK 5

/* The tiled map the host asks for. */
typedef struct sinkless_tma_desc {
    const void *base;                          /* 16-byte aligned global address of element 0 */
    uint64_t dims[SINKLESS_TMA_MAX_RANK];      /* elements per dimension, innermost (contiguous) first */
    uint64_t strides[SINKLESS_TMA_MAX_RANK - 1]; /* bytes between consecutive indices of dimensions
                                                  1 .. rank - 1: multiples of 16, below 2^40 */
    uint32_t box[SINKLESS_TMA_MAX_RANK];       /* box extent per dimension, 1 .. 256; box[0] * 2 is a
                                                  multiple of 16 and at most 128 (the swizzle span) */
    uint32_t rank;                             /* 1 .. 5 */
} sinkless_tma_desc;

/* 128 bytes, 128-byte aligned (CUDA 13's CUtensorMap): the driver's encoding on a GPU, a
 * sinkless_tma_desc in the emulator. */
typedef struct __attribute__((aligned(128))) sinkless_tma_map {
    uint64_t opaque[16];
} sinkless_tma_map;

#endif /* SINKLESS_TMA_PARAMS_H */
