/* C API of the SIMT emulator: what the Rust emulator backend calls through FFI.
 *
 * A launch runs a kernel's host-compiled entry point once per CUDA thread of every block, each
 * thread a fiber, blocks spread over worker OS threads. Every failure the emulator can see
 * (launch configuration, shared memory over the limit, a barrier or warp collective that can
 * never complete, an access that hits a guard page, a misaligned or non-shared address given to
 * cp.async/ldmatrix, a shared-memory access racing another, a plain load or store of shared memory
 * the emulator could not check) comes back as a status code plus a message; a launch never hangs
 * on a barrier. (A kernel that loops forever without reaching a barrier still loops forever.)
 *
 * Thread safety: independent launches may run concurrently from different threads; buffers may
 * be allocated and freed from any thread. */
#ifndef SINKLESS_SIM_API_H
#define SINKLESS_SIM_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes of sinkless_sim_run. */
enum sinkless_sim_status {
    SINKLESS_SIM_OK = 0,
    SINKLESS_SIM_ERR_CONFIG = 1,          /* bad grid/block shape, null entry, warp op misuse */
    SINKLESS_SIM_ERR_SMEM_LIMIT = 2,      /* dynamic_smem_bytes > max_smem_bytes */
    SINKLESS_SIM_ERR_DEADLOCK = 3,        /* barrier/warp collective reached by part of its threads */
    SINKLESS_SIM_ERR_OUT_OF_BOUNDS = 4,   /* access hit the guard page of a buffer or of shared memory */
    SINKLESS_SIM_ERR_MISALIGNED = 5,      /* a shared-memory access (ld/st.shared, cp.async, ldmatrix, an
                                             mbarrier, a tensor copy) not naturally aligned */
    SINKLESS_SIM_ERR_SHARED_ADDRESS = 6,  /* such an access outside dynamic shared memory */
    SINKLESS_SIM_ERR_STACK_OVERFLOW = 7,  /* a CUDA thread overflowed its fiber stack */
    SINKLESS_SIM_ERR_RESOURCES = 8,       /* the host ran out of memory or threads */
    SINKLESS_SIM_ERR_PROXY = 9,           /* shared memory written by the generic proxy and then read or
                                             overwritten by the async proxy (wgmma, tensor copies) with no
                                             fence.proxy.async in between */
    SINKLESS_SIM_ERR_BANK_CONFLICT = 10,  /* an ldmatrix whose 8 row addresses of one matrix are not in 8
                                             distinct 16-byte slots of a 128-byte line, or an ld.shared,
                                             st.shared or cp.async that touches two words of one bank in
                                             one phase (a replay on the GPU) */
    SINKLESS_SIM_ERR_RACE = 11,           /* a shared-memory access not ordered after one it races with: a
                                             read of a write, or a write over a read (ld.shared, ldmatrix, a
                                             wgmma product), whatever the schedule */
    SINKLESS_SIM_ERR_PLAIN_SHARED_ACCESS = 12 /* a plain load or store of shared memory, not through
                                                 ptx::ld_shared / ptx::st_shared, which the emulator
                                                 checks (any other access faults) */
};

/* One kernel launch. */
typedef struct {
    uint32_t grid[3];            /* gridDim x, y, z: each >= 1 (y, z <= 65535) */
    uint32_t block[3];           /* blockDim x, y, z: each >= 1, product <= 1024 */
    uint64_t dynamic_smem_bytes; /* dynamic shared memory per block, poisoned with 0xFF at block start */
    uint64_t max_smem_bytes;     /* the device limit it is checked against (e.g. 232448 on sm_90) */
    uint64_t seed;               /* seeds the shuffled thread order; same seed, same schedule */
    uint32_t worker_threads;     /* OS threads running blocks; 0 = hardware concurrency */
} sinkless_sim_launch;

/* Calls the kernel with *(const Params*)params; generated next to each kernel instance. */
typedef void (*sinkless_sim_entry)(const void* params);

/* Runs one launch to completion. Returns SINKLESS_SIM_OK, or a sinkless_sim_status and a
 * NUL-terminated message in err (truncated to err_len; err may be NULL when err_len is 0). When
 * several blocks fail, the error of one of them is reported. */
int sinkless_sim_run(const sinkless_sim_launch* cfg, sinkless_sim_entry entry, const void* params,
                     char* err, size_t err_len);

/* A global-memory buffer whose end sits flush against an inaccessible guard page (when bytes is a
 * multiple of 16; otherwise up to 15 bytes of slack remain, since the start is 16-byte aligned),
 * so a kernel reading or writing past the end fails its launch with
 * SINKLESS_SIM_ERR_OUT_OF_BOUNDS. Contents start as zero. Returns NULL when out of memory.
 * bytes == 0 gives a valid pointer to the guard page itself. */
void* sinkless_sim_alloc(size_t bytes);

/* Frees a buffer from sinkless_sim_alloc; NULL is ignored. */
void sinkless_sim_free(void* p);

#ifdef __cplusplus
}
#endif

#endif /* SINKLESS_SIM_API_H */
