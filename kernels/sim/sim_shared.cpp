// Shared-memory writes in the emulator: ptx::st_shared, the check that no store goes unseen, and
// the order of writes and the reads the emulator sees (wgmma operands, ldmatrix), whatever the
// schedule.
//
// Seen writes. Kernels store to shared memory through ptx::st_shared, and the emulator makes its
// own writes (cp.async and tensor copies landing, mbarrier.init), so it sees every write of a
// correct kernel. Worker::written_view is shared memory as those writes left it. Each block
// barrier, named barrier, fence.proxy.async and the block's end compares the two, and a byte that
// differs was written by a plain store, which the order check below cannot see: the launch fails
// with SINKLESS_SIM_ERR_UNSEEN_STORE, naming the byte.
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
// (the warp of an ldmatrix, the warpgroup of a product at its issue) of an element whose writer
// is not in R fails unless some reader is ordered after the write. Tensor copies are ordered by
// their mbarriers, not by a thread, and plain loads are not seen, so neither is checked here.
//
// Write after read. A write (st_shared, a cp.async or a tensor copy, checked at issue) checks
//   - the ldmatrix reads of other warps: per warp and element, the least releases of its lanes at
//     its last ldmatrix read (Worker::ldmatrix_reads); the writer must be ordered after one lane.
//     This catches a double-buffered loop missing the barrier before it refills a stage, whose
//     copies land only at the next wait, after every warp has moved on, so that the answer
//     alone rarely shows it;
//   - the wgmma products: a product reads its operands at some time between its issue and the
//     wait that retires it. Per warpgroup and element, the group number + 1 of the last product
//     reading it (Worker::wg_reads, marked at issue); per retired group, the least releases of
//     the warpgroup's threads at the retiring wait (Warpgroup::retired_at). A write into a
//     product still in flight fails; into a retired one's, unless the writer is of that
//     warpgroup (past its wait) or ordered after one of its threads' later releases.
//
// Warp collectives move no clock: no kernel here orders shared memory through one.
#include "sim_internal.h"

#include <stdio.h>

#include <algorithm>

namespace sinkless {
namespace sim {

void reset_shared_tracking(Worker& w) {
    if (w.smem_bytes) memset(w.written_view.data(), 0xFF, w.smem_bytes);
    if (w.wg_reads_live) std::fill(w.wg_reads.begin(), w.wg_reads.end(), 0u);
    w.wg_reads_live = false;
    if (w.stamps.size() != w.smem_bytes / 2 + 1) w.stamps.assign(w.smem_bytes / 2 + 1, Worker::WriteStamp{0, 0, 0});
    const size_t reads = w.warps.size() * (w.smem_bytes / 2 + 1);
    if (w.ldmatrix_reads.size() != reads) w.ldmatrix_reads.assign(reads, Worker::ReadStamp{0, 0});
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

void note_shared_write(Worker& w, uint32_t off, size_t bytes) {
    memcpy(w.written_view.data() + off, w.view.smem + off, bytes);
}

int64_t unseen_store(const Worker& w) {
    if (w.smem_bytes == 0 || memcmp(w.view.smem, w.written_view.data(), w.smem_bytes) == 0) return -1;
    const auto at = std::mismatch(w.view.smem, w.view.smem + w.smem_bytes, w.written_view.data());
    return int64_t(at.first - w.view.smem);
}

namespace {

void describe_unseen(const Worker& w, int64_t at, const char* where, char* buf, size_t len) {
    snprintf(buf, len,
             "shared byte %lld holds %02x, written by a store the emulator did not see (it last wrote %02x there), found "
             "%s: kernels store to shared memory through ptx::st_shared, which the emulator checks",
             static_cast<long long>(at), w.view.smem[at], w.written_view[size_t(at)], where);
}

}  // namespace

int report_unseen_store(Worker& w, int64_t at, const char* where) {
    char what[384];
    describe_unseen(w, at, where, what, sizeof what);
    snprintf(w.msg, sizeof w.msg, "block (%u,%u,%u): %s", w.view.block_idx.x, w.view.block_idx.y, w.view.block_idx.z,
             what);
    w.status = SINKLESS_SIM_ERR_UNSEEN_STORE;
    return w.status;
}

void check_no_unseen_store(const char* where) {
    const Worker& w = *tls_worker;
    const int64_t at = unseen_store(w);
    if (at < 0) return;
    char what[384];
    describe_unseen(w, at, where, what, sizeof what);
    fail(SINKLESS_SIM_ERR_UNSEEN_STORE, "%s", what);
}

void start_wgmma_reads(Worker& w) {
    const size_t n = w.warpgroups.size() * (w.smem_bytes / 2 + 1);
    if (w.wg_reads.size() != n) w.wg_reads.assign(n, 0u);
    w.wg_reads_live = true;
}

void ldmatrix_row_read(uint32_t off) {
    Worker& w = *tls_worker;
    const uint32_t warp = tls_fiber->warp;
    uint32_t releases = UINT32_MAX;
    for (uint32_t l = 0; l < 32; ++l) releases = std::min(releases, w.fibers[32 * warp + l].releases);
    Worker::ReadStamp* row = w.ldmatrix_reads.data() + size_t(warp) * (w.smem_bytes / 2 + 1) + off / 2;
    for (uint32_t e = 0; e < 8; ++e) {
        check_read_order(off + 2 * e, 32 * warp, 32, "ldmatrix");
        row[e] = Worker::ReadStamp{w.block_serial, releases};
    }
}

void check_write_order(uint32_t off, size_t bytes, const char* what) {
    const Worker& w = *tls_worker;
    if (bytes == 0) return;
    const Fiber& f = *tls_fiber;
    const size_t stride = w.smem_bytes / 2 + 1;
    // After the ldmatrix reads of other warps: some lane of the reading warp must have released
    // since, and this thread acquired it.
    for (size_t v = 0; v < w.warps.size(); ++v) {
        if (v == f.warp) continue;
        const Worker::ReadStamp* reads = w.ldmatrix_reads.data() + v * stride;
        for (uint32_t x = off / 2; x <= uint32_t((off + bytes - 1) / 2); ++x) {
            const Worker::ReadStamp& st = reads[x];
            if (st.block != w.block_serial) continue;
            if (acquired_since(w, f, uint32_t(32 * v), 32, st.releases)) continue;
            fail(SINKLESS_SIM_ERR_RACE,
                 "%s writes shared bytes [%u, %zu), and byte %u was read by an ldmatrix of warp %zu, which has not "
                 "released since in a way this thread acquired: a __syncthreads, a named barrier or an mbarrier must "
                 "order the write after the read",
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
    const uintptr_t a = uintptr_t(dst), lo = uintptr_t(tls_block->smem);
    Worker& w = *tls_worker;
    if (a % std::min<size_t>(bytes, 16) != 0) {
        fail(SINKLESS_SIM_ERR_MISALIGNED, "st.shared of %zu bytes at %p, which is not %zu-byte aligned", bytes, dst,
             std::min<size_t>(bytes, 16));
    }
    if (a < lo || a + bytes > lo + w.smem_bytes) {
        fail(SINKLESS_SIM_ERR_SHARED_ADDRESS,
             "st.shared of %zu bytes at %p, which is outside dynamic shared memory [%p, +%llu)", bytes, dst,
             static_cast<const void*>(tls_block->smem), static_cast<unsigned long long>(w.smem_bytes));
    }
    const uint32_t off = uint32_t(a - lo);
    check_write_order(off, bytes, "st.shared");
    memcpy(w.view.smem + off, src, bytes);
    memcpy(w.written_view.data() + off, src, bytes);
    stamp_write(w, tls_fiber, off, bytes);
}

}  // namespace sim
}  // namespace sinkless
