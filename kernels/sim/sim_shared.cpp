// Shared memory in the emulator: ptx::st_shared and ptx::ld_shared, the fault of every other
// access, and the order of the writes and reads, whatever the schedule.
//
// Every access seen. The window a kernel addresses shared memory through (dynamic_smem(), the
// block's view.smem) is inaccessible pages; the contents live in Worker::shared, which only the
// emulator touches. Kernels load and store through ptx::ld_shared and ptx::st_shared, the rest
// is the emulator's own (ldmatrix, the products' operands, cp.async and tensor copies landing,
// mbarriers), so a plain load or store of a kernel faults at once and fails the launch with
// SINKLESS_SIM_ERR_PLAIN_SHARED_ACCESS, naming the byte and whether it was read or written: the
// order checks below see every access of a kernel that passes.
//
// Clocks. Each thread counts its releases (arrivals at block barriers, named barriers and
// mbarriers) and keeps a vector clock over the block's threads: for each thread, how many of its
// releases it has acquired. A block barrier gives every thread the same clock
// (Worker::barrier_clock), so only named barriers (their waiters acquire every arrival,
// bar.arrive included) and mbarriers (a completed wait acquires the arrivals of every phase
// completed so far) make a thread its own copy. With them, an access is ordered after another
// thread's when the accessing thread has acquired a release the other made after it. Each check
// below fails with SINKLESS_SIM_ERR_RACE, whatever order the emulator happened to run the threads
// in, and names both sides.
//
// Read after write. Every element keeps its last writer and the writer's releases then
// (Worker::stamps; st_shared, or a cp.async landing at its issuer's wait). A read by threads R
// (one thread's ld.shared, the warp of an ldmatrix, the warpgroup of a product at its issue) of
// an element whose writer is not in R fails unless some reader is ordered after the write.
// Tensor copies are ordered by their mbarriers, not by a thread, so they are not checked here.
//
// Copies in flight. A cp.async lands at its issuer's wait and a tensor copy when no thread can
// run, and until then its 16-byte chunks are marked (Worker::copy_chunks): a read (ld.shared,
// ldmatrix, a product at its retirement) or a write (st.shared, another copy) of a marked chunk
// fails, since on the GPU the copy may land before or after it. With the two checks above, a
// missing wait fails whichever comes first in the emulator's schedule.
//
// Write after read. A write (st_shared, a cp.async or a tensor copy, checked at issue) checks
//   - the reads of other warps (ldmatrix, ld.shared): per warp and element, the least releases
//     of its lanes at its last read (Worker::warp_reads); the writer must be ordered after one
//     lane. This catches a double-buffered loop missing the barrier before it refills a stage,
//     whose copies land only at the next wait, after every warp has moved on, so that the answer
//     alone rarely shows it;
//   - the ld.shared reads of other lanes of the writer's own warp (the lanes of the stamp above):
//     under independent thread scheduling the lanes of a warp are ordered only by a __syncwarp
//     or a barrier, so the writer must be ordered after one reading lane. An ldmatrix needs
//     nothing: its .sync makes every lane wait until the whole warp has executed it;
//   - the wgmma products: a product reads its operands at some time between its issue and the
//     wait that retires it. Per warpgroup and element, the group number + 1 of the last product
//     reading it (Worker::wg_reads, marked at issue); per retired group, the least releases of
//     the warpgroup's threads at the retiring wait (Warpgroup::retired_at). A write into a
//     product still in flight fails; into a retired one's, unless the writer is of that
//     warpgroup (past its wait) or ordered after one of its threads' later releases.
//
// __syncwarp is a release by each of its lanes that all of them acquire, like a barrier of the
// warp; the other warp collectives (shuffles, votes, ldmatrix, mma) move no clock.
#include "sim_internal.h"

#include <stdio.h>

#include <algorithm>

namespace sinkless {
namespace sim {

void reset_shared_tracking(Worker& w) {
    if (w.smem_bytes) memset(w.shared.data(), 0xFF, w.smem_bytes);
    if (w.wg_reads_live) std::fill(w.wg_reads.begin(), w.wg_reads.end(), 0u);
    w.wg_reads_live = false;
    if (w.stamps.size() != w.smem_bytes / 2 + 1) w.stamps.assign(w.smem_bytes / 2 + 1, Worker::WriteStamp{0, 0, 0});
    const size_t reads = w.warps.size() * (w.smem_bytes / 2 + 1);
    if (w.warp_reads.size() != reads) w.warp_reads.assign(reads, Worker::ReadStamp{0, 0, 0});
    w.copy_chunks.assign(w.smem_bytes / 16 + 1, 0u);
    ++w.block_serial;  // stamps of earlier blocks no longer count
    w.barrier_clock.assign(w.fibers.size(), 0u);
    for (Fiber& f : w.fibers) {
        f.releases = 0;
        f.vc_private = false;
        f.vc.resize(w.fibers.size());
    }
    for (Warpgroup& g : w.warpgroups) {
        g.retired_below = 0;
        g.retired_at.clear();
    }
    for (NamedBarrier& b : w.named) b.vc.assign(w.fibers.size(), 0u);
}

namespace {

// Thread y's count of the releases of thread x it has acquired.
uint32_t clock_of(const Worker& w, const Fiber& y, uint32_t x) {
    if (x == y.linear) return y.releases;
    return y.vc_private ? y.vc[x] : w.barrier_clock[x];
}

// Whether f has acquired a release, beyond the first `releases`, of one of the threads
// [lo, lo + count): one made after a read by them when `releases` is their least count then.
bool acquired_since(const Worker& w, const Fiber& f, uint32_t lo, uint32_t count, uint32_t releases) {
    for (uint32_t y = lo; y < lo + count; ++y) {
        if (clock_of(w, f, y) > releases) return true;
    }
    return false;
}

}  // namespace

void release_into(Worker& w, Fiber& f, std::vector<uint32_t>& acc) {
    ++f.releases;
    const size_t n = w.fibers.size();
    acc.resize(n);
    const uint32_t* src = f.vc_private ? f.vc.data() : w.barrier_clock.data();
    for (size_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], src[i]);
    acc[f.linear] = std::max(acc[f.linear], f.releases);
}

void acquire_from(Worker& w, Fiber& f, const std::vector<uint32_t>& acc) {
    const size_t n = w.fibers.size();
    if (acc.size() < n) return;  // nothing was ever released into it
    if (!f.vc_private) {
        std::copy(w.barrier_clock.begin(), w.barrier_clock.end(), f.vc.begin());
        f.vc_private = true;
    }
    for (size_t i = 0; i < n; ++i) f.vc[i] = std::max(f.vc[i], acc[i]);
}

void block_barrier_clocks(Worker& w) {
    for (size_t i = 0; i < w.fibers.size(); ++i) {
        Fiber& f = w.fibers[i];
        w.barrier_clock[i] = ++f.releases;
        f.vc_private = false;
    }
}

void stamp_write(Worker& w, const Fiber* f, uint32_t off, size_t bytes) {
    const Worker::WriteStamp st = f ? Worker::WriteStamp{w.block_serial, f->releases, f->linear} : Worker::WriteStamp{0, 0, 0};
    for (uint32_t x = off / 2; x <= uint32_t((off + bytes - 1) / 2); ++x) w.stamps[x] = st;
}

void check_read_order(uint32_t x, uint32_t lo, uint32_t count, const char* what) {
    const Worker& w = *tls_worker;
    const Worker::WriteStamp& st = w.stamps[x / 2];
    if (st.block != w.block_serial || (st.thread >= lo && st.thread < lo + count)) return;
    for (uint32_t y = lo; y < lo + count; ++y) {
        if (clock_of(w, w.fibers[y], st.thread) > st.releases) return;
    }
    fail(SINKLESS_SIM_ERR_RACE,
         "%s by threads %u..%u reads shared byte %u, which thread %u wrote, and no reader has acquired a release "
         "of that thread made after the write: a __syncthreads, a named barrier or an mbarrier must order the write "
         "before the read",
         what, lo, lo + count - 1, x, st.thread);
}

void start_wgmma_reads(Worker& w) {
    const size_t n = w.warpgroups.size() * (w.smem_bytes / 2 + 1);
    if (w.wg_reads.size() != n) w.wg_reads.assign(n, 0u);
    w.wg_reads_live = true;
}

namespace {

// Stamps the shared elements [x0, x1) as read by the running thread's warp now, by ld.shared
// of the lanes in `lanes` (none for an ldmatrix). Lanes of an earlier stamp at the same releases
// stay: nothing has ordered their reads since.
void stamp_warp_read(Worker& w, uint32_t x0, uint32_t x1, uint32_t lanes) {
    const uint32_t warp = tls_fiber->warp;
    uint32_t releases = UINT32_MAX;
    for (uint32_t l = 32 * warp; l < std::min<size_t>(32 * warp + 32, w.fibers.size()); ++l) {
        releases = std::min(releases, w.fibers[l].releases);
    }
    Worker::ReadStamp* reads = w.warp_reads.data() + size_t(warp) * (w.smem_bytes / 2 + 1);
    for (uint32_t x = x0; x < x1; ++x) {
        const Worker::ReadStamp& old = reads[x];
        const uint32_t kept = old.block == w.block_serial && old.releases == releases ? old.lanes : 0u;
        reads[x] = Worker::ReadStamp{w.block_serial, releases, kept | lanes};
    }
}

}  // namespace

// The offset of [p, p + bytes) in shared memory, naturally aligned (`what` names the access).
uint32_t shared_offset(const void* p, size_t bytes, const char* what) {
    const uintptr_t a = uintptr_t(p), lo = uintptr_t(tls_block->smem);
    const size_t align = std::min<size_t>(bytes, 16);
    if (a % align != 0) {
        fail(SINKLESS_SIM_ERR_MISALIGNED, "%s of %zu bytes at %p, which is not %zu-byte aligned", what, bytes, p, align);
    }
    if (a < lo || a + bytes > lo + tls_worker->smem_bytes) {
        fail(SINKLESS_SIM_ERR_SHARED_ADDRESS, "%s of %zu bytes at %p, which is outside dynamic shared memory [%p, +%llu)",
             what, bytes, p, static_cast<const void*>(tls_block->smem),
             static_cast<unsigned long long>(tls_worker->smem_bytes));
    }
    return uint32_t(a - lo);
}

void start_copy(Worker& w, uint32_t off, size_t bytes, uint32_t issuer, bool tensor, const char* what) {
    check_not_in_flight(off, bytes, what);
    const uint32_t mark = (issuer + 1) | (tensor ? Worker::kTensorCopy : 0u);
    for (uint32_t c = off / 16; c <= uint32_t((off + bytes - 1) / 16); ++c) w.copy_chunks[c] = mark;
}

void land_copy(Worker& w, uint32_t off, size_t bytes) {
    for (uint32_t c = off / 16; c <= uint32_t((off + bytes - 1) / 16); ++c) w.copy_chunks[c] = 0;
}

void check_not_in_flight(uint32_t off, size_t bytes, const char* what) {
    const Worker& w = *tls_worker;
    for (uint32_t c = off / 16; c <= uint32_t((off + bytes - 1) / 16); ++c) {
        const uint32_t mark = w.copy_chunks[c];
        if (mark == 0) continue;
        const bool tensor = (mark & Worker::kTensorCopy) != 0;
        fail(SINKLESS_SIM_ERR_RACE,
             "%s touches shared bytes [%u, %zu), and the %s of thread %u into byte %u has not landed: %s must come "
             "first",
             what, off, off + bytes, tensor ? "tensor copy" : "cp.async", (mark & ~Worker::kTensorCopy) - 1, 16 * c,
             tensor ? "a wait on its mbarrier" : "its cp.async.wait_group (and a barrier, for another thread)");
    }
}

void ldmatrix_row_read(uint32_t off) {
    check_not_in_flight(off, 16, "ldmatrix");
    for (uint32_t e = 0; e < 8; ++e) check_read_order(off + 2 * e, 32 * tls_fiber->warp, 32, "ldmatrix");
    stamp_warp_read(*tls_worker, off / 2, off / 2 + 8, 0u);
}

namespace {

// A write by f after ld.shared reads by other lanes of its own warp: f must have acquired a
// release one of them made after its read (a __syncwarp of both, or a barrier).
void check_own_warp_reads(const Worker& w, const Fiber& f, uint32_t off, size_t bytes, const char* what) {
    const Worker::ReadStamp* reads = w.warp_reads.data() + size_t(f.warp) * (w.smem_bytes / 2 + 1);
    for (uint32_t x = off / 2; x <= uint32_t((off + bytes - 1) / 2); ++x) {
        const Worker::ReadStamp& st = reads[x];
        const uint32_t others = st.lanes & ~(1u << f.lane);
        if (st.block != w.block_serial || others == 0) continue;
        bool ordered = false;
        for (uint32_t l = 0; l < 32 && !ordered; ++l) {
            ordered = (others >> l & 1) && clock_of(w, f, 32 * f.warp + l) > st.releases;
        }
        if (ordered) continue;
        fail(SINKLESS_SIM_ERR_RACE,
             "%s by lane %u of warp %u writes shared bytes [%u, %zu), and byte %u was read by ld.shared of lane %u of "
             "the same warp, with nothing ordering the write after the read: the lanes of a warp run independently, "
             "so a __syncwarp (or a barrier) must come between",
             what, f.lane, f.warp, off, off + bytes, 2 * x, uint32_t(__builtin_ctz(others)));
    }
}

}  // namespace

void check_write_order(uint32_t off, size_t bytes, const char* what) {
    const Worker& w = *tls_worker;
    if (bytes == 0) return;
    const Fiber& f = *tls_fiber;
    const size_t stride = w.smem_bytes / 2 + 1;
    // After the reads of other warps: some lane of the reading warp must have released since,
    // and this thread acquired it.
    for (size_t v = 0; v < w.warps.size(); ++v) {
        if (v == f.warp) {
            check_own_warp_reads(w, f, off, bytes, what);
            continue;
        }
        const Worker::ReadStamp* reads = w.warp_reads.data() + v * stride;
        for (uint32_t x = off / 2; x <= uint32_t((off + bytes - 1) / 2); ++x) {
            const Worker::ReadStamp& st = reads[x];
            if (st.block != w.block_serial) continue;
            if (acquired_since(w, f, uint32_t(32 * v), 32, st.releases)) continue;
            fail(SINKLESS_SIM_ERR_RACE,
                 "%s writes shared bytes [%u, %zu), and byte %u was read by warp %zu (ldmatrix or ld.shared), which "
                 "has not released since in a way this thread acquired: a __syncthreads, a named barrier or an "
                 "mbarrier must order the write after the read",
                 what, off, off + bytes, 2 * x, v);
        }
    }
    if (!w.wg_reads_live) return;
    for (size_t g = 0; g < w.warpgroups.size(); ++g) {
        const uint32_t* reads = w.wg_reads.data() + g * stride;
        const Warpgroup& wg = w.warpgroups[g];
        const bool own = f.linear / 128 == g;
        for (uint32_t x = off / 2; x <= uint32_t((off + bytes - 1) / 2); ++x) {
            if (reads[x] == 0) continue;
            const uint32_t group = reads[x] - 1;
            if (group < wg.retired_below &&
                (own || acquired_since(w, f, uint32_t(128 * g), 128, wg.retired_at[group]))) {
                continue;
            }
            fail(SINKLESS_SIM_ERR_RACE,
                 "%s writes shared bytes [%u, %zu), and byte %u is read by wgmma group %u of warpgroup %zu, %s: %s", what,
                 off, off + bytes, 2 * x, group, g,
                 group < wg.retired_below ? "retired, but this thread is not ordered after that wait" : "still in flight",
                 own ? "wait for it (wgmma.wait_group) first"
                     : "a barrier (or an mbarrier its threads arrive on after their wait) must order the write after "
                       "the wgmma.wait_group that retires it");
        }
    }
}

void st_shared(void* dst, const void* src, size_t bytes) {
    Worker& w = *tls_worker;
    const uint32_t off = shared_offset(dst, bytes, "st.shared");
    check_not_in_flight(off, bytes, "st.shared");
    check_write_order(off, bytes, "st.shared");
    note_shared_access(off, uint32_t(bytes), kAccessStore, __builtin_return_address(0));
    memcpy(shared_at(w, off), src, bytes);
    stamp_write(w, tls_fiber, off, bytes);
}

void ld_shared(void* dst, const void* src, size_t bytes) {
    Worker& w = *tls_worker;
    const uint32_t off = shared_offset(src, bytes, "ld.shared");
    check_not_in_flight(off, bytes, "ld.shared");
    const uint32_t x0 = off / 2, x1 = uint32_t((off + bytes + 1) / 2);
    for (uint32_t x = x0; x < x1; ++x) check_read_order(2 * x, tls_fiber->linear, 1, "ld.shared");
    stamp_warp_read(w, x0, x1, 1u << tls_fiber->lane);
    note_shared_access(off, uint32_t(bytes), kAccessLoad, __builtin_return_address(0));
    memcpy(dst, shared_at(w, off), bytes);
}

int describe_window_fault(Worker* w, uintptr_t a, const char* how) {
    const uintptr_t lo = uintptr_t(w->view.smem);
    if (a < uintptr_t(w->smem_map) || a >= lo + w->smem_bytes) return -1;
    if (a < lo) {
        snprintf(w->msg, sizeof w->msg,
                 "block (%u,%u,%u): out-of-bounds %s at %p, %zu bytes before the start of dynamic shared memory",
                 w->view.block_idx.x, w->view.block_idx.y, w->view.block_idx.z, how, reinterpret_cast<void*>(a),
                 size_t(lo - a));
        return SINKLESS_SIM_ERR_OUT_OF_BOUNDS;
    }
    snprintf(w->msg, sizeof w->msg,
             "block (%u,%u,%u): a plain %s of shared byte %zu: kernels read shared memory through ptx::ld_shared and "
             "write it through ptx::st_shared, which the emulator checks against the accesses they race with; it "
             "cannot check any other",
             w->view.block_idx.x, w->view.block_idx.y, w->view.block_idx.z, how, size_t(a - lo));
    return SINKLESS_SIM_ERR_PLAIN_SHARED_ACCESS;
}

}  // namespace sim
}  // namespace sinkless
