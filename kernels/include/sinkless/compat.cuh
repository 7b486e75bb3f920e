// The first include of every kernel file: lets the same CUDA source compile with nvcc and, for
// the CPU emulator, with the host C++ compiler (g++ -x c++ -std=c++17).
//
// Under nvcc it only provides sinkless::dynamic_smem<T>(). On the host it maps the CUDA
// keywords, built-in variables and intrinsics the kernels use onto the emulator in
// kernels/sim: threadIdx and friends read the running fiber's coordinates, __syncthreads()
// is a block barrier, shuffles, votes and __syncwarp are warp rendezvous, atomicAdd is a real atomic
// (blocks run on several OS threads). Kernels use dynamic shared memory only; __shared__ still
// compiles on the host (as a per-OS-thread static, shared by the block's fibers).
#pragma once

#include <stdint.h>

#if defined(__CUDACC__)

namespace sinkless {
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
    extern __shared__ __align__(128) unsigned char sinkless_dyn_smem[];
    return reinterpret_cast<T*>(sinkless_dyn_smem);
}
}  // namespace sinkless

#else

#include <math.h>

#include "../../sim/sim.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local

#define threadIdx (::sinkless::sim::tls_thread->thread_idx)
#define blockIdx (::sinkless::sim::tls_block->block_idx)
#define blockDim (::sinkless::sim::tls_block->block_dim)
#define gridDim (::sinkless::sim::tls_block->grid_dim)
constexpr int warpSize = 32;

// The call site names the barrier: threads waiting at two different __syncthreads() are a
// divergent-barrier error in the emulator.
#define __syncthreads() ::sinkless::sim::syncthreads(__FILE__, __LINE__)

inline void __syncwarp(unsigned mask = 0xffffffffu) { ::sinkless::sim::syncwarp(mask); }

inline unsigned __shfl_sync(unsigned mask, unsigned v, int src_lane, int width = 32) {
    return ::sinkless::sim::shfl(mask, v, ::sinkless::sim::kShflIdx, unsigned(src_lane), width);
}
inline int __shfl_sync(unsigned mask, int v, int src_lane, int width = 32) {
    return int(__shfl_sync(mask, unsigned(v), src_lane, width));
}
inline float __shfl_sync(unsigned mask, float v, int src_lane, int width = 32) {
    return ::sinkless::sim::bits_float(__shfl_sync(mask, ::sinkless::sim::float_bits(v), src_lane, width));
}

inline unsigned __shfl_xor_sync(unsigned mask, unsigned v, int lane_mask, int width = 32) {
    return ::sinkless::sim::shfl(mask, v, ::sinkless::sim::kShflXor, unsigned(lane_mask), width);
}
inline int __shfl_xor_sync(unsigned mask, int v, int lane_mask, int width = 32) {
    return int(__shfl_xor_sync(mask, unsigned(v), lane_mask, width));
}
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32) {
    return ::sinkless::sim::bits_float(__shfl_xor_sync(mask, ::sinkless::sim::float_bits(v), lane_mask, width));
}

inline unsigned __shfl_down_sync(unsigned mask, unsigned v, unsigned delta, int width = 32) {
    return ::sinkless::sim::shfl(mask, v, ::sinkless::sim::kShflDown, delta, width);
}
inline int __shfl_down_sync(unsigned mask, int v, unsigned delta, int width = 32) {
    return int(__shfl_down_sync(mask, unsigned(v), delta, width));
}
inline float __shfl_down_sync(unsigned mask, float v, unsigned delta, int width = 32) {
    return ::sinkless::sim::bits_float(__shfl_down_sync(mask, ::sinkless::sim::float_bits(v), delta, width));
}

inline unsigned __shfl_up_sync(unsigned mask, unsigned v, unsigned delta, int width = 32) {
    return ::sinkless::sim::shfl(mask, v, ::sinkless::sim::kShflUp, delta, width);
}
inline int __shfl_up_sync(unsigned mask, int v, unsigned delta, int width = 32) {
    return int(__shfl_up_sync(mask, unsigned(v), delta, width));
}
inline float __shfl_up_sync(unsigned mask, float v, unsigned delta, int width = 32) {
    return ::sinkless::sim::bits_float(__shfl_up_sync(mask, ::sinkless::sim::float_bits(v), delta, width));
}

inline unsigned __ballot_sync(unsigned mask, int predicate) { return ::sinkless::sim::ballot(mask, predicate); }
inline int __any_sync(unsigned mask, int predicate) { return ::sinkless::sim::ballot(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) { return ::sinkless::sim::ballot(mask, predicate) == mask; }

inline float atomicAdd(float* address, float value) { return ::sinkless::sim::atomic_add(address, value); }

inline unsigned __float_as_uint(float f) { return ::sinkless::sim::float_bits(f); }
inline float __uint_as_float(unsigned u) { return ::sinkless::sim::bits_float(u); }
inline int __float_as_int(float f) { return int(::sinkless::sim::float_bits(f)); }
inline float __int_as_float(int i) { return ::sinkless::sim::bits_float(unsigned(i)); }

namespace sinkless {
template <typename T>
inline T* dynamic_smem() {
    return reinterpret_cast<T*>(::sinkless::sim::tls_block->smem);
}
}  // namespace sinkless

#endif
