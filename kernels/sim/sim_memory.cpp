// Guard-paged global buffers and the SIGSEGV handler that turns a kernel's bad access into a
// launch error instead of a dead test process.
//
// Each buffer from sinkless_sim_alloc ends flush against a PROT_NONE page (and starts after
// another one), so reading one element past the end faults. The handler only acts on faults of
// an emulator worker thread while it runs a block: it notes the address and siglongjmps back to
// the worker (it runs on the worker's alternate signal stack, so a fiber stack overflow is caught
// too). Any other SIGSEGV goes to the handler that was installed before ours, or to the default
// action. The buffer table is a fixed array of atomics so the handler can read it without locks.
#include "sim_internal.h"

#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <mutex>

namespace sinkless {
namespace sim {

namespace {

constexpr size_t kMaxBuffers = 1 << 16;

struct BufferSlot {
    std::atomic<uintptr_t> user{0};  // 0: free
    size_t bytes;
    uintptr_t map;
    size_t map_bytes;
    uint64_t serial;
};

BufferSlot g_buffers[kMaxBuffers];
std::atomic<size_t> g_high_water{0};  // slots at or above are all free
std::mutex g_alloc_mu;
uint64_t g_serial = 0;

struct sigaction g_previous;

void chain_to_previous(int sig, siginfo_t* info, void* uctx) {
    if (g_previous.sa_flags & SA_SIGINFO) {
        g_previous.sa_sigaction(sig, info, uctx);
    } else if (g_previous.sa_handler == SIG_DFL || g_previous.sa_handler == SIG_IGN) {
        // Returning re-executes the faulting access, which now takes the default action.
        signal(sig, SIG_DFL);
    } else {
        g_previous.sa_handler(sig);
    }
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
    Worker* w = tls_worker;
    if (w == nullptr || !w->armed) {
        chain_to_previous(sig, info, uctx);
        return;
    }
    w->fault.addr = uintptr_t(info->si_addr);
    w->fault.write = -1;
#if defined(__x86_64__) && defined(REG_ERR)
    // Bit 1 of the page-fault error code says the access was a write.
    w->fault.write = (static_cast<ucontext_t*>(uctx)->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
#endif
    siglongjmp(w->jmp, 1);
}

const char* access_word(int write) { return write == 1 ? "write" : write == 0 ? "read" : "access"; }

}  // namespace

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_sigaction = &on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &g_previous);
    });
}

int describe_fault(Worker* w) {
    const uintptr_t a = w->fault.addr;
    const char* how = access_word(w->fault.write);
    const BlockView& b = w->view;
    char where[64];
    snprintf(where, sizeof where, "block (%u,%u,%u)", b.block_idx.x, b.block_idx.y, b.block_idx.z);
    const size_t page = page_bytes();

    const size_t n = g_high_water.load(std::memory_order_acquire);
    for (size_t i = 0; i < n; ++i) {
        const uintptr_t user = g_buffers[i].user.load(std::memory_order_acquire);
        if (user == 0) continue;
        const BufferSlot& s = g_buffers[i];
        const uintptr_t end = user + s.bytes;
        if (a >= s.map + s.map_bytes - page && a < s.map + s.map_bytes) {
            snprintf(w->msg, sizeof w->msg,
                     "%s: out-of-bounds %s at %p, %zu bytes past the end of buffer #%llu (%p, %zu bytes)", where,
                     how, reinterpret_cast<void*>(a), size_t(a - end), static_cast<unsigned long long>(s.serial),
                     reinterpret_cast<void*>(user), s.bytes);
            return SINKLESS_SIM_ERR_OUT_OF_BOUNDS;
        }
        if (a >= s.map && a < s.map + page) {
            snprintf(w->msg, sizeof w->msg,
                     "%s: out-of-bounds %s at %p, %zu bytes before the start of buffer #%llu (%p, %zu bytes)", where,
                     how, reinterpret_cast<void*>(a), size_t(user - a), static_cast<unsigned long long>(s.serial),
                     reinterpret_cast<void*>(user), s.bytes);
            return SINKLESS_SIM_ERR_OUT_OF_BOUNDS;
        }
    }
    const int window = describe_window_fault(w, a, how);
    if (window >= 0) return window;
    const uintptr_t smem_end = uintptr_t(w->smem_map) + w->smem_map_bytes;
    if (a >= smem_end - page && a < smem_end) {
        snprintf(w->msg, sizeof w->msg, "%s: out-of-bounds %s at %p, %zu bytes past the end of %llu bytes of dynamic shared memory",
                 where, how, reinterpret_cast<void*>(a), size_t(a - uintptr_t(b.smem) - w->smem_bytes),
                 static_cast<unsigned long long>(w->smem_bytes));
        return SINKLESS_SIM_ERR_OUT_OF_BOUNDS;
    }
    const StackArena* st = w->stacks;
    if (st && a >= uintptr_t(st->base) && a < uintptr_t(st->base) + st->count * st->stride) {
        const size_t i = (a - uintptr_t(st->base)) / st->stride;
        if (i < w->fibers.size()) {
            const uint3 t = w->fibers[i].view.thread_idx;
            snprintf(w->msg, sizeof w->msg,
                     "%s: thread (%u,%u,%u) overflowed its %zu KiB emulator stack (large local arrays?)", where,
                     t.x, t.y, t.z, kStackBytes / 1024);
            return SINKLESS_SIM_ERR_STACK_OVERFLOW;
        }
    }
    snprintf(w->msg, sizeof w->msg,
             "%s: invalid %s at %p, which is not next to any sinkless_sim_alloc buffer (wild or null pointer)",
             where, how, reinterpret_cast<void*>(a));
    return SINKLESS_SIM_ERR_OUT_OF_BOUNDS;
}

}  // namespace sim
}  // namespace sinkless

using namespace sinkless::sim;

extern "C" void* sinkless_sim_alloc(size_t bytes) {
    install_fault_handler();
    const size_t page = page_bytes();
    if (bytes > (SIZE_MAX >> 2)) return nullptr;
    const size_t rounded = (bytes + 15) / 16 * 16;
    const size_t data_pages = (rounded + page - 1) / page * page;
    const size_t map_bytes = data_pages + 2 * page;
    void* m = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    const uintptr_t map = uintptr_t(m);
    if (mprotect(m, page, PROT_NONE) != 0 ||
        mprotect(reinterpret_cast<void*>(map + map_bytes - page), page, PROT_NONE) != 0) {
        munmap(m, map_bytes);
        return nullptr;
    }
    const uintptr_t user = map + map_bytes - page - rounded;
    std::lock_guard<std::mutex> lock(g_alloc_mu);
    for (size_t i = 0; i < kMaxBuffers; ++i) {
        BufferSlot& s = g_buffers[i];
        if (s.user.load(std::memory_order_relaxed) != 0) continue;
        s.bytes = bytes;
        s.map = map;
        s.map_bytes = map_bytes;
        s.serial = ++g_serial;
        s.user.store(user, std::memory_order_release);
        if (i >= g_high_water.load(std::memory_order_relaxed)) g_high_water.store(i + 1, std::memory_order_release);
        return reinterpret_cast<void*>(user);
    }
    munmap(m, map_bytes);
    return nullptr;
}

extern "C" void sinkless_sim_free(void* p) {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(g_alloc_mu);
    const size_t n = g_high_water.load(std::memory_order_relaxed);
    for (size_t i = 0; i < n; ++i) {
        BufferSlot& s = g_buffers[i];
        if (s.user.load(std::memory_order_relaxed) != uintptr_t(p)) continue;
        s.user.store(0, std::memory_order_release);
        munmap(reinterpret_cast<void*>(s.map), s.map_bytes);
        return;
    }
}
