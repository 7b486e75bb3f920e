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

#else  // the CPU emulator

__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, bool full) {
    sim::cp_async_16(smem_dst, gmem_src, full);
}
__device__ __forceinline__ void cp_async_commit() { sim::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    static_assert(N >= 0, "cp.async.wait_group takes a non-negative count");
    sim::cp_async_wait(N);
}
__device__ __forceinline__ void cp_async_wait_all() { sim::cp_async_wait_all(); }

__device__ __forceinline__ void ldmatrix_x1(uint32_t (&r)[1], const void* smem) { sim::ldmatrix(r, 1, false, smem); }
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem) { sim::ldmatrix(r, 2, false, smem); }
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) { sim::ldmatrix(r, 4, false, smem); }
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t (&r)[1], const void* smem) { sim::ldmatrix(r, 1, true, smem); }
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem) { sim::ldmatrix(r, 2, true, smem); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) { sim::ldmatrix(r, 4, true, smem); }

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

#endif

}  // namespace ptx
}  // namespace sinkless
