// Element-type traits: f16 and bf16 held as raw uint16_t, so the same kernel text compiles
// with nvcc and with the host compiler (no cuda_fp16.h). Each trait names the conversions and
// the tensor-core product for its type; kernels are templated on the trait.
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"

namespace sinkless {

struct f16_traits {
    using storage = uint16_t;
    static constexpr bool kBf16 = false;
    static __device__ __forceinline__ float to_f32(uint16_t x) { return ptx::f16_to_f32(x); }
    static __device__ __forceinline__ uint16_t from_f32(float x) { return ptx::f32_to_f16(x); }
    static __device__ __forceinline__ uint32_t pack2(float lo, float hi) { return ptx::pack_f16x2(lo, hi); }
    // d += a * b on a 16x8x16 tile, f32 accumulate.
    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
        ptx::mma_m16n8k16_f16(d, a, b);
    }
};

struct bf16_traits {
    using storage = uint16_t;
    static constexpr bool kBf16 = true;
    static __device__ __forceinline__ float to_f32(uint16_t x) { return ptx::bf16_to_f32(x); }
    static __device__ __forceinline__ uint16_t from_f32(float x) { return ptx::f32_to_bf16(x); }
    static __device__ __forceinline__ uint32_t pack2(float lo, float hi) { return ptx::pack_bf16x2(lo, hi); }
    static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
        ptx::mma_m16n8k16_bf16(d, a, b);
    }
};

}  // namespace sinkless
