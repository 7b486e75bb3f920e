// The emulator's launcher and block scheduler: sinkless_sim_run, the worker threads, the block
// barrier, cp.async groups and float atomics. Scheduling model: see sim_internal.h.
//
// Why the order is shuffled: a kernel that forgets a __syncthreads still passes if threads
// happen to run in the order the data flows. Each barrier phase therefore runs the block's
// fibers in a fresh random order (seeded from the launch seed and the block index, so a failure
// reproduces), which makes most missing barriers read the 0xFF poison of dynamic shared memory.
// cp.async data is read from global memory at issue but written to shared memory only by the
// wait that retires its group, so a missing wait reads the poison too.
#include "sim_internal.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>

namespace sinkless {
namespace sim {

__thread const ThreadView* tls_thread = nullptr;
__thread const BlockView* tls_block = nullptr;
__thread Worker* tls_worker = nullptr;
__thread Fiber* tls_fiber = nullptr;

namespace {

struct Launch {
    sinkless_sim_launch cfg;
    sinkless_sim_entry entry;
    const void* params;
    uint32_t threads;
    uint64_t blocks;
    std::atomic<uint64_t> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    uint64_t error_block = UINT64_MAX;
    int status = SINKLESS_SIM_OK;
    char msg[1024] = {0};

    // Keeps the failure of the lowest-numbered block, which is the one a rerun with one worker
    // would hit first.
    void record(uint64_t block, int st, const char* text) {
        std::lock_guard<std::mutex> lock(mu);
        failed.store(true, std::memory_order_relaxed);
        if (block < error_block) {
            error_block = block;
            status = st;
            snprintf(msg, sizeof msg, "%s", text);
        }
    }
};

void fiber_main(void* arg) {
    Fiber* f = static_cast<Fiber*>(arg);
    Worker* w = tls_worker;
    w->entry(w->params);
    // cp.async still in flight at exit would land in shared memory nobody reads again.
    f->copies.clear();
    f->state = FiberState::kExited;
    suspend(f);
}

void shuffle_into_queue(Worker& w) {
    const size_t n = w.fibers.size();
    w.q_head = 0;
    w.q_len = n;
    for (size_t i = 0; i < n; ++i) w.queue[i] = &w.fibers[i];
    for (size_t i = n; i > 1; --i) std::swap(w.queue[i - 1], w.queue[w.next_random() % i]);
}

void format_thread(const Fiber& f, char* buf, size_t len) {
    snprintf(buf, len, "(%u,%u,%u)", f.view.thread_idx.x, f.view.thread_idx.y, f.view.thread_idx.z);
}

// The queue ran dry without every fiber exiting or every fiber waiting at one barrier: say who
// waits where.
void describe_deadlock(Worker& w) {
    size_t exited = 0, at_barrier = 0;
    const Fiber* first_exited = nullptr;
    const Fiber* site_a = nullptr;
    const Fiber* site_b = nullptr;
    for (const Fiber& f : w.fibers) {
        switch (f.state) {
        case FiberState::kExited:
            if (!first_exited) first_exited = &f;
            ++exited;
            break;
        case FiberState::kAtBarrier:
            ++at_barrier;
            if (!site_a) {
                site_a = &f;
            } else if (!site_b && (f.barrier_line != site_a->barrier_line ||
                                   strcmp(f.barrier_file, site_a->barrier_file) != 0)) {
                site_b = &f;
            }
            break;
        case FiberState::kAtWarp:
        case FiberState::kAtMbarrier:
        case FiberState::kAtNamedBarrier:
        case FiberState::kRunnable: break;
        }
    }
    const BlockView& b = w.view;
    int n = snprintf(w.msg, sizeof w.msg, "deadlock in block (%u,%u,%u) of %zu threads: ", b.block_idx.x,
                     b.block_idx.y, b.block_idx.z, w.fibers.size());
    size_t used = n > 0 ? size_t(n) : 0;
    auto add = [&](const char* fmt, auto... args) {
        if (used >= sizeof w.msg) return;
        const int k = snprintf(w.msg + used, sizeof w.msg - used, fmt, args...);
        if (k > 0) used += size_t(k);
    };
    char t[48];
    if (site_b) {
        char t2[48];
        format_thread(*site_a, t, sizeof t);
        format_thread(*site_b, t2, sizeof t2);
        add("divergent barrier: thread %s waits at __syncthreads() %s:%d, thread %s at %s:%d; ", t,
            site_a->barrier_file, site_a->barrier_line, t2, site_b->barrier_file, site_b->barrier_line);
    } else if (site_a) {
        add("__syncthreads() at %s:%d reached by %zu threads; ", site_a->barrier_file, site_a->barrier_line,
            at_barrier);
    }
    for (const Warp& wp : w.warps) {
        if (wp.arrived == 0) continue;
        const uint32_t missing = wp.mask & ~wp.arrived;
        add("warp %zu waits at %s (mask %08x), lanes %08x never arrived; ", size_t(&wp - w.warps.data()),
            warp_op_name(wp.op), wp.mask, missing);
        break;
    }
    for (const Warpgroup& g : w.warpgroups) {
        if (g.arrived == 0) continue;
        add("warpgroup %zu waits at wgmma.mma_async with %u of 128 threads; ", size_t(&g - w.warpgroups.data()),
            g.arrived);
        break;
    }
    for (const Warpgroup& g : w.warpgroups) {
        if (g.waiting == 0) continue;
        add("warpgroup %zu waits at wgmma.wait_group with %u of 128 threads; ", size_t(&g - w.warpgroups.data()),
            g.waiting);
        break;
    }
    describe_async_waits(w, w.msg, sizeof w.msg, &used);
    if (first_exited) {
        format_thread(*first_exited, t, sizeof t);
        add("%zu threads exited (first %s)", exited, t);
    } else {
        add("no thread exited");
    }
}

// Checks the bank conflicts of every warp's accesses since it last converged, when every thread
// of the block has reached a barrier or exited; returns the status (message in w.msg).
int check_block_bank_conflicts(Worker& w) {
    char what[512];
    for (size_t i = 0; i < w.warps.size(); ++i) {
        if (check_bank_conflicts(w.warps[i], i, what, sizeof what) == SINKLESS_SIM_OK) continue;
        const BlockView& b = w.view;
        snprintf(w.msg, sizeof w.msg, "block (%u,%u,%u): %s", b.block_idx.x, b.block_idx.y, b.block_idx.z, what);
        w.status = SINKLESS_SIM_ERR_BANK_CONFLICT;
        return w.status;
    }
    return SINKLESS_SIM_OK;
}

// Runs one block to completion on this worker; returns its status (message in w.msg).
int run_block(Worker& w, uint64_t block) {
    const dim3 g = w.view.grid_dim;
    w.view.block_idx = uint3{unsigned(block % g.x), unsigned(block / g.x % g.y), unsigned(block / g.x / g.y)};
    if (w.smem_bytes) memset(w.async_view.data(), 0xFF, w.smem_bytes);
    w.rng = w.seed ^ (0xd1b54a32d192ed03ull * (block + 1));
    w.status = SINKLESS_SIM_OK;
    w.msg[0] = 0;
    for (size_t i = 0; i < w.fibers.size(); ++i) {
        Fiber& f = w.fibers[i];
        f.state = FiberState::kRunnable;
        f.copies.clear();
        f.open_group = 0;
        f.wg_open_group = 0;
        f.wg_fenced = false;
        // Stack tops 192 KiB apart would all fall in the same L1 sets; staggering them by a
        // different multiple of 64 bytes per fiber keeps the block's hot frames from evicting
        // each other on every switch.
        const size_t stagger = (i * 13 % 64) * 64;
        context_init(&f.ctx, w.stacks->stack_lo(i), kStackBytes - stagger, &fiber_main, &f);
    }
    for (Warp& wp : w.warps) {
        wp.arrived = 0;
        forget_shared_accesses(wp);
    }
    for (Warpgroup& g : w.warpgroups) {
        g.arrived = 0;
        g.waiting = 0;
        g.pending.clear();
    }
    reset_async_state(w);
    reset_shared_tracking(w);
    tls_block = &w.view;
    shuffle_into_queue(w);
    for (;;) {
        if (Fiber* f = w.pop()) {
            tls_fiber = f;
            tls_thread = &f->view;
            context_switch(&w.sched, &f->ctx);
            tls_fiber = nullptr;
            tls_thread = nullptr;
            if (w.status != SINKLESS_SIM_OK) return w.status;
            continue;
        }
        // No thread can run: the tensor copies in flight land now (and may wake their waiters).
        if (land_bulk_copies(w)) {
            if (w.status != SINKLESS_SIM_OK) return w.status;
            continue;
        }
        size_t exited = 0, at_barrier = 0;
        const Fiber* site = nullptr;
        bool same_site = true;
        for (const Fiber& f : w.fibers) {
            if (f.state == FiberState::kExited) ++exited;
            if (f.state != FiberState::kAtBarrier) continue;
            ++at_barrier;
            if (!site) {
                site = &f;
            } else if (f.barrier_line != site->barrier_line ||
                       (f.barrier_file != site->barrier_file && strcmp(f.barrier_file, site->barrier_file) != 0)) {
                same_site = false;
            }
        }
        if (exited == w.fibers.size()) return check_block_bank_conflicts(w);
        if (at_barrier == w.fibers.size() && same_site) {
            if (check_block_bank_conflicts(w) != SINKLESS_SIM_OK) return w.status;
            block_barrier_clocks(w);
            for (Fiber& f : w.fibers) f.state = FiberState::kRunnable;
            shuffle_into_queue(w);
            continue;
        }
        describe_deadlock(w);
        return SINKLESS_SIM_ERR_DEADLOCK;
    }
}

// sigsetjmp lives in its own frame with nothing live across it, so a fault that jumps back
// leaves no half-updated locals behind.
__attribute__((noinline)) int run_block_guarded(Worker& w, uint64_t block) {
    if (sigsetjmp(w.jmp, 1) == 0) {
        w.armed = 1;
        const int st = run_block(w, block);
        w.armed = 0;
        return st;
    }
    w.armed = 0;
    tls_fiber = nullptr;
    tls_thread = nullptr;
    return describe_fault(&w);
}

bool worker_setup(Worker& w, const Launch& L) {
    const size_t page = page_bytes();
    w.entry = L.entry;
    w.params = L.params;
    w.seed = L.cfg.seed;
    w.smem_bytes = L.cfg.dynamic_smem_bytes;
    w.threads = L.threads;
    w.view.grid_dim = dim3(L.cfg.grid[0], L.cfg.grid[1], L.cfg.grid[2]);
    w.view.block_dim = dim3(L.cfg.block[0], L.cfg.block[1], L.cfg.block[2]);

    // The window of dynamic shared memory is inaccessible address space, so that every plain
    // access of a kernel faults (sim_shared.cpp); it ends flush against one more page whenever
    // its size is a multiple of 128 (its start must stay 128-byte aligned), so an access past it
    // is told apart as out of bounds.
    const size_t smem_rounded = (w.smem_bytes + 127) / 128 * 128;
    const size_t smem_pages = (smem_rounded + page - 1) / page * page;
    w.smem_map_bytes = smem_pages + page;
    void* m = mmap(nullptr, w.smem_map_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        w.smem_map = nullptr;
        return false;
    }
    w.smem_map = static_cast<unsigned char*>(m);
    w.view.smem = w.smem_map + smem_pages - smem_rounded;
    w.shared.assign(w.smem_bytes, 0xFF);
    w.async_view.assign(w.smem_bytes, 0xFF);

    w.stacks = acquire_stacks(w.threads);
    if (!w.stacks) return false;

    // The fault handler runs on its own stack: a fiber that overflowed its stack has none left.
    w.altstack_bytes = std::max<size_t>(64 * 1024, size_t(SIGSTKSZ));
    m = mmap(nullptr, w.altstack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    w.altstack = static_cast<unsigned char*>(m);
    stack_t ss{};
    ss.ss_sp = w.altstack;
    ss.ss_size = w.altstack_bytes;
    if (sigaltstack(&ss, nullptr) != 0) return false;

    const dim3 bd = w.view.block_dim;
    w.fibers.resize(w.threads);
    w.queue.assign(w.threads, nullptr);
    w.warps.assign((w.threads + 31) / 32, Warp{});
    w.warpgroups.resize(w.threads / 128);
    for (uint32_t i = 0; i < w.threads; ++i) {
        Fiber& f = w.fibers[i];
        f.view.thread_idx = uint3{i % bd.x, i / bd.x % bd.y, i / bd.x / bd.y};
        f.linear = i;
        f.lane = i % 32;
        f.warp = i / 32;
        w.warps[f.warp].existing |= 1u << f.lane;
        w.warps[f.warp].lanes[f.lane] = &f;
    }
    return true;
}

void worker_teardown(Worker& w) {
    if (w.altstack) {
        stack_t ss{};
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, nullptr);
        munmap(w.altstack, w.altstack_bytes);
    }
    release_stacks(w.stacks);
    if (w.smem_map) munmap(w.smem_map, w.smem_map_bytes);
    tls_worker = nullptr;
    tls_block = nullptr;
}

void worker_main(Launch* L) {
    Worker* w = new (std::nothrow) Worker();
    if (!w) {
        L->record(0, SINKLESS_SIM_ERR_RESOURCES, "out of memory for an emulator worker");
        return;
    }
    tls_worker = w;
    if (!worker_setup(*w, *L)) {
        L->record(0, SINKLESS_SIM_ERR_RESOURCES, "could not map fiber stacks, shared memory or a signal stack");
    } else {
        while (!L->failed.load(std::memory_order_relaxed)) {
            const uint64_t b = L->next_block.fetch_add(1, std::memory_order_relaxed);
            if (b >= L->blocks) break;
            const int st = run_block_guarded(*w, b);
            if (st != SINKLESS_SIM_OK) {
                L->record(b, st, w->msg);
                break;
            }
        }
    }
    worker_teardown(*w);
    delete w;
}

int config_error(char* err, size_t err_len, int status, const char* fmt, ...) __attribute__((format(printf, 4, 5)));
int config_error(char* err, size_t err_len, int status, const char* fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return status;
}

}  // namespace

void suspend(Fiber* self) {
    Worker* w = tls_worker;
    if (Fiber* next = w->pop()) {
        tls_fiber = next;
        tls_thread = &next->view;
        context_switch(&self->ctx, &next->ctx);
    } else {
        context_switch(&self->ctx, &w->sched);
    }
}

void fail(int status, const char* fmt, ...) {
    Worker* w = tls_worker;
    Fiber* f = tls_fiber;
    const BlockView& b = w->view;
    int n = snprintf(w->msg, sizeof w->msg, "block (%u,%u,%u) thread (%u,%u,%u): ", b.block_idx.x, b.block_idx.y,
                     b.block_idx.z, f->view.thread_idx.x, f->view.thread_idx.y, f->view.thread_idx.z);
    if (n < 0) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg + n, sizeof w->msg - size_t(n), fmt, ap);
    va_end(ap);
    w->status = status;
    context_switch(&f->ctx, &w->sched);
    __builtin_unreachable();
}

void syncthreads(const char* file, int line) {
    Fiber* f = tls_fiber;
    f->state = FiberState::kAtBarrier;
    f->barrier_file = file;
    f->barrier_line = line;
    suspend(f);
}

float atomic_add(float* address, float value) {
    uint32_t* word = reinterpret_cast<uint32_t*>(address);
    uint32_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(word, &old, float_bits(bits_float(old) + value), true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
    return bits_float(old);
}

void red_add_f32x2(float* address, float v0, float v1) {
    if (uintptr_t(address) % 8 != 0) {
        fail(SINKLESS_SIM_ERR_MISALIGNED, "red.global.add.v2.f32: address %p is not 8-byte aligned", (void*)address);
    }
    atomic_add(address, v0);
    atomic_add(address + 1, v1);
}

void cp_async_16(void* smem_dst, const void* gmem_src, bool full) {
    PendingCopy c;
    c.dst = shared_offset(smem_dst, 16, "cp.async");
    check_write_order(c.dst, 16, "cp.async");
    start_copy(*tls_worker, c.dst, 16, tls_fiber->linear, false, "cp.async");
    note_shared_access(c.dst, 16, kAccessCopy, __builtin_return_address(0));
    c.group = tls_fiber->open_group;
    if (full) {
        if (uintptr_t(gmem_src) % 16 != 0) {
            fail(SINKLESS_SIM_ERR_MISALIGNED, "cp.async: global address %p is not 16-byte aligned", gmem_src);
        }
        memcpy(c.data, gmem_src, 16);
    } else {
        memset(c.data, 0, 16);  // src-size 0: nothing is read, the destination is zero-filled
    }
    tls_fiber->copies.push_back(c);
}

void cp_async_commit() { ++tls_fiber->open_group; }

void cp_async_wait(int pending_groups) {
    Fiber* f = tls_fiber;
    if (uint64_t(pending_groups) >= f->open_group) return;
    // Groups 0 .. open_group-1 are committed; all but the newest pending_groups retire.
    const uint64_t retire_below = f->open_group - uint64_t(pending_groups);
    size_t kept = 0;
    for (size_t i = 0; i < f->copies.size(); ++i) {
        PendingCopy& c = f->copies[i];
        if (c.group < retire_below) {
            memcpy(shared_at(*tls_worker, c.dst), c.data, 16);
            stamp_write(*tls_worker, f, c.dst, 16);
            land_copy(*tls_worker, c.dst, 16);
        } else {
            f->copies[kept++] = c;
        }
    }
    f->copies.resize(kept);
}

void cp_async_wait_all() {
    cp_async_commit();
    cp_async_wait(0);
}

}  // namespace sim
}  // namespace sinkless

using namespace sinkless::sim;

extern "C" int sinkless_sim_run(const sinkless_sim_launch* cfg, sinkless_sim_entry entry, const void* params,
                                char* err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!cfg || !entry) return config_error(err, err_len, SINKLESS_SIM_ERR_CONFIG, "null launch config or entry");
    const uint32_t* gd = cfg->grid;
    const uint32_t* bd = cfg->block;
    if (gd[0] == 0 || gd[1] == 0 || gd[2] == 0 || gd[0] > 0x7fffffffu || gd[1] > 65535 || gd[2] > 65535) {
        return config_error(err, err_len, SINKLESS_SIM_ERR_CONFIG, "invalid grid (%u,%u,%u)", gd[0], gd[1], gd[2]);
    }
    const uint64_t threads = uint64_t(bd[0]) * bd[1] * bd[2];
    if (bd[0] == 0 || bd[1] == 0 || bd[2] == 0 || bd[2] > 64 || threads > 1024) {
        return config_error(err, err_len, SINKLESS_SIM_ERR_CONFIG,
                            "invalid block (%u,%u,%u): each >= 1, z <= 64, at most 1024 threads", bd[0], bd[1],
                            bd[2]);
    }
    if (cfg->dynamic_smem_bytes > cfg->max_smem_bytes) {
        return config_error(err, err_len, SINKLESS_SIM_ERR_SMEM_LIMIT,
                            "dynamic shared memory of %llu bytes exceeds the limit of %llu bytes",
                            static_cast<unsigned long long>(cfg->dynamic_smem_bytes),
                            static_cast<unsigned long long>(cfg->max_smem_bytes));
    }
    install_fault_handler();

    Launch L;
    L.cfg = *cfg;
    L.entry = entry;
    L.params = params;
    L.threads = uint32_t(threads);
    L.blocks = uint64_t(gd[0]) * gd[1] * gd[2];
    uint64_t workers = cfg->worker_threads ? cfg->worker_threads : std::max(1u, std::thread::hardware_concurrency());
    workers = std::min(workers, L.blocks);
    std::vector<std::thread> pool;
    try {
        pool.reserve(size_t(workers));
        for (uint64_t i = 0; i < workers; ++i) pool.emplace_back(worker_main, &L);
    } catch (const std::system_error&) {
        if (pool.empty()) L.record(0, SINKLESS_SIM_ERR_RESOURCES, "could not start an emulator worker thread");
    }
    for (std::thread& t : pool) t.join();
    if (L.status != SINKLESS_SIM_OK && err && err_len) snprintf(err, err_len, "%s", L.msg);
    return L.status;
}
