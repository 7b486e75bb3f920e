// The main loops shared by the kernels.
//
// double_buffered: while step i computes on shared-memory stage i % 2, the cp.async copies of
// step i + 1 fill the other stage.
//
//   load(i, stage): issues step i's copies into `stage` (cp.async, or ptx::st_shared stores to
//                   shared memory: those are ordered by the barrier below as well).
//   body(i, stage): computes on `stage`.
// Copies the caller issued before the call join step 0's group. On return no copy is pending
// from the loop (count == 0 still commits one empty group; wait_all before reusing memory).
// kAsyncProxy: the body reads the stage through the async proxy (wgmma), so each thread fences
// its landed copies into that proxy before the barrier that publishes them (both loops).
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"

namespace sinkless {

template <bool kAsyncProxy = false, class Load, class Body>
__device__ __forceinline__ void double_buffered(int count, Load&& load, Body&& body) {
    if (count > 0) load(0, 0);
    ptx::cp_async_commit();
    for (int i = 0; i < count; ++i) {
        const int stage = i & 1;
        if (i + 1 < count) {
            load(i + 1, stage ^ 1);
            ptx::cp_async_commit();
            ptx::cp_async_wait<1>();
        } else {
            ptx::cp_async_wait<0>();
        }
        if constexpr (kAsyncProxy) ptx::fence_proxy_async();
        __syncthreads();
        body(i, stage);
        // the next step's copies overwrite this stage
        __syncthreads();
    }
}

// kv_single_buffered: the attention forward's loop with one shared-memory buffer for K and one
// for V (FlashAttention-2's forward), half the memory of double buffering both: V's tile i
// lands while scores(i) multiplies Q by K's tile i and applies the activation, and K's tile
// i + 1 lands while finish(i) multiplies by V's tile i.
//   load_k(i), load_v(i): issue tile i's copies into the one buffer of each.
//   scores(i):            reads K's buffer;  finish(i): reads V's buffer.
// K's copy is issued between the two, when the scores have become P operands (half their
// registers), which is what keeps the copy's address arithmetic from spilling O.
// Copies the caller issued before the call join K's first group. Two barriers per step, as
// double_buffered: each frees the buffer that the copy issued right after it overwrites.
template <bool kAsyncProxy = false, class LoadK, class LoadV, class Scores, class Finish>
__device__ __forceinline__ void kv_single_buffered(int count, LoadK&& load_k, LoadV&& load_v, Scores&& scores,
                                                   Finish&& finish) {
    if (count > 0) load_k(0);
    ptx::cp_async_commit();
    for (int i = 0; i < count; ++i) {
        ptx::cp_async_wait<0>();
        if constexpr (kAsyncProxy) ptx::fence_proxy_async();
        // K's tile i has landed, and every warp is past finish(i - 1): V's buffer is free
        __syncthreads();
        load_v(i);
        ptx::cp_async_commit();
        scores(i);
        ptx::cp_async_wait<0>();
        if constexpr (kAsyncProxy) ptx::fence_proxy_async();
        // V's tile i has landed, and every warp is past scores(i): K's buffer is free
        __syncthreads();
        if (i + 1 < count) load_k(i + 1);
        ptx::cp_async_commit();
        finish(i);
    }
}

}  // namespace sinkless
