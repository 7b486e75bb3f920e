/* Parameters of the conformance kernels (kernels/conformance.cu): small kernels that exercise
 * each PTX wrapper of ptx.cuh and each emulated intrinsic of compat.cuh, so the emulator can be
 * checked against the PTX ISA tables on the CPU and against the GPU when one is lent.
 *
 * Plain C with fixed-width fields and pointers only: params.h includes it and bindgen makes the
 * Rust twins. Every buffer is in global memory; sizes are in elements of the pointed-to type. */
#ifndef SINKLESS_CONFORMANCE_PARAMS_H
#define SINKLESS_CONFORMANCE_PARAMS_H

#include <stdint.h>

#include "tma_params.h"

/* Planted bugs: emulator self-tests that must fail in a specific way. Only
 * SINKLESS_CONF_PLANT_NONE may be launched on a GPU (a deadlocked block hangs it). */
#define SINKLESS_CONF_PLANT_NONE 0u
#define SINKLESS_CONF_PLANT_SKIP_SYNC 1u          /* drop the __syncthreads: reads race with writes */
#define SINKLESS_CONF_PLANT_EXIT_EARLY 2u         /* threads 64.. return before the barrier: deadlock */
#define SINKLESS_CONF_PLANT_DIVERGENT_BARRIER 3u  /* odd warps wait at another __syncthreads: deadlock */
#define SINKLESS_CONF_PLANT_WARP_EXIT 4u          /* lane 5 returns before the shuffles: deadlock */
#define SINKLESS_CONF_PLANT_SKIP_WAIT 5u          /* cp.async kernel drops its first wait: wrong data */
#define SINKLESS_CONF_PLANT_SKIP_MBARRIER_WAIT 6u /* threads 64.. of the tensor-copy kernel do not wait for
                                                    its first copy: they read the buffer before it lands */
#define SINKLESS_CONF_PLANT_SKIP_PROXY_FENCE 7u   /* the wgmma kernel stages its operands with plain stores
                                                    and no fence.proxy.async: the async proxy may not see them */
#define SINKLESS_CONF_PLANT_LDMATRIX_BANK_CONFLICT 8u /* the mma kernel packs A's rows k apart in shared memory:
                                                        its ldmatrix rows collide in the banks */
#define SINKLESS_CONF_PLANT_PLAIN_SHARED_STORE 9u  /* the reduce kernel stores its inputs to shared memory with
                                                     plain stores, which the emulator cannot check */
#define SINKLESS_CONF_PLANT_STORE_UNDER_WGMMA 10u  /* the wgmma kernel's threads overwrite B's tile after issuing
                                                     the first product, before its wait_group (emulator only) */
#define SINKLESS_CONF_PLANT_ARRIVE_BEFORE_STORE 11u /* threads 0-63 of the tensor-copy kernel arrive at the
                                                      hand-off's named barrier before their stores */
#define SINKLESS_CONF_PLANT_STORE_AFTER_LDMATRIX 12u /* thread 0 of the tensor-copy kernel waits for one more
                                                       copy, then stores into the hand-off the other warps read
                                                       (emulator only) */
#define SINKLESS_CONF_PLANT_PLAIN_SHARED_LOAD 13u  /* the reduce kernel reads its last partial sums with plain
                                                     loads, which the emulator cannot check */
#define SINKLESS_CONF_PLANT_STORE_AFTER_LOAD 14u   /* warp 1 of the reduce kernel overwrites the partial sums
                                                     warp 0 reads after the last barrier (emulator only) */
#define SINKLESS_CONF_PLANT_SHARED_BANK_CONFLICT 15u /* the reduce kernel stores its inputs 32 words apart, four
                                                       lanes to a bank: the sums are right, the stores replay */
#define SINKLESS_CONF_PLANT_DESCRIPTOR_OVERFLOW 16u /* the wgmma kernel's first A descriptor (K-major) has its
                                                      start address moved 256 KiB on, which carries out of the
                                                      field (emulator only) */
#define SINKLESS_CONF_PLANT_MISPLACED_B 17u /* the wgmma kernel's B descriptors start one place past B: 8 rows
                                              on when K-major, one column block on when N-major, where
                                              decoys sit; the sums come out wrong (emulator only) */
#define SINKLESS_CONF_PLANT_SAME_WARP_STORE_AFTER_LOAD 18u /* lane t of the reduce kernel's warp 0 clears the
                                                             word lane t + 1 read, with no __syncwarp between
                                                             (emulator only) */

/* Every thread records its coordinates. Any grid and block (up to 1024 threads). */
typedef struct {
    uint32_t* out; /* [blocks * threads_per_block][8], indexed by linear block * threads + linear
                      thread (x fastest): threadIdx.xyz, blockIdx.xyz, threads per block, blocks */
} sinkless_conf_index_params;

/* Block sum through shared memory and a shuffle butterfly. Block 128, grid (blocks, 1, 1),
 * 512 bytes of dynamic shared memory. */
typedef struct {
    const uint32_t* in; /* [blocks * 128] */
    uint32_t* out;      /* [blocks]: the wrapping uint32 sum of the block's 128 inputs */
    uint32_t plant;     /* SINKLESS_CONF_PLANT_{NONE, SKIP_SYNC, EXIT_EARLY, DIVERGENT_BARRIER, WARP_EXIT,
                           PLAIN_SHARED_STORE, PLAIN_SHARED_LOAD, STORE_AFTER_LOAD, SHARED_BANK_CONFLICT,
                           SAME_WARP_STORE_AFTER_LOAD} */
} sinkless_conf_reduce_params;

/* cp.async in four commit groups with zero-fill, retired by wait_group 2, 1, 0 and wait_all.
 * Block 128, grid (blocks, 1, 1), 8192 bytes of dynamic shared memory. Thread u of stage s
 * copies 16-byte chunk c = s * 128 + u (zero-filled when c % 7 == 3) into shared slot
 * s * 128 + (5u + 1) % 128, and thread j writes shared slot s * 128 + j to dst chunk s * 128 + j. */
typedef struct {
    const uint32_t* src; /* [blocks][512 chunks][4] */
    uint32_t* dst;       /* [blocks][512 chunks][4] */
    uint32_t plant;      /* SINKLESS_CONF_PLANT_NONE or SINKLESS_CONF_PLANT_SKIP_WAIT */
} sinkless_conf_cp_async_params;

/* The six ldmatrix variants on one 32 x 16 matrix of 16-bit values. Block 32, grid 1,
 * SINKLESS_CONF_LDMATRIX_SMEM bytes of dynamic shared memory (rows staged 24 elements apart).
 * Lane l passes the address of row (7l + 3) % 32, column 8 * ((l / 8) % 2). */
typedef struct {
    const uint16_t* src; /* [32][16] row-major */
    uint32_t* out;       /* [6 variants][32 lanes][4 registers]; variants x1, x2, x4, x1.trans,
                            x2.trans, x4.trans; registers past the variant's count are 0 */
} sinkless_conf_ldmatrix_params;
#define SINKLESS_CONF_LDMATRIX_SMEM (32 * 24 * 2)

/* D = A * B + C with mma.m16n8k16 (f16 or bf16 by instance), k / 16 steps. Block 32, grid 1,
 * dynamic shared memory 48 * k + 256 bytes when use_ldmatrix (else 0): A's rows padded to k + 8. */
typedef struct {
    const uint16_t* a; /* [16][k] row-major */
    const uint16_t* b; /* [k][8] row-major */
    const float* c;    /* [16][8] row-major */
    float* d;          /* [16][8] row-major */
    uint32_t k;        /* a multiple of 16 */
    uint32_t use_ldmatrix; /* 0: fragments gathered from global memory by the table layout;
                              1: staged in shared memory, A by ldmatrix.x4, B by ldmatrix.x2.trans */
    uint32_t plant;        /* SINKLESS_CONF_PLANT_NONE or SINKLESS_CONF_PLANT_LDMATRIX_BANK_CONFLICT */
} sinkless_conf_mma_params;

/* D = A * B + C with one warpgroup's wgmma.mma_async.m64n{n}k16 (f16 or bf16 by instance), k / 16
 * steps; sm_90a only. Block 128, grid 1, dynamic shared memory SINKLESS_CONF_WGMMA_SMEM. The kernel
 * stages A and B with plain stores into 128-row tiles of tile.cuh (the 128-byte swizzle, 64-column
 * blocks) at the place the case names, and every element it does not place there holds a decoy (an
 * input from elsewhere, negated), so a descriptor one row, k-step or column block off reads wrong
 * values:
 *   SHARED_K    A [m][k] at rows row0 .. row0 + 63 of a 128 x 128 tile (the product reads rows
 *               row0 ..: the second warpgroup's half of a 128-row Q tile); B [n][k] at rows 0 ..
 *               n - 1 of a 128 x 128 tile (k past 64 in its second column block).
 *   REGISTER_A  A from global memory into registers by the mma.m16n8k16 table; B [k][n] at rows
 *               row0 .. row0 + k - 1 and columns 64 block .. of a 128 x 128 tile (two column
 *               blocks: at n = 128 the product spans both, one leading byte offset apart).
 *   SHARED_MN   A [k][m] at rows row0 .. row0 + k - 1 of a 128 x 64 tile, B as for REGISTER_A (the
 *               split-keys dQ reads both from a k offset).
 * groups 1: one commit group per k-step, each waited for (wait_group 0) before the next. groups 2
 * (k 64 or 128): the first k / 16 - 1 products in one commit group onto D, the last in a second
 * group onto a zeroed second accumulator; wait_group 1 retires the first group while the second
 * may still run, the threads store D, then wait_group 0 and each adds its second accumulator. The
 * host checks the fields (the kernel trusts them). */
typedef struct {
    const uint16_t* a; /* [64][k] row-major */
    const uint16_t* b; /* [k][n] row-major */
    const float* c;    /* [64][n] row-major */
    float* d;          /* [64][n] row-major */
    uint32_t k;        /* 16 .. 128, a multiple of 16 */
    uint32_t n;        /* 64 or 128 */
    uint32_t form;     /* SINKLESS_CONF_WGMMA_SHARED_K, _REGISTER_A or _SHARED_MN */
    uint32_t row0;     /* SHARED_K: A's first row, a multiple of 8 up to 64; else the k operands'
                          first row, a multiple of 16 with row0 + k <= 128 */
    uint32_t block;    /* B's first column block (REGISTER_A, SHARED_MN): block + n / 64 <= 2;
                          SHARED_K: 0 */
    uint32_t groups;   /* 1, or 2 with k 64 or 128 */
    uint32_t plant;    /* SINKLESS_CONF_PLANT_{NONE, SKIP_PROXY_FENCE, STORE_UNDER_WGMMA,
                          DESCRIPTOR_OVERFLOW, MISPLACED_B}; only with groups 1 */
} sinkless_conf_wgmma_params;
#define SINKLESS_CONF_WGMMA_SMEM (1024 + 2 * 128 * 128 * 2)
/* The operands' forms: A stored [m][k] in shared memory, B stored K-major ([n][k]), both by
 * descriptors; A gathered from global memory into registers by the table layout, B stored
 * N-major ([k][n]); A stored M-major ([k][m]) and B N-major, both by descriptors. */
#define SINKLESS_CONF_WGMMA_SHARED_K 0u
#define SINKLESS_CONF_WGMMA_REGISTER_A 1u
#define SINKLESS_CONF_WGMMA_SHARED_MN 2u

/* Tensor copies (cp.async.bulk.tensor.4d through a tensor map, the 128-byte swizzle, zeros out of
 * bounds) completing on one mbarrier, and a named-barrier hand-off; sm_90 only. Block 128, grid 1,
 * dynamic shared memory SINKLESS_CONF_TMA_SMEM. Copy i of the box at coords[i] lands in buffer
 * i % 2 (1024-byte aligned, SINKLESS_CONF_TMA_MAX_BOX bytes apart) and completes phase i of the
 * barrier (parity i % 2); once it has, thread t copies 16-byte chunks t, t + 128, .. of the buffer,
 * as the swizzle left them, to out[i], and every thread meets at named barrier 1 before copy
 * i + 1 is issued. Last, threads 0-63 store 7 t + 3 to shared memory and arrive at named barrier
 * 2 (bar.arrive), threads 64-127 wait there (bar.sync), read the words by ldmatrix.x1 (warp 2
 * words 0-31, warp 3 words 32-63) and thread 64 + i writes word i to named. */
#define SINKLESS_CONF_TMA_LOADS 4u
#define SINKLESS_CONF_TMA_MAX_BOX 8192u
#define SINKLESS_CONF_TMA_SMEM (1024u + 2u * SINKLESS_CONF_TMA_MAX_BOX + 512u)
typedef struct {
    sinkless_tma_map map;  /* rank 4, over the input tensor */
    uint16_t* out;         /* [SINKLESS_CONF_TMA_LOADS][box_bytes / 2] */
    uint32_t* named;       /* [64] */
    int32_t coords[SINKLESS_CONF_TMA_LOADS][4]; /* innermost first */
    uint32_t box_bytes;    /* the map's box: a multiple of 16, at most SINKLESS_CONF_TMA_MAX_BOX */
    uint32_t plant;        /* SINKLESS_CONF_PLANT_{NONE, SKIP_MBARRIER_WAIT, ARRIVE_BEFORE_STORE,
                              STORE_AFTER_LDMATRIX} */
} sinkless_conf_tma_params;

/* Number of shuffle cases of the shuffle kernel (see conformance.cu for each case). */
#define SINKLESS_CONF_SHFL_CASES 16u

/* Shuffles of every flavour, two warps. Block 64, grid 1, no shared memory. */
typedef struct {
    const uint32_t* in; /* [64]: thread i's value (finite float bit patterns) */
    uint32_t* out;      /* [SINKLESS_CONF_SHFL_CASES][64] */
} sinkless_conf_shfl_params;

/* Elementwise math and narrowing conversions. Any grid and block (grid-stride loop). */
typedef struct {
    const float* in;     /* [n] */
    float* ex2;          /* [n]: ex2_approx(in[i]) */
    float* tanh;         /* [n]: tanh_approx(in[i]) */
    float* rcp;          /* [n]: rcp_approx(in[i]) */
    float* sigmoid;      /* [n]: sigmoid_scaled<4>(in[i], log2(e)), the attention kernels' sigmoid */
    float* sigmoid3;     /* [n]: sigmoid_scaled<3>(in[i], log2(e)), the sigmoid's bf16 forward's */
    uint16_t* f16;       /* [n]: f32_to_f16(in[i]) */
    uint16_t* bf16;      /* [n]: f32_to_bf16(in[i]) */
    uint32_t* f16x2;     /* [n]: pack_f16x2(in[i], in[n - 1 - i]) */
    uint32_t* bf16x2;    /* [n]: pack_bf16x2(in[i], in[n - 1 - i]) */
    uint32_t n;
} sinkless_conf_math_params;

/* Widening conversions. Any grid and block (grid-stride loop). */
typedef struct {
    const uint16_t* in; /* [n] */
    float* f16;         /* [n]: f16_to_f32(in[i]) */
    float* bf16;        /* [n]: bf16_to_f32(in[i]) */
    uint32_t n;
} sinkless_conf_widen_params;

/* Float atomics from every thread of every block. Any grid (x only) and block (x only). */
typedef struct {
    float* sums;    /* [nsums], zeroed by the caller: thread t of block b adds 1 + t % 3 to
                       sums[(b + t) % nsums] (atomicAdd) */
    float* pairs;   /* [2 npairs], zeroed by the caller, 8-byte aligned: thread t of block b adds
                       1 + t % 3 and 1 + t % 5 to pairs[2 j] and pairs[2 j + 1], j = (b + 2 t) %
                       npairs (ptx::red_add_f32x2) */
    uint32_t nsums;
    uint32_t npairs;
} sinkless_conf_atomic_params;

/* A kernel that runs until the host lets it end: thread 0 of block 0 reads *release (volatile)
 * until it is non-zero, then sets *done to 1. For the GPU tests of the wait with a deadline
 * (CudaBackend::synchronize_within); GPU only (the emulator would spin forever). One block of 32. */
typedef struct {
    const uint32_t* release; /* [1]: the host writes non-zero to end the kernel */
    uint32_t* done;          /* [1]: 1 once the kernel saw the release */
} sinkless_conf_spin_params;

#endif /* SINKLESS_CONFORMANCE_PARAMS_H */
