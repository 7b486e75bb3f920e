// Fiber contexts and stacks for the emulator.
//
// A block of 128 threads doing a few thousand mma.sync each switches fibers millions of times,
// so the switch is hand-written for x86-64: it saves only the callee-saved integer registers
// (the System V ABI makes the caller save everything else) and swaps stack pointers, with no
// system call. swapcontext would also save and restore the signal mask, one syscall per switch.
// Other targets fall back to ucontext. The MXCSR and x87 control words are not switched: kernels
// never change the floating-point environment.
#include "sim_internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <mutex>

namespace sinkless {
namespace sim {

size_t page_bytes() {
    static const size_t page = size_t(sysconf(_SC_PAGESIZE));
    return page;
}

#if SINKLESS_SIM_ASM_SWITCH

extern "C" void sinkless_sim_ctx_switch(void** save_sp, void* load_sp);
extern "C" void sinkless_sim_ctx_start();

// ctx_switch pushes the callee-saved registers, parks rsp in *save_sp, adopts load_sp and pops
// the registers saved there; its ret resumes the other fiber where it called ctx_switch.
// ctx_start is where a fresh fiber's first ret lands: context_init left fn in r13 and its
// argument in r12, and the fiber function never returns.
asm(R"(
    .text
    .p2align 4
    .globl sinkless_sim_ctx_switch
    .hidden sinkless_sim_ctx_switch
    .type sinkless_sim_ctx_switch, @function
sinkless_sim_ctx_switch:
    endbr64
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size sinkless_sim_ctx_switch, .-sinkless_sim_ctx_switch

    .p2align 4
    .globl sinkless_sim_ctx_start
    .hidden sinkless_sim_ctx_start
    .type sinkless_sim_ctx_start, @function
sinkless_sim_ctx_start:
    endbr64
    movq %r12, %rdi
    callq *%r13
    ud2
    .size sinkless_sim_ctx_start, .-sinkless_sim_ctx_start
)");

void context_init(Context* c, unsigned char* lo, size_t bytes, void (*fn)(void*), void* arg) {
    // Seven words for ctx_switch to pop: r15, r14, r13 = fn, r12 = arg, rbx, rbp = 0 (ends
    // debugger backtraces), then the return address. After the pops rsp is the 16-byte aligned
    // top, so ctx_start's call sees the alignment the ABI requires.
    const uintptr_t top = (uintptr_t(lo) + bytes) & ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top - 7 * sizeof(void*));
    sp[0] = nullptr;
    sp[1] = nullptr;
    sp[2] = reinterpret_cast<void*>(fn);
    sp[3] = arg;
    sp[4] = nullptr;
    sp[5] = nullptr;
    sp[6] = reinterpret_cast<void*>(&sinkless_sim_ctx_start);
    c->sp = sp;
}

void context_switch(Context* from, Context* to) { sinkless_sim_ctx_switch(&from->sp, to->sp); }

#else

// makecontext passes only int arguments, so the Context pointer travels in two halves.
static void ucontext_start(unsigned int hi, unsigned int lo) {
    Context* c = reinterpret_cast<Context*>((uintptr_t(hi) << 32) | uintptr_t(lo));
    c->fn(c->arg);
}

void context_init(Context* c, unsigned char* lo, size_t bytes, void (*fn)(void*), void* arg) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = bytes;
    c->uc.uc_link = nullptr;
    c->fn = fn;
    c->arg = arg;
    const uintptr_t p = uintptr_t(c);
    makecontext(&c->uc, reinterpret_cast<void (*)()>(&ucontext_start), 2, unsigned(uint64_t(p) >> 32),
                unsigned(p & 0xffffffffu));
}

void context_switch(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }

#endif

namespace {
std::mutex g_stack_mu;
std::vector<StackArena*> g_stack_pool;
}  // namespace

StackArena* acquire_stacks(size_t count) {
    {
        std::lock_guard<std::mutex> lock(g_stack_mu);
        size_t best = g_stack_pool.size();
        for (size_t i = 0; i < g_stack_pool.size(); ++i) {
            if (g_stack_pool[i]->count >= count &&
                (best == g_stack_pool.size() || g_stack_pool[i]->count < g_stack_pool[best]->count)) {
                best = i;
            }
        }
        if (best != g_stack_pool.size()) {
            StackArena* a = g_stack_pool[best];
            g_stack_pool.erase(g_stack_pool.begin() + long(best));
            return a;
        }
    }
    const size_t stride = kStackGuardBytes + kStackBytes;
    const size_t bytes = stride * count;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    unsigned char* base = static_cast<unsigned char*>(m);
    for (size_t i = 0; i < count; ++i) {
        if (mprotect(base + i * stride, kStackGuardBytes, PROT_NONE) != 0) {
            munmap(m, bytes);
            return nullptr;
        }
    }
    return new StackArena{base, count, stride, bytes};
}

void release_stacks(StackArena* arena) {
    if (arena == nullptr) return;
    std::lock_guard<std::mutex> lock(g_stack_mu);
    g_stack_pool.push_back(arena);
}

}  // namespace sim
}  // namespace sinkless
