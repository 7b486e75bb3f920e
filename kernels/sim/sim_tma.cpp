// Hopper's asynchronous machinery in the emulator: mbarriers (arrivals, transaction bytes,
// phases, parity waits), tensor copies through a tensor map (cp.async.bulk.tensor, tiled, with
// the 128-byte swizzle and zero fill) and named barriers (bar.sync / bar.arrive).
//
// mbarrier (PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier"): init
// sets the arrival count of every phase; a phase completes when that many arrivals have come and
// its transaction count, raised by expect-tx and lowered by the bytes copies complete on it, is
// back at zero; the next phase then starts with the same count. A wait on parity p returns once
// the barrier's current phase has a parity other than p, i.e. the phase of parity p before it
// has completed. Here a waiting thread parks until then instead of polling. The state lives
// beside the block (Worker::mbarriers) and the barrier's 8 bytes hold a tag that every use
// checks, so a kernel that writes over a live barrier, or uses one it never initialised, fails.
// Other misuse that the hardware leaves undefined fails too: an arrival past the count. An
// arrival that completes a phase lets the threads it releases run first.
//
// Tensor copies: the box is read from global memory when the copy is issued (inputs do not
// change during a launch) and lands in shared memory as late as the schedule allows, when no
// thread of the block can run any more; only then do its bytes complete on the barrier. So a
// thread that reads the destination without waiting for the barrier reads the 0xFF poison or the
// previous tile. The opposite mistake, a copy issued into a buffer that a wgmma product still in
// flight reads, fails the launch at the copy, and a product that reads a destination whose copy
// has not landed fails at its retirement (sim_wgmma.cpp). A block that exits with copies in flight
// fails as well, and so does a copy landing on bytes that plain stores or cp.async wrote after
// the last fence.proxy.async (the proxies, sim_wgmma.cpp). Layout (CUDA driver API,
// cuTensorMapEncodeTiled; PTX ISA, "Tensor Copy"): box
// element (e0, .., e4) of the box at coordinates (c0, .., c4) is tensor element (c + e), zero when
// any coordinate is outside [0, dim); the destination holds the box row-major with e0 fastest,
// and the 128-byte swizzle moves the 16-byte chunk at shared-window address a to
// a ^ (((a >> 7) & 7) << 4), as wgmma's descriptors read it (sim_wgmma.cpp).
//
// Named barriers: bar.sync id, n waits until n threads (whole warps) have arrived at barrier id,
// counting bar.arrive, which does not wait. Ids 1 .. 15; 0 is __syncthreads', which the emulator
// keeps apart (a kernel mixing the two fails).
#include "sim_internal.h"

#include "sinkless/tma_params.h"

#include <stdio.h>

#include <algorithm>

namespace sinkless {
namespace sim {

namespace {

constexpr uint64_t kTag = 0x6d62617272696572ull;  // "mbarrier"

uint64_t tag_of(uint32_t offset) { return kTag ^ offset; }

Mbarrier* find(Worker& w, uint32_t offset) {
    for (Mbarrier& b : w.mbarriers) {
        if (b.offset == offset) return &b;
    }
    return nullptr;
}

// The shared-memory offset of an mbarrier's 8 bytes, which must be 8-byte aligned.
uint32_t barrier_offset(uint64_t* bar, const char* what) { return shared_offset(bar, 8, what); }

// The live barrier at bar, its tag intact.
Mbarrier& barrier_at(uint64_t* bar, const char* what) {
    const uint32_t off = barrier_offset(bar, what);
    Mbarrier* b = find(*tls_worker, off);
    if (!b) fail(SINKLESS_SIM_ERR_CONFIG, "%s: no mbarrier was initialised at shared byte %u", what, off);
    uint64_t t;
    memcpy(&t, shared_at(*tls_worker, off), 8);
    if (t != tag_of(off)) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s: the mbarrier at shared byte %u was overwritten by ordinary stores", what, off);
    }
    return *b;
}

// Completes the phase when nothing is missing, and wakes its waiters (to run next when
// `first`); returns whether it woke any.
bool settle(Worker& w, Mbarrier& b, bool first) {
    if (b.pending != 0 || b.tx != 0) return false;
    ++b.phase;
    b.pending = b.count;
    b.released_vc.resize(b.arrived_vc.size());
    for (size_t i = 0; i < b.arrived_vc.size(); ++i) {
        b.released_vc[i] = std::max(b.released_vc[i], b.arrived_vc[i]);
        b.arrived_vc[i] = 0;
    }
    const bool woke = !b.waiters.empty();
    for (Fiber* f : b.waiters) {
        f->state = FiberState::kRunnable;
        if (first) {
            w.push_front(f);
        } else {
            w.push(f);
        }
    }
    b.waiters.clear();
    return woke;
}

void land(Worker& w, const BulkCopy& c) {
    const size_t n = c.image.size();
    for (size_t j = 0; j < n; j += 16) {
        const uint32_t a = c.dst + uint32_t(j);
        const uint32_t x = a ^ (((a >> 7) & 7u) << 4);
        // a generic write the async proxy has not seen races with this copy (sim_wgmma.cpp)
        if (memcmp(shared_at(w, x), w.async_view.data() + x, 16) != 0) {
            w.status = SINKLESS_SIM_ERR_PROXY;
            snprintf(w.msg, sizeof w.msg,
                     "block (%u,%u,%u): the tensor copy of thread %u lands on shared bytes [%u, %u), written through "
                     "the generic proxy after the last fence.proxy.async: which write wins is undefined",
                     w.view.block_idx.x, w.view.block_idx.y, w.view.block_idx.z, c.issuer, x, x + 16);
            return;
        }
        memcpy(shared_at(w, x), c.image.data() + j, 16);
        memcpy(w.async_view.data() + x, c.image.data() + j, 16);
        stamp_write(w, nullptr, x, 16);
    }
    land_copy(w, c.dst, n);
    Mbarrier* b = find(w, c.bar);
    uint64_t t = 0;
    if (b) memcpy(&t, shared_at(w, c.bar), 8);
    if (!b || t != tag_of(c.bar)) {
        w.status = SINKLESS_SIM_ERR_CONFIG;
        snprintf(w.msg, sizeof w.msg,
                 "block (%u,%u,%u): a tensor copy of thread %u completes on the mbarrier at shared byte %u, which was "
                 "overwritten before the copy landed",
                 w.view.block_idx.x, w.view.block_idx.y, w.view.block_idx.z, c.issuer, c.bar);
        return;
    }
    b->tx -= int64_t(n);
    settle(w, *b, false);
}

}  // namespace

void reset_async_state(Worker& w) {
    w.mbarriers.clear();
    w.bulk.clear();
    for (NamedBarrier& b : w.named) {
        b.threads = 0;
        b.arrived = 0;
        b.waiters.clear();
    }
}

bool land_bulk_copies(Worker& w) {
    if (w.bulk.empty()) return false;
    size_t exited = 0;
    for (const Fiber& f : w.fibers) exited += f.state == FiberState::kExited;
    if (exited == w.fibers.size()) {
        const BulkCopy& c = w.bulk.front();
        w.status = SINKLESS_SIM_ERR_CONFIG;
        snprintf(w.msg, sizeof w.msg,
                 "block (%u,%u,%u) exited with %zu tensor copies in flight (the first by thread %u into shared byte %u, "
                 "completing on the mbarrier at shared byte %u): wait for them before the block ends",
                 w.view.block_idx.x, w.view.block_idx.y, w.view.block_idx.z, w.bulk.size(), c.issuer, c.dst, c.bar);
        return true;
    }
    std::vector<BulkCopy> copies;
    copies.swap(w.bulk);
    for (const BulkCopy& c : copies) {
        land(w, c);
        if (w.status != SINKLESS_SIM_OK) break;
    }
    return true;
}

void describe_async_waits(const Worker& w, char* msg, size_t len, size_t* used) {
    auto add = [&](const char* fmt, auto... args) {
        if (*used >= len) return;
        const int k = snprintf(msg + *used, len - *used, fmt, args...);
        if (k > 0) *used += size_t(k);
    };
    for (const Fiber& f : w.fibers) {
        if (f.state != FiberState::kAtMbarrier) continue;
        size_t waiting = 0;
        for (const Fiber& g : w.fibers) waiting += g.state == FiberState::kAtMbarrier && g.wait_at == f.wait_at;
        for (const Mbarrier& b : w.mbarriers) {
            if (b.offset != f.wait_at) continue;
            add("%zu threads (first (%u,%u,%u)) wait on the mbarrier at shared byte %u for parity %u, in phase %llu "
                "with %u of %u arrivals and %lld transaction bytes missing; ",
                waiting, f.view.thread_idx.x, f.view.thread_idx.y, f.view.thread_idx.z, b.offset, f.wait_parity,
                static_cast<unsigned long long>(b.phase), b.pending, b.count, static_cast<long long>(b.tx));
        }
        break;
    }
    for (int id = 1; id < kNamedBarriers; ++id) {
        const NamedBarrier& b = w.named[id];
        if (b.arrived == 0) continue;
        add("named barrier %d has %u of %u threads; ", id, b.arrived, b.threads);
    }
}

void mbarrier_init(uint64_t* bar, uint32_t count) {
    const uint32_t off = barrier_offset(bar, "mbarrier.init");
    if (count == 0 || count >= (1u << 20)) fail(SINKLESS_SIM_ERR_CONFIG, "mbarrier.init: count %u is not in 1 .. 2^20 - 1", count);
    Worker& w = *tls_worker;
    Mbarrier* b = find(w, off);
    if (!b) {
        w.mbarriers.push_back(Mbarrier{});
        b = &w.mbarriers.back();
    }
    if (!b->waiters.empty()) fail(SINKLESS_SIM_ERR_CONFIG, "mbarrier.init at shared byte %u while threads wait on it", off);
    *b = Mbarrier{off, count, count, 0, 0, {}, {}, {}};
    const uint64_t t = tag_of(off);
    memcpy(shared_at(w, off), &t, 8);
}

void mbarrier_arrive(uint64_t* bar, uint32_t tx_bytes) {
    Mbarrier& b = barrier_at(bar, "mbarrier.arrive");
    if (b.pending == 0) {
        fail(SINKLESS_SIM_ERR_CONFIG,
             "mbarrier.arrive at shared byte %u: phase %llu already has its %u arrivals (and waits for %lld bytes)",
             b.offset, static_cast<unsigned long long>(b.phase), b.count, static_cast<long long>(b.tx));
    }
    b.tx += tx_bytes;
    --b.pending;
    release_into(*tls_worker, *tls_fiber, b.arrived_vc);
    // The threads this arrival releases run at once, before the arriving thread goes on: a
    // thread that arrives before it is done with what the barrier hands over (a buffer whose
    // readers have not retired) is then caught by the next owner's first use of it.
    if (settle(*tls_worker, b, true)) {
        Fiber* f = tls_fiber;
        tls_worker->push(f);
        suspend(f);
    }
}

void mbarrier_wait(uint64_t* bar, uint32_t parity) {
    Fiber* f = tls_fiber;
    for (;;) {
        Mbarrier& b = barrier_at(bar, "mbarrier.try_wait.parity");
        if ((b.phase & 1u) != (parity & 1u)) {
            acquire_from(*tls_worker, *f, b.released_vc);
            return;
        }
        b.waiters.push_back(f);
        f->state = FiberState::kAtMbarrier;
        f->wait_at = b.offset;
        f->wait_parity = parity & 1u;
        suspend(f);
    }
}

void tma_load(void* smem_dst, const void* map, const int32_t* coords, int rank, uint64_t* bar) {
    const sinkless_tma_desc& d = *static_cast<const sinkless_tma_desc*>(map);
    const char* what = "cp.async.bulk.tensor";
    if (d.rank != uint32_t(rank)) fail(SINKLESS_SIM_ERR_CONFIG, "%s.%dd with a tensor map of rank %u", what, rank, d.rank);
    if (uintptr_t(d.base) % 16 != 0) fail(SINKLESS_SIM_ERR_MISALIGNED, "%s: tensor base %p is not 16-byte aligned", what, d.base);
    uint64_t bytes = 2;
    for (int i = 0; i < rank; ++i) {
        if (d.box[i] == 0 || d.box[i] > 256) fail(SINKLESS_SIM_ERR_CONFIG, "%s: box[%d] = %u is not in 1 .. 256", what, i, d.box[i]);
        if (d.dims[i] == 0) fail(SINKLESS_SIM_ERR_CONFIG, "%s: dims[%d] is 0", what, i);
        if (i > 0 && (d.strides[i - 1] % 16 != 0 || d.strides[i - 1] >= (1ull << 40))) {
            fail(SINKLESS_SIM_ERR_CONFIG, "%s: stride %d of %llu bytes is not a multiple of 16 below 2^40", what, i,
                 static_cast<unsigned long long>(d.strides[i - 1]));
        }
        bytes *= d.box[i];
    }
    if (d.box[0] * 2 % 16 != 0 || d.box[0] * 2 > 128) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s: an inner box of %u bytes is not a multiple of 16 up to the 128-byte swizzle span",
             what, d.box[0] * 2);
    }
    const uint32_t dst = shared_offset(smem_dst, size_t(bytes), what);
    if (dst % 128 != 0) fail(SINKLESS_SIM_ERR_MISALIGNED, "%s: destination shared byte %u is not 128-byte aligned", what, dst);
    const Mbarrier& b = barrier_at(bar, what);
    Worker& w = *tls_worker;
    check_write_order(dst, size_t(bytes), what);
    start_copy(w, dst, size_t(bytes), tls_fiber->linear, true, what);
    BulkCopy c;
    c.dst = dst;
    c.bar = b.offset;
    c.issuer = tls_fiber->linear;
    c.image.resize(size_t(bytes));
    uint32_t box[SINKLESS_TMA_MAX_RANK] = {1, 1, 1, 1, 1};
    for (int i = 0; i < rank; ++i) box[i] = d.box[i];
    const unsigned char* base = static_cast<const unsigned char*>(d.base);
    size_t at = 0;
    for (uint32_t e4 = 0; e4 < box[4]; ++e4)
        for (uint32_t e3 = 0; e3 < box[3]; ++e3)
            for (uint32_t e2 = 0; e2 < box[2]; ++e2)
                for (uint32_t e1 = 0; e1 < box[1]; ++e1)
                    for (uint32_t e0 = 0; e0 < box[0]; ++e0, at += 2) {
                        const uint32_t e[SINKLESS_TMA_MAX_RANK] = {e0, e1, e2, e3, e4};
                        bool inside = true;
                        uint64_t off = 0;
                        for (int i = 0; i < rank; ++i) {
                            const int64_t x = int64_t(coords[i]) + int64_t(e[i]);
                            inside = inside && x >= 0 && uint64_t(x) < d.dims[i];
                            off += uint64_t(x) * (i == 0 ? 2 : d.strides[i - 1]);
                        }
                        if (inside) {
                            memcpy(&c.image[at], base + off, 2);
                        } else {
                            c.image[at] = c.image[at + 1] = 0;
                        }
                    }
    w.bulk.push_back(std::move(c));
}

void named_barrier(uint32_t id, uint32_t threads, bool wait) {
    Worker& w = *tls_worker;
    Fiber* f = tls_fiber;
    const char* what = wait ? "bar.sync" : "bar.arrive";
    if (id == 0 || id >= uint32_t(kNamedBarriers)) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s %u: named barriers are 1 .. 15 here (0 is __syncthreads')", what, id);
    }
    if (threads == 0 || threads % 32 != 0 || threads > w.threads) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s %u, %u: the count is not a multiple of 32 up to the block's %u threads", what, id,
             threads, w.threads);
    }
    NamedBarrier& b = w.named[id];
    if (b.arrived == 0) {
        b.threads = threads;
    } else if (b.threads != threads) {
        fail(SINKLESS_SIM_ERR_DEADLOCK, "%s %u, %u while %u threads wait there for a count of %u", what, id, threads,
             b.arrived, b.threads);
    }
    release_into(w, *f, b.vc);
    if (++b.arrived == b.threads) {
        for (Fiber* g : b.waiters) {
            acquire_from(w, *g, b.vc);
            g->state = FiberState::kRunnable;
            w.push(g);
        }
        if (wait) acquire_from(w, *f, b.vc);
        b.waiters.clear();
        b.arrived = 0;
        std::fill(b.vc.begin(), b.vc.end(), 0u);
        return;
    }
    if (!wait) return;
    b.waiters.push_back(f);
    f->state = FiberState::kAtNamedBarrier;
    f->wait_at = id;
    suspend(f);
}

}  // namespace sim
}  // namespace sinkless
