// Shared state of the emulator's runtime files (host only, never seen by kernels): fibers and
// their contexts, warps, the per-OS-thread worker that runs blocks, and the fault bookkeeping
// that turns a guard-page hit into an error.
//
// Scheduling model. A worker runs one block at a time. Every CUDA thread of the block is a
// fiber; a fiber runs until it blocks (at __syncthreads, at a warp collective that still waits
// for lanes, or at exit) and then switches straight to the next fiber in the run queue, or back
// to the worker's scheduler when the queue is empty. The scheduler then either releases a
// barrier (every fiber waits at the same __syncthreads: requeue all in a fresh shuffled order),
// finishes the block (every fiber exited), or reports a deadlock (anything else).
#pragma once

#include "sim.h"
#include "sim_api.h"

#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

#if defined(__x86_64__) && !defined(SINKLESS_SIM_UCONTEXT)
#define SINKLESS_SIM_ASM_SWITCH 1
#else
#define SINKLESS_SIM_ASM_SWITCH 0
#include <ucontext.h>
#endif

namespace sinkless {
namespace sim {

// ---- fiber contexts and stacks (sim_fiber.cpp)

struct Context {
#if SINKLESS_SIM_ASM_SWITCH
    void* sp;  // the callee-saved registers and the resume address sit on the stack below sp
#else
    ucontext_t uc;
    void (*fn)(void*);
    void* arg;
#endif
};

// Prepares c to start fn(arg) on the stack [lo, lo + bytes) at its first switch-in.
void context_init(Context* c, unsigned char* lo, size_t bytes, void (*fn)(void*), void* arg);
void context_switch(Context* from, Context* to);

// Stacks of 128 KiB, each above a 64 KiB inaccessible guard. Kernels keep register arrays
// (float acc[64] and fragments) on the stack; the host compiler's frames for them are a few
// KiB, and only the touched pages cost memory. The guard is wide because a frame that
// overflows by more than the guard skips it and lands in the neighbouring fiber's stack.
constexpr size_t kStackBytes = 128 * 1024;
constexpr size_t kStackGuardBytes = 64 * 1024;

struct StackArena {
    unsigned char* base;  // first guard
    size_t count;         // stacks in the arena
    size_t stride;        // guard + stack
    size_t map_bytes;
    unsigned char* stack_lo(size_t i) const { return base + i * stride + (stride - kStackBytes); }
};

// Arenas are pooled across launches, so a worker's stacks are mapped (and their pages touched)
// once per process rather than once per launch.
StackArena* acquire_stacks(size_t count);
void release_stacks(StackArena* arena);

size_t page_bytes();

// ---- threads of a block (sim_runtime.cpp)

enum class FiberState : uint8_t { kRunnable, kAtBarrier, kAtWarp, kAtMbarrier, kAtNamedBarrier, kExited };

struct PendingCopy {
    uint32_t dst;  // shared-memory offset
    uint64_t group;
    unsigned char data[16];
};

struct Fiber {
    ThreadView view;
    Context ctx;
    FiberState state;
    uint32_t linear;  // x + y * bx + z * bx * by, as CUDA numbers threads into warps
    uint32_t lane;
    uint32_t warp;
    const char* barrier_file;  // the __syncthreads this fiber waits at
    int barrier_line;
    std::vector<PendingCopy> copies;  // issued cp.async not yet landed, in issue order
    uint64_t open_group;              // cp.async groups committed so far (= the open group's number)
    uint64_t wg_open_group;           // wgmma groups committed so far
    bool wg_fenced;                   // a wgmma.fence since the last wgmma.wait_group
    uint32_t wait_at;                 // kAtMbarrier: the barrier's shared offset; kAtNamedBarrier: its id
    uint32_t wait_parity;             // kAtMbarrier: the parity waited for
    // Its releases so far (arrivals at barriers), and for each thread of the block the releases
    // of it that this thread has acquired: `vc` when vc_private, else Worker::barrier_clock.
    uint32_t releases;
    bool vc_private;
    std::vector<uint32_t> vc;
};

// One lane's operands and results for the warp collective in progress.
struct WarpSlot {
    uint32_t in[10];  // shfl: value, lane arg, width; mma: a[4], b[2], c[4]
    const void* addr; // ldmatrix row address
    uint32_t out[4];
};

enum WarpOp : int {
    kOpNone = 0,
    kOpSyncwarp = 1,
    kOpShfl = 2,       // + ShflMode
    kOpLdmatrix = 8,   // + 2 * log2(count) + trans  (8..13)
    kOpMmaF16 = 16,
    kOpMmaBf16 = 17,
    kOpBallot = 18,
};
const char* warp_op_name(int op);

// One wgmma.mma_async of a warpgroup, issued and not yet retired by a wgmma.wait_group.
struct WgmmaOp {
    uint64_t group;  // the wgmma group it belongs to
    int n;
    bool reg_a, a_m_major, b_n_major, bf16;
    uint64_t desc_a, desc_b;
    const uint32_t* a[128];  // register A of each thread, read when the product retires
    float* d[128];           // each thread's accumulators, written when the op retires
};

// The wgmma rendezvous of a warpgroup (4 warps) and its products in flight.
struct Warpgroup {
    uint32_t arrived;  // threads waiting at the wgmma in progress
    WgmmaOp issuing;   // its operands, filled in as threads arrive
    Fiber* threads[128];
    std::vector<WgmmaOp> pending;
    uint32_t retired_below;  // every group below it has retired
    // Per retired group, the least releases of the warpgroup's threads at the wait that retired
    // it (sim_shared.cpp).
    std::vector<uint32_t> retired_at;
    uint32_t waiting;   // threads at the wgmma.wait_group in progress
    int wait_pending;   // its operand
    Fiber* waiters[128];
};

// An mbarrier of the block's shared memory (sim_tma.cpp). Its 8 bytes hold a tag the emulator
// checks at every use, so a kernel that overwrites a live barrier fails.
struct Mbarrier {
    uint32_t offset;   // shared-window offset of its 8 bytes
    uint32_t count;    // arrivals per phase
    uint32_t pending;  // arrivals still missing in the current phase
    int64_t tx;        // transaction bytes still missing (may go below 0: bytes may land first)
    uint64_t phase;    // phases completed
    std::vector<Fiber*> waiters;
    // The thread clocks (sim_shared.cpp) of the current phase's arrivals, and of every completed
    // phase's, merged.
    std::vector<uint32_t> arrived_vc;
    std::vector<uint32_t> released_vc;
};

// A tensor copy issued and not yet landed: its box, read from global memory at issue, row-major.
struct BulkCopy {
    uint32_t dst;  // shared-window offset of the destination
    uint32_t bar;  // the mbarrier its bytes complete on
    uint32_t issuer;
    std::vector<unsigned char> image;
};

struct NamedBarrier {
    uint32_t threads;  // the count its first arrival named
    uint32_t arrived;
    std::vector<Fiber*> waiters;
    std::vector<uint32_t> vc;  // the thread clocks of its arrivals so far, merged (sim_shared.cpp)
};
constexpr int kNamedBarriers = 16;

// What an ld.shared, st.shared or cp.async of a lane is, for the bank check (sim_banks.cpp).
enum SharedAccessKind : uint8_t { kAccessLoad, kAccessStore, kAccessCopy };

// The accesses of a warp's lanes that make one instruction on the GPU: the n-th ld.shared,
// st.shared or cp.async of each lane at one place in the kernel since the warp last converged
// (sim_banks.cpp).
struct SharedAccessGroup {
    uint32_t lanes;    // the lanes that made it
    uint32_t off[32];  // each lane's shared offset
};

// One place in the kernel (the return address of the emulator's access function, so one access
// of one kind and size) and the accesses made there since the warp last converged: per lane how
// many, and their groups.
struct SharedAccessSite {
    const void* site;
    uint32_t bytes;
    SharedAccessKind kind;
    uint32_t count[32];
    std::vector<SharedAccessGroup> groups;
};

struct Warp {
    uint32_t existing;  // lanes that exist in this block (the last warp may be partial)
    uint32_t arrived;   // lanes waiting at the collective in progress
    uint32_t mask;      // lanes that must arrive
    int op;
    Fiber* lanes[32];
    WarpSlot slot[32];
    // Shared-memory accesses since the warp last converged, by site (sim_banks.cpp): the first
    // live_sites entries are live; the rest keep their storage for reuse.
    std::vector<SharedAccessSite> access_sites;
    size_t live_sites;
};

// What the signal handler saw, for the message written after it jumped back.
struct FaultInfo {
    uintptr_t addr;
    int write;  // 1 write, 0 read, -1 unknown
};

struct Worker {
    // launch-wide
    sinkless_sim_entry entry;
    const void* params;
    uint64_t seed;
    uint64_t smem_bytes;
    uint32_t threads;
    // per block
    BlockView view;
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    std::vector<Warpgroup> warpgroups;  // whole warpgroups only (threads / 128)
    std::vector<Mbarrier> mbarriers;
    std::vector<BulkCopy> bulk;  // tensor copies in flight, in issue order
    NamedBarrier named[kNamedBarriers];
    std::vector<Fiber*> queue;  // ring buffer; a fiber is queued at most once
    size_t q_head = 0, q_len = 0;
    Context sched;
    uint64_t rng = 0;
    int status = SINKLESS_SIM_OK;
    char msg[768];
    // resources
    StackArena* stacks = nullptr;
    // The window kernels address dynamic shared memory through (view.smem): inaccessible pages,
    // so that every plain load or store of a kernel faults (sim_shared.cpp), and the guard page
    // after them.
    unsigned char* smem_map = nullptr;
    // Dynamic shared memory's contents, which only the emulator reads and writes: ld.shared and
    // st.shared, ldmatrix, the products' operands, cp.async and tensor copies, mbarriers
    // (shared_at).
    std::vector<unsigned char> shared;
    // Dynamic shared memory as the async proxy (wgmma operand reads, tensor copies) last saw
    // it: refreshed from `shared` by each fence.proxy.async (sim_wgmma.cpp).
    std::vector<unsigned char> async_view;
    // Per warpgroup and 16-bit element of shared memory, the wgmma group + 1 of the last product
    // of that warpgroup to read it, [warpgroup][element]; sized at the block's first product.
    std::vector<uint32_t> wg_reads;
    bool wg_reads_live = false;  // a product of this block has marked wg_reads
    // Per 16-bit element of shared memory, its last write by a thread: the block it was in
    // (block_serial), the thread and the thread's releases then (sim_shared.cpp).
    struct WriteStamp {
        uint32_t block;
        uint32_t releases;
        uint32_t thread;
    };
    std::vector<WriteStamp> stamps;
    // Per warp and 16-bit element, its last read by the warp (ldmatrix, ld.shared): the block
    // and the releases of the warp's lanes then (their minimum), [warp][element]; and the lanes
    // that read it by ld.shared at those releases (bit per lane; an ldmatrix adds none, its
    // .sync orders the warp's lanes around it).
    struct ReadStamp {
        uint32_t block;
        uint32_t releases;
        uint32_t lanes;
    };
    std::vector<ReadStamp> warp_reads;
    // Per 16-byte chunk of shared memory, the copy in flight into it (issued, not landed): 0 for
    // none, else 1 + its issuer, with kTensorCopy set for a tensor copy (sim_shared.cpp).
    std::vector<uint32_t> copy_chunks;
    static constexpr uint32_t kTensorCopy = 1u << 31;
    uint32_t block_serial = 0;
    // The thread clock every thread has after the last block barrier: each thread's releases.
    std::vector<uint32_t> barrier_clock;
    size_t smem_map_bytes = 0;
    unsigned char* altstack = nullptr;
    size_t altstack_bytes = 0;
    // fault recovery: the handler jumps back here only while armed
    sigjmp_buf jmp;
    volatile sig_atomic_t armed = 0;
    FaultInfo fault;

    void push(Fiber* f) {
        queue[(q_head + q_len) % queue.size()] = f;
        ++q_len;
    }
    void push_front(Fiber* f) {
        q_head = (q_head + queue.size() - 1) % queue.size();
        queue[q_head] = f;
        ++q_len;
    }
    Fiber* pop() {
        if (q_len == 0) return nullptr;
        Fiber* f = queue[q_head];
        q_head = (q_head + 1) % queue.size();
        --q_len;
        return f;
    }
    uint64_t next_random() {  // splitmix64: tiny, and good enough to shuffle a schedule
        uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Makes the fibers of a rendezvous runnable at the front of the queue, all of `fibers[0..n)`
    // but `self` (the one that completed it, still running), from a random one on so they do
    // not always resume in thread order.
    void wake_rest(Fiber* const* fibers, uint32_t n, uint32_t self) {
        const uint32_t start = uint32_t(next_random() % n);
        for (uint32_t k = 0; k < n; ++k) {
            const uint32_t i = (start + k) % n;
            if (i != self) {
                fibers[i]->state = FiberState::kRunnable;
                push_front(fibers[i]);
            }
        }
    }
};

extern __thread Worker* tls_worker;
extern __thread Fiber* tls_fiber;

// Parks the running fiber and runs the next queued one (or returns to the scheduler).
void suspend(Fiber* self);
// Records the block's error and abandons the running fiber; never returns.
[[noreturn]] void fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// The offset in dynamic shared memory of [p, p + bytes), which must lie in it, naturally aligned
// (to min(bytes, 16)); fails the running thread naming `what` otherwise (sim_shared.cpp).
uint32_t shared_offset(const void* p, size_t bytes, const char* what);

// ---- asynchronous barriers and tensor copies (sim_tma.cpp)

// Clears the block's barriers and copies before it starts.
void reset_async_state(Worker& w);
// Lands every tensor copy in flight (the scheduler calls it when no thread can run); returns
// whether there was one.
bool land_bulk_copies(Worker& w);
// Appends who waits at which mbarrier or named barrier to a deadlock message.
void describe_async_waits(const Worker& w, char* msg, size_t len, size_t* used);

// ---- shared-memory writes and their order after wgmma reads (sim_shared.cpp)

// Starts a block's tracking: nothing written (the 0xFF poison), nothing read, clocks at zero.
void reset_shared_tracking(Worker& w);
// The bytes of dynamic shared memory from offset off on, as the emulator keeps them.
inline unsigned char* shared_at(Worker& w, uint32_t off) { return w.shared.data() + off; }
// Fails the running thread when it may not write shared bytes [off, off + bytes) yet: a wgmma
// product, or another warp's ldmatrix or ld.shared, reads them that the thread is not ordered
// after (`what` names the write).
void check_write_order(uint32_t off, size_t bytes, const char* what);
// Marks the shared bytes [x, x + 2) as read by warpgroup g's product of `group`.
inline void mark_wgmma_read(Worker& w, uint32_t g, uint32_t x, uint32_t group) {
    uint32_t& r = w.wg_reads[size_t(g) * (w.smem_bytes / 2 + 1) + x / 2];
    if (r < group + 1) r = group + 1;
}
// A copy (cp.async, or a tensor copy when `tensor`) of thread `issuer` into shared bytes
// [off, off + bytes) is issued: fails when a copy is in flight there already, else marks them.
void start_copy(Worker& w, uint32_t off, size_t bytes, uint32_t issuer, bool tensor, const char* what);
// The copy into [off, off + bytes) has landed.
void land_copy(Worker& w, uint32_t off, size_t bytes);
// Fails the running thread when a copy in flight writes shared bytes [off, off + bytes), which
// `what` reads or writes now: it raced with the copy, whichever came first on the GPU.
void check_not_in_flight(uint32_t off, size_t bytes, const char* what);
// Sizes wg_reads for the block's warpgroups (at its first product) and marks it live.
void start_wgmma_reads(Worker& w);
// Thread clocks (sim_shared.cpp). A release (an arrival at a barrier) of f merges f's clock into
// acc; an acquire (a wait that a barrier completes) merges acc into f's.
void release_into(Worker& w, Fiber& f, std::vector<uint32_t>& acc);
void acquire_from(Worker& w, Fiber& f, const std::vector<uint32_t>& acc);
// Every thread releases at a block barrier and acquires the block's merged clock.
void block_barrier_clocks(Worker& w);
// Records that thread f wrote shared bytes [off, off + bytes) (st.shared, its cp.async landing);
// `f` null: a write no thread orders (a tensor copy: its mbarrier does).
void stamp_write(Worker& w, const Fiber* f, uint32_t off, size_t bytes);
// Fails the running thread when shared element x (a byte offset), read now by the threads
// [lo, lo + count) of the block (a warp at an ldmatrix, a warpgroup at a wgmma issue), was last
// written by a thread outside them that none of them is ordered after. `what` names the read.
void check_read_order(uint32_t x, uint32_t lo, uint32_t count, const char* what);
// The running thread's warp reads the 16 shared bytes at off by ldmatrix: checks their order
// after their writes, then stamps them as read.
void ldmatrix_row_read(uint32_t off);
// Describes a fault at a of the running block's shared window into w->msg (a plain load or
// store of a kernel, which the emulator cannot check) and returns the status; -1 when a is not in
// the window.
int describe_window_fault(Worker* w, uintptr_t a, const char* how);

// ---- bank conflicts of ld.shared, st.shared and cp.async (sim_banks.cpp)

// Records the running lane's access of [off, off + bytes) made at `site` in the kernel.
void note_shared_access(uint32_t off, uint32_t bytes, SharedAccessKind kind, const void* site);
// Checks the accesses of warp `index` since it last converged, then forgets them: returns
// SINKLESS_SIM_OK, or SINKLESS_SIM_ERR_BANK_CONFLICT with the first conflict described in msg.
int check_bank_conflicts(Warp& w, size_t index, char* msg, size_t len);
// Forgets the warp's accesses unchecked (a block's start).
void forget_shared_accesses(Warp& w);

// ---- memory: guard-paged buffers and the SIGSEGV handler (sim_memory.cpp)

void install_fault_handler();
// Describes w->fault (a guard-page hit or another bad address) into w->msg; returns the status.
int describe_fault(Worker* w);

}  // namespace sim
}  // namespace sinkless
