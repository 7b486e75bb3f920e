// The double-buffered main loop shared by every kernel: while step i computes on shared-memory
// stage i % 2, the cp.async copies of step i + 1 fill the other stage.
//
//   load(i, stage): issues step i's copies into `stage` (cp.async, or plain stores to shared
//                   memory: those are ordered by the barrier below as well).
//   body(i, stage): computes on `stage`.
// Copies the caller issued before the call join step 0's group. On return no copy is pending
// from the loop (count == 0 still commits one empty group; wait_all before reusing memory).
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"

namespace sinkless {

template <class Load, class Body>
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
        __syncthreads();
        body(i, stage);
        // the next step's copies overwrite this stage
        __syncthreads();
    }
}

}  // namespace sinkless
