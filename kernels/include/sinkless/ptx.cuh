// Every piece of inline PTX the kernels use, one wrapper per instruction. On the device each is
// the real asm; on the host (the CPU emulator) each is an emulated twin in kernels/sim, checked
// against the PTX ISA tables by kernels/conformance.cu, which also runs on the GPU so the two
// sides can be compared bit for bit. Keeping all asm here is what lets the same kernel source
// run on both.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with f16/bf16 inputs; g = lane / 4, t = lane % 4):
//   a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]   a[2] = A[g][2t+8..]   a[3] = A[g+8][2t+8..]
//   b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]
//   d[0] = D[g][2t]   d[1] = D[g][2t+1]   d[2] = D[g+8][2t]   d[3] = D[g+8][2t+1]
// ldmatrix: lanes 8i..8i+7 address the rows of matrix i (only lanes 0-7 for .x1, 0-15 for .x2;
// every address 16-byte aligned); lane l gets row l/4, columns 2(l%4), 2(l%4)+1 of matrix i in
// r[i] (.trans: rows 2(l%4), 2(l%4)+1 of column l/4), the first element in the low half.
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/tma_params.h"

namespace sinkless {
namespace ptx {

#if defined(__CUDACC__)  // nvcc, both passes: the host pass never compiles these device bodies

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// The "memory" clobbers keep the compiler from moving shared-memory loads and stores across
// the asynchronous copy and its waits, which it cannot see touch memory.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, bool full) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem_dst)), "l"(gmem_src),
                 "r"(full ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// Named barrier `id` (1 .. 15; 0 is __syncthreads') over `threads` threads, a multiple of 32, in
// whole warps: bar_sync waits until that many have arrived, bar_arrive arrives without waiting.
__device__ __forceinline__ void bar_sync(uint32_t id, uint32_t threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void bar_arrive(uint32_t id, uint32_t threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t (&r)[1], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t (&r)[1], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(smem_addr(smem)));
}
// The same, from a shared-window address (tile.cuh's smem_tile_at).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}

__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ float ex2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float tanh_approx(float x) {
    float y;
    asm("tanh.approx.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float rcp_approx(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// cvt.rn.f16x2.f32 d, a, b puts a in the upper half and b in the lower.
__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
    uint32_t d;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
__device__ __forceinline__ uint16_t f32_to_f16(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(h) : "f"(x));
    return h;
}
__device__ __forceinline__ uint16_t f32_to_bf16(float x) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(h) : "f"(x));
    return h;
}
__device__ __forceinline__ float f16_to_f32(uint16_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;\n" : "=f"(f) : "h"(static_cast<unsigned short>(h)));
    return f;
}
// bf16 is the upper half of an f32: widening is a shift, the same on both sides.
__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

// A store to and a load from shared memory: the only ways kernels write it, and the only ways
// besides ldmatrix and the products that they read it. On the device a plain store and a plain
// load, which leave the compiler free to merge and schedule them as before. The emulator checks
// each against the accesses it races with (a store after another warp's read or a product's, a
// load of a write it is not ordered after), and a plain access of a kernel faults there
// (kernels/sim/sim_shared.cpp). The stored value is taken by value: a reference bound to
// `c ? a[i] : a[j]` would take an address of a register array and send it to local memory.
template <class V>
__device__ __forceinline__ void st_shared(V* smem, V v) {
    *smem = v;
}
template <class V>
__device__ __forceinline__ V ld_shared(const V* smem) {
    return *smem;
}

// Adds v0 and v1 to the two floats at gmem (global memory, 8-byte aligned), with no result and
// each element atomic on its own: on sm_90 one red.global.add.v2.f32 (PTX ISA 8.1), half the
// requests of two scalar adds, which are what the other targets get. Like atomicAdd's, the adds
// are relaxed at gpu scope and flush subnormal values to zero (SASS: REDG.E.ADD.F32x2.FTZ.RN).
// No "memory" clobber: the kernels never read what they add to (a later launch does), so the
// compiler may keep moving their other loads and stores across it.
__device__ __forceinline__ void red_add_f32x2(float* gmem, float v0, float v1) {
#if __CUDA_ARCH__ >= 900
    asm volatile("red.relaxed.gpu.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(gmem), "f"(v0), "f"(v1));
#else
    atomicAdd(gmem, v0);
    atomicAdd(gmem + 1, v1);
#endif
}

// ---- warpgroup MMA (sm_90a) -----------------------------------------------------------------
// wgmma.mma_async: a warpgroup (4 consecutive warps, the first a multiple of 4) computes
// D[64 x N] += A[64 x 16] * B[16 x N] in f32. B always comes from shared memory through a matrix
// descriptor (wgmma.cuh); A either from shared memory too (_ss) or from registers (_rs), in the
// mma.m16n8k16 A layout per warp (warp w of the group holds rows 16w..16w+15). D is d[N / 2] per
// thread: d[4 nt + e] is element e of n-tile nt in the mma.m16n8k16 C layout, so a float[N/8][4]
// accumulator of tile.cuh is exactly it. Issue order: wgmma_fence() (after any ordinary access
// to d or a), the products, wgmma_commit(), wgmma_wait<0>() before reading d. Shared memory
// written through the generic proxy (st.shared, cp.async) must be made visible to the products
// by fence_proxy_async() of the writing thread before the barrier that publishes it.
// The _ss form takes B K-major (imm-trans-b 0); the _rs form takes B N-major (imm-trans-b 1).
// Only sm_90a has these instructions (nor does sm_80 have the mbarrier waits and tensor copies
// below): elsewhere the wrappers trap, and kernels that use them compile their bodies only where
// kHasWgmma holds.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SINKLESS_SM90A_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SINKLESS_SM90A_ASM(...) __trap()
#endif
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr bool kHasWgmma = true;
#else
constexpr bool kHasWgmma = false;
#endif
__device__ __forceinline__ void trap() { __trap(); }

__device__ __forceinline__ void wgmma_fence() { SINKLESS_SM90A_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { SINKLESS_SM90A_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    SINKLESS_SM90A_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() { SINKLESS_SM90A_ASM("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// ---- mbarrier, TMA, setmaxnreg (sm_90) ------------------------------------------------------
// An mbarrier is 8 bytes of shared memory counting arrivals and transaction bytes per phase:
// a phase completes when `count` arrivals (mbarrier_init) have come and every byte announced by
// arrive_expect_tx has landed; the barrier then starts the next phase with the same count.
// mbarrier_wait(bar, parity) returns once the phase of that parity has completed: waiting for
// phase k of a barrier means parity k & 1 (a fresh barrier is in phase 0, so a wait on parity 1
// returns at once). Only one phase may be outstanding per wait: a thread must not fall two
// phases behind. tma_load_4d copies a box of a tensor map (tma_params.h) into shared memory and
// completes its bytes on the barrier; the destination holds the box row-major, innermost
// dimension first, with the 128-byte swizzle applied to its shared-window byte addresses
// (so a 1024-byte aligned destination of 64-column rows is a tile.cuh column block).
// The barrier's initialisation is published to the other threads and to the copy engine by
// fence_mbarrier_init() and a __syncthreads().
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
    SINKLESS_SM90A_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void fence_mbarrier_init() {
    SINKLESS_SM90A_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
    SINKLESS_SM90A_ASM("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(smem_addr(bar))
                       : "memory");
}
// Announces `bytes` transaction bytes for the current phase, then arrives.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
    SINKLESS_SM90A_ASM("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
                           smem_addr(bar)),
                       "r"(bytes)
                       : "memory");
}
__device__ __forceinline__ bool mbarrier_try_wait(uint64_t* bar, uint32_t parity) {
    uint32_t done = 1;
    SINKLESS_SM90A_ASM(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
    return done != 0;
}
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
    while (!mbarrier_try_wait(bar, parity)) {
    }
}
// Box at coordinates (c0, c1, c2, c3) of a 4D map, innermost first; coordinates may lie outside
// the tensor, whose missing elements arrive as zeros (and still count as transaction bytes).
__device__ __forceinline__ void tma_load_4d(void* smem_dst, const sinkless_tma_map* map, int c0, int c1, int c2, int c3,
                                            uint64_t* bar) {
    SINKLESS_SM90A_ASM(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, "
        "%5}], [%6];\n" ::"r"(smem_addr(smem_dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
        : "memory");
}
// Moves the calling warpgroup's register budget to N per thread (24 .. 256, a multiple of 8).
// Every warp of the warpgroup executes it; ptxas honours it only in a kernel compiled with a
// register cap (__launch_bounds__(threads, 1)), and says so otherwise (C7508, which the kernel
// report fails on).
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
    static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24 .. 256, a multiple of 8");
    SINKLESS_SM90A_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
    static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24 .. 256, a multiple of 8");
    SINKLESS_SM90A_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

// The accumulators and register-A operands of a product in flight belong to the tensor core
// until the wait_group that retires it. The compiler does not know that: to it the product's
// asm produced d when issued, and a's registers are free after it. fence_operand ties the
// registers to a point in the program (an empty asm that reads and writes them), so placed
// after a wait_group no access to them moves above the wait, and placed after the wait on a's
// registers they stay allocated to a until then (CUTLASS's warpgroup_fence_operand).
template <int N>
__device__ __forceinline__ void fence_operand(float (&x)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(x[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_operand(uint32_t (&x)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(x[i])::"memory");
}

#define SINKLESS_D8(i)                                                                                      \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define SINKLESS_D32 SINKLESS_D8(0), SINKLESS_D8(8), SINKLESS_D8(16), SINKLESS_D8(24)
#define SINKLESS_D64 SINKLESS_D32, SINKLESS_D8(32), SINKLESS_D8(40), SINKLESS_D8(48), SINKLESS_D8(56)
#define SINKLESS_R32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define SINKLESS_R64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
// One product: SHAPE and TY name the instruction, R and D list the accumulators; the operand
// numbers after them (A, B, P: the scale-d predicate's source) are given as strings. scale-d is
// set from 1, so the products always accumulate onto d.
#define SINKLESS_WGMMA_SS(SHAPE, TY, R, D, A, B, P, T)                                                       \
    SINKLESS_SM90A_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" P ", 0;\nwgmma.mma_async.sync.aligned." SHAPE      \
                       ".f32." TY "." TY " " R ", %" A ", %" B ", p, 1, 1, %" T ", %" T ";\n}\n"                 \
                       : D                                                                                 \
                       : "l"(desc_a), "l"(desc_b), "r"(1), "n"(kTrans))
#define SINKLESS_WGMMA_RS(SHAPE, TY, R, D, A0, A1, A2, A3, B, P)                                           \
    SINKLESS_SM90A_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %" P ", 0;\nwgmma.mma_async.sync.aligned." SHAPE      \
                       ".f32." TY "." TY " " R ", {%" A0 ", %" A1 ", %" A2 ", %" A3 "}, %" B ", p, 1, 1, 1;\n}\n" \
                       : D                                                                                 \
                       : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1))
#define SINKLESS_WGMMA_BOTH(TY)                                                                            \
    if constexpr (N == 64 && !kRegA) {                                                                     \
        SINKLESS_WGMMA_SS("m64n64k16", TY, SINKLESS_R32, SINKLESS_D32, "32", "33", "34", "35");           \
    } else if constexpr (N == 128 && !kRegA) {                                                             \
        SINKLESS_WGMMA_SS("m64n128k16", TY, SINKLESS_R64, SINKLESS_D64, "64", "65", "66", "67");          \
    } else if constexpr (N == 64) {                                                                        \
        SINKLESS_WGMMA_RS("m64n64k16", TY, SINKLESS_R32, SINKLESS_D32, "32", "33", "34", "35", "36", "37"); \
    } else {                                                                                               \
        SINKLESS_WGMMA_RS("m64n128k16", TY, SINKLESS_R64, SINKLESS_D64, "64", "65", "66", "67", "68", "69"); \
    }

// d += A * B with A from shared memory (desc_a) or, kRegA, from registers (a); B from desc_b.
// The operands' majors (imm-trans-a, imm-trans-b): register A takes B N-major; shared A takes
// both K-major, or, kMn, A M-major ([k][m]) with B N-major ([k][n]).
template <bool kBf16, bool kRegA, int N, bool kMn = false>
__device__ __forceinline__ void wgmma(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_a, uint64_t desc_b) {
    static_assert(N == 64 || N == 128, "wgmma n: 64 or 128");
    static_assert(!(kRegA && kMn), "register A is K-major");
    constexpr int kTrans = kMn ? 1 : 0;
    (void)a;
    (void)desc_a;
    if constexpr (kBf16) {
        SINKLESS_WGMMA_BOTH("bf16")
    } else {
        SINKLESS_WGMMA_BOTH("f16")
    }
}
#undef SINKLESS_D8
#undef SINKLESS_D32
#undef SINKLESS_D64
#undef SINKLESS_R32
#undef SINKLESS_R64
#undef SINKLESS_WGMMA_SS
#undef SINKLESS_WGMMA_RS
#undef SINKLESS_WGMMA_BOTH
#undef SINKLESS_SM90A_ASM

#else  // the CPU emulator

template <class V>
__device__ __forceinline__ void st_shared(V* smem, V v) {
    static_assert(sizeof(V) <= 16 && (sizeof(V) & (sizeof(V) - 1)) == 0, "st.shared of 1, 2, 4, 8 or 16 bytes");
    sim::st_shared(smem, &v, sizeof(V));
}
template <class V>
__device__ __forceinline__ V ld_shared(const V* smem) {
    static_assert(sizeof(V) <= 16 && (sizeof(V) & (sizeof(V) - 1)) == 0, "ld.shared of 1, 2, 4, 8 or 16 bytes");
    V v;
    sim::ld_shared(&v, smem, sizeof(V));
    return v;
}
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, bool full) {
    sim::cp_async_16(smem_dst, gmem_src, full);
}
__device__ __forceinline__ void red_add_f32x2(float* gmem, float v0, float v1) { sim::red_add_f32x2(gmem, v0, v1); }
__device__ __forceinline__ void cp_async_commit() { sim::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    static_assert(N >= 0, "cp.async.wait_group takes a non-negative count");
    sim::cp_async_wait(N);
}
__device__ __forceinline__ void cp_async_wait_all() { sim::cp_async_wait_all(); }
__device__ __forceinline__ void bar_sync(uint32_t id, uint32_t threads) { sim::named_barrier(id, threads, true); }
__device__ __forceinline__ void bar_arrive(uint32_t id, uint32_t threads) { sim::named_barrier(id, threads, false); }

__device__ __forceinline__ void ldmatrix_x1(uint32_t (&r)[1], const void* smem) { sim::ldmatrix(r, 1, false, smem); }
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem) { sim::ldmatrix(r, 2, false, smem); }
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) { sim::ldmatrix(r, 4, false, smem); }
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t (&r)[1], const void* smem) { sim::ldmatrix(r, 1, true, smem); }
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem) { sim::ldmatrix(r, 2, true, smem); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) { sim::ldmatrix(r, 4, true, smem); }
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    sim::ldmatrix(r, 4, false, dynamic_smem<unsigned char>() + addr);
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    sim::ldmatrix(r, 4, true, dynamic_smem<unsigned char>() + addr);
}

__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    sim::mma_m16n8k16(d, a, b, false);
}
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    sim::mma_m16n8k16(d, a, b, true);
}

__device__ __forceinline__ float ex2_approx(float x) { return sim::ex2_approx(x); }
__device__ __forceinline__ float tanh_approx(float x) { return sim::tanh_approx(x); }
__device__ __forceinline__ float rcp_approx(float x) { return sim::rcp_approx(x); }

__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
    return uint32_t(sim::f32_to_f16(lo)) | uint32_t(sim::f32_to_f16(hi)) << 16;
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    return uint32_t(sim::f32_to_bf16(lo)) | uint32_t(sim::f32_to_bf16(hi)) << 16;
}
__device__ __forceinline__ uint16_t f32_to_f16(float x) { return sim::f32_to_f16(x); }
__device__ __forceinline__ uint16_t f32_to_bf16(float x) { return sim::f32_to_bf16(x); }
__device__ __forceinline__ float f16_to_f32(uint16_t h) { return sim::f16_to_f32(h); }
__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return sim::bf16_to_f32(h); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return sim::smem_address(p); }

constexpr bool kHasWgmma = true;
__device__ __forceinline__ void trap() { __builtin_trap(); }
__device__ __forceinline__ void wgmma_fence() { sim::wgmma_fence(); }
__device__ __forceinline__ void wgmma_commit() { sim::wgmma_commit(); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    static_assert(N >= 0, "wgmma.wait_group takes a non-negative count");
    sim::wgmma_wait(N);
}
__device__ __forceinline__ void fence_proxy_async() { sim::fence_proxy_async(); }
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) { sim::mbarrier_init(bar, count); }
__device__ __forceinline__ void fence_mbarrier_init() {}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) { sim::mbarrier_arrive(bar, 0); }
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) { sim::mbarrier_arrive(bar, bytes); }
// the emulator's wait parks the thread until the phase completes instead of polling
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) { sim::mbarrier_wait(bar, parity); }
__device__ __forceinline__ void tma_load_4d(void* smem_dst, const sinkless_tma_map* map, int c0, int c1, int c2, int c3,
                                            uint64_t* bar) {
    const int32_t c[4] = {c0, c1, c2, c3};
    sim::tma_load(smem_dst, map, c, 4, bar);
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
    static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24 .. 256, a multiple of 8");
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
    static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24 .. 256, a multiple of 8");
}
// the emulator's products hold pointers to the operands, so the host compiler keeps them in memory
template <class X>
__device__ __forceinline__ void fence_operand(X&) {}
template <bool kBf16, bool kRegA, int N, bool kMn = false>
__device__ __forceinline__ void wgmma(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_a, uint64_t desc_b) {
    static_assert(N == 64 || N == 128, "wgmma n: 64 or 128");
    static_assert(!(kRegA && kMn), "register A is K-major");
    sim::wgmma(d, N, kRegA ? a : nullptr, desc_a, desc_b, kMn, kRegA || kMn, kBf16);
}

#endif

}  // namespace ptx
}  // namespace sinkless
