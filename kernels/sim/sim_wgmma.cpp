// Hopper's warpgroup MMA in the emulator: wgmma.fence / mma_async / commit_group / wait_group,
// shared-memory matrix descriptors, and fence.proxy.async.
//
// mma_async is a rendezvous of the 128 threads of a warpgroup (threads 128g .. 128g + 127, the
// linear thread index as CUDA numbers warps), like the warp collectives of sim_warp.cpp: each
// thread deposits its operands, the last to arrive queues the product on the warpgroup. The
// product is asynchronous on the GPU, so here it is computed only when a wait_group retires its
// group (a rendezvous of the warpgroup, like the issue): it reads shared memory then (a tile overwritten before the wait gives a wrong answer,
// as the hardware may), and writes every thread's accumulators then (reading d before the wait
// sees the old values). Register A operands are read then too, from the issuing threads'
// registers (a thread that overwrites them before the wait corrupts the product). Misuse that
// the GPU leaves undefined fails the launch: a product without a wgmma.fence since the thread's
// last wait_group, threads of a warpgroup disagreeing on the shape or the descriptors, a block
// that is not made of whole warpgroups, a descriptor this emulator does not model (only the
// 128-byte swizzle with base offset 0, which is what the kernels use; of the operand majors,
// register A with B N-major, and shared A with both K-major or A M-major with B N-major) or that
// reaches outside dynamic shared memory. A write into the bytes a product reads, from a thread not
// yet ordered after the wait that retires it, fails at the write, whatever the schedule
// (sim_shared.cpp): issuing a product marks what it reads, and a wait records its threads' clocks.
//
// Proxies. On the GPU, shared memory written through the generic proxy (plain stores, cp.async)
// is guaranteed visible to the async proxy (wgmma's operand reads, tensor copies) only after the
// writer's fence.proxy.async. The emulator keeps a second image of shared memory, the bytes as
// the async proxy last saw them (Worker::async_view): each fence.proxy.async refreshes it from
// the contents (Worker::shared), wgmma's operand reads compare the two (and tensor copies, sim_tma.cpp, check
// them before they write both), and a byte that differs fails the launch with
// SINKLESS_SIM_ERR_PROXY. A fence publishes every thread's writes here, not just its own, so a
// thread that skips its fence while another fences after its writes goes unseen; a kernel with
// no fence where one is needed does not.
//
// Layouts (PTX ISA, "Shared Memory Matrix Layout"; CUTLASS's canonical GMMA layouts), for 16-bit
// elements, a descriptor with start address s, leading byte offset LBO and stride byte offset
// SBO, and byte address x swizzled to x ^ (((x >> 7) & 7) << 4):
//   K-major (imm-trans 0), element (row r of M or N, k):
//       s + (r % 8) * 128 + (r / 8) * SBO + k * 2
//   M- or N-major (imm-trans 1), element (k, row r of M or N):
//       s + (r % 64) * 2 + (r / 64) * LBO + (k % 8) * 128 + (k / 8) * SBO
// Register A (m64k16): warp w of the group holds rows 16w .. 16w + 15 in the mma.m16n8k16 A
// layout. Accumulators: thread t, value i is row 16 (t / 32) + (t % 32) / 4 + 8 ((i >> 1) & 1),
// column 8 (i >> 2) + 2 (t % 4) + (i & 1).
// Numerics as mma.sync's emulation: each output is c plus the 16 products, summed in double and
// rounded once to f32.
#include "sim_internal.h"

#include <algorithm>

namespace sinkless {
namespace sim {

namespace {

struct Descriptor {
    uint32_t start, lbo, sbo;
};

Descriptor decode(uint64_t desc, const char* which) {
    const uint32_t swizzle = uint32_t(desc >> 62);
    const uint32_t base_offset = uint32_t(desc >> 49) & 7u;
    if (swizzle != 1 || base_offset != 0) {
        fail(SINKLESS_SIM_ERR_CONFIG,
             "wgmma %s descriptor %016llx: swizzle mode %u and base offset %u; the emulator models the 128-byte "
             "swizzle (mode 1) with base offset 0 only",
             which, static_cast<unsigned long long>(desc), swizzle, base_offset);
    }
    // Bits 14-15 and 30-31 sit between the fields and are 0 in a well-formed descriptor; a start
    // address moved past its 14 bits (wgmma.cuh's desc_advance) would carry into them.
    if ((desc & 0xc000c000ull) != 0) {
        fail(SINKLESS_SIM_ERR_CONFIG,
             "wgmma %s descriptor %016llx: bits 14-15 or 30-31 set (a start address or leading byte offset that "
             "overflowed its field)",
             which, static_cast<unsigned long long>(desc));
    }
    return Descriptor{uint32_t(desc & 0x3fffu) << 4, (uint32_t(desc >> 16) & 0x3fffu) << 4,
                      (uint32_t(desc >> 32) & 0x3fffu) << 4};
}

// The 16-bit element at shared-window byte address x, after the 128-byte swizzle.
double element(uint32_t x, bool bf16, const char* which) {
    x ^= ((x >> 7) & 7u) << 4;
    if (uint64_t(x) + 2 > tls_worker->smem_bytes) {
        fail(SINKLESS_SIM_ERR_SHARED_ADDRESS, "wgmma %s operand reads shared byte %u, past the %llu bytes of the block",
             which, x, static_cast<unsigned long long>(tls_worker->smem_bytes));
    }
    const unsigned char* p = shared_at(*tls_worker, x);
    if (memcmp(p, tls_worker->async_view.data() + x, 2) != 0) {
        fail(SINKLESS_SIM_ERR_PROXY,
             "wgmma %s operand reads shared byte %u, written through the generic proxy (a store or cp.async) "
             "after the last fence.proxy.async: the tensor core may see the old bytes",
             which, x);
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return double(bf16 ? bf16_to_f32(h) : f16_to_f32(h));
}

uint16_t half_of(uint32_t word, int hi) { return uint16_t(hi ? word >> 16 : word & 0xffffu); }

// The unswizzled shared-window address of an operand's element (row r of M or N, k): A's (r, k)
// and B's (k, r) both, the layout being the same function of the row and k for either.
uint32_t operand_address(const Descriptor& dx, bool trans, int r, int k) {
    return trans ? dx.start + uint32_t(r % 64) * 2 + uint32_t(r / 64) * dx.lbo + uint32_t(k % 8) * 128 +
                       uint32_t(k / 8) * dx.sbo
                 : dx.start + uint32_t(r % 8) * 128 + uint32_t(r / 8) * dx.sbo + uint32_t(k) * 2;
}

// The whole 128-byte lines a product's shared operands touch (the swizzle moves chunks only
// within a line), as one range [lo, hi) per operand; A's is empty when it comes from registers.
void footprint(const WgmmaOp& op, uint32_t (&lo)[2], uint32_t (&hi)[2]) {
    lo[0] = lo[1] = UINT32_MAX;
    hi[0] = hi[1] = 0;
    auto widen = [&](int i, uint32_t x) {
        lo[i] = std::min(lo[i], x & ~127u);
        hi[i] = std::max(hi[i], (x | 127u) + 1);
    };
    if (!op.reg_a) {
        const Descriptor da = decode(op.desc_a, "A");
        for (int r = 0; r < 64; ++r)
            for (int k = 0; k < 16; ++k) widen(0, operand_address(da, op.a_m_major, r, k));
    }
    const Descriptor db = decode(op.desc_b, "B");
    for (int k = 0; k < 16; ++k)
        for (int c = 0; c < op.n; ++c) widen(1, operand_address(db, op.b_n_major, c, k));
}

void retire(const WgmmaOp& op) {
    const int n = op.n;
    static thread_local double a[64][16], b[16][256];
    if (op.reg_a) {
        for (int t = 0; t < 128; ++t) {
            const int r0 = 16 * (t / 32) + (t % 32) / 4, c = 2 * (t % 4);
            for (int e = 0; e < 2; ++e) {
                auto widen = [&](uint32_t w) { return double(op.bf16 ? bf16_to_f32(half_of(w, e)) : f16_to_f32(half_of(w, e))); };
                a[r0][c + e] = widen(op.a[t][0]);
                a[r0 + 8][c + e] = widen(op.a[t][1]);
                a[r0][c + 8 + e] = widen(op.a[t][2]);
                a[r0 + 8][c + 8 + e] = widen(op.a[t][3]);
            }
        }
    } else {
        const Descriptor da = decode(op.desc_a, "A");
        for (int r = 0; r < 64; ++r)
            for (int k = 0; k < 16; ++k) a[r][k] = element(operand_address(da, op.a_m_major, r, k), op.bf16, "A");
    }
    const Descriptor db = decode(op.desc_b, "B");
    for (int k = 0; k < 16; ++k)
        for (int c = 0; c < n; ++c) b[k][c] = element(operand_address(db, op.b_n_major, c, k), op.bf16, "B");
    uint32_t lo[2], hi[2];
    footprint(op, lo, hi);
    for (int i = 0; i < 2; ++i) {
        if (lo[i] < hi[i]) check_not_in_flight(lo[i], hi[i] - lo[i], i == 0 ? "wgmma operand A" : "wgmma operand B");
    }
    for (int t = 0; t < 128; ++t) {
        float* d = op.d[t];
        for (int i = 0; i < n / 2; ++i) {
            const int r = 16 * (t / 32) + (t % 32) / 4 + 8 * ((i >> 1) & 1);
            const int c = 8 * (i >> 2) + 2 * (t % 4) + (i & 1);
            double acc = double(d[i]);
            for (int k = 0; k < 16; ++k) acc += a[r][k] * b[k][c];
            d[i] = float(acc);
        }
    }
}

// Marks the shared elements a product just issued by warpgroup g reads (sim_shared.cpp), so that
// a write into them before the threads are ordered after its retirement fails.
void mark_reads(Worker& w, uint32_t g, const WgmmaOp& op) {
    if (!w.wg_reads_live) start_wgmma_reads(w);
    const uint32_t group = uint32_t(op.group);
    const auto mark = [&](uint32_t x) {
        x ^= ((x >> 7) & 7u) << 4;
        if (uint64_t(x) + 2 > w.smem_bytes) return;  // the retirement reports it
        check_read_order(x, 128 * g, 128, "wgmma.mma_async");
        mark_wgmma_read(w, g, x, group);
    };
    if (!op.reg_a) {
        const Descriptor da = decode(op.desc_a, "A");
        for (int r = 0; r < 64; ++r)
            for (int k = 0; k < 16; ++k) mark(operand_address(da, op.a_m_major, r, k));
    }
    const Descriptor db = decode(op.desc_b, "B");
    for (int k = 0; k < 16; ++k)
        for (int c = 0; c < op.n; ++c) mark(operand_address(db, op.b_n_major, c, k));
}

Warpgroup& my_group(const char* what) {
    Worker* w = tls_worker;
    Fiber* f = tls_fiber;
    if (w->threads % 128 != 0) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s in a block of %u threads: warpgroup instructions need whole warpgroups", what,
             w->threads);
    }
    return w->warpgroups[f->linear / 128];
}

}  // namespace

uint32_t smem_address(const void* p) {
    const uintptr_t a = uintptr_t(p), lo = uintptr_t(tls_block->smem);
    if (a < lo || a > lo + tls_worker->smem_bytes) {
        fail(SINKLESS_SIM_ERR_SHARED_ADDRESS, "shared address of %p, which is outside dynamic shared memory [%p, +%llu)", p,
             static_cast<const void*>(tls_block->smem), static_cast<unsigned long long>(tls_worker->smem_bytes));
    }
    return uint32_t(a - lo);
}

void wgmma_fence() {
    my_group("wgmma.fence");
    tls_fiber->wg_fenced = true;
}

void wgmma_commit() {
    my_group("wgmma.commit_group");
    ++tls_fiber->wg_open_group;
}

void wgmma_wait(int pending_groups) {
    Warpgroup& g = my_group("wgmma.wait_group");
    Fiber* f = tls_fiber;
    f->wg_fenced = false;
    // A rendezvous of the warpgroup (the instruction is .sync.aligned): the products retire when
    // its last thread arrives, so no thread runs past the wait, and releases what the products
    // read, while another thread of the group has yet to reach it.
    const uint32_t t = f->linear % 128;
    if (g.waiting == 0) {
        g.wait_pending = pending_groups;
    } else if (g.wait_pending != pending_groups) {
        fail(SINKLESS_SIM_ERR_DEADLOCK,
             "divergent wgmma.wait_group: thread %u waits with %d groups pending, while %u threads of its warpgroup "
             "wait with %d",
             t, pending_groups, g.waiting, g.wait_pending);
    }
    g.waiters[t] = f;
    if (++g.waiting < 128) {
        f->state = FiberState::kAtWarp;
        suspend(f);
        return;
    }
    g.waiting = 0;
    tls_worker->wake_rest(g.waiters, 128, t);
    if (uint64_t(pending_groups) < f->wg_open_group) {
        const uint64_t retire_below = f->wg_open_group - uint64_t(pending_groups);
        size_t kept = 0;
        for (size_t i = 0; i < g.pending.size(); ++i) {
            if (g.pending[i].group < retire_below) {
                retire(g.pending[i]);
            } else {
                if (kept != i) g.pending[kept] = g.pending[i];
                ++kept;
            }
        }
        g.pending.resize(kept);
        // A write from outside the warpgroup into what these read must acquire a release its
        // threads make after now (sim_shared.cpp).
        uint32_t releases = UINT32_MAX;
        for (const Fiber* x : g.waiters) releases = std::min(releases, x->releases);
        while (g.retired_below < retire_below) {
            g.retired_at.push_back(releases);
            ++g.retired_below;
        }
    }
}

void fence_proxy_async() {
    Worker& w = *tls_worker;
    if (w.smem_bytes) memcpy(w.async_view.data(), w.shared.data(), w.smem_bytes);
}

void wgmma(float* d, int n, const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool a_m_major, bool b_n_major,
           bool bf16) {
    Warpgroup& g = my_group("wgmma.mma_async");
    Fiber* f = tls_fiber;
    if (!f->wg_fenced) {
        fail(SINKLESS_SIM_ERR_CONFIG, "wgmma.mma_async without a wgmma.fence since this thread's last wgmma.wait_group");
    }
    if (n < 8 || n > 256 || n % 8 != 0) fail(SINKLESS_SIM_ERR_CONFIG, "wgmma n = %d is not one of 8, 16, ..., 256", n);
    const bool reg_a = a != nullptr;
    if (reg_a ? a_m_major || !b_n_major : a_m_major != b_n_major) {
        fail(SINKLESS_SIM_ERR_CONFIG,
             "wgmma with %s A%s and B %s: the emulator models register A with B N-major, and shared A with both "
             "K-major or A M-major with B N-major",
             reg_a ? "register" : "shared", a_m_major ? " M-major" : "", b_n_major ? "N-major" : "K-major");
    }
    WgmmaOp& op = g.issuing;
    const uint32_t t = f->linear % 128;
    if (g.arrived == 0) {
        op.group = f->wg_open_group;
        op.n = n;
        op.reg_a = reg_a;
        op.a_m_major = a_m_major;
        op.b_n_major = b_n_major;
        op.bf16 = bf16;
        op.desc_a = desc_a;
        op.desc_b = desc_b;
    } else if (op.group != f->wg_open_group || op.n != n || op.reg_a != reg_a || op.a_m_major != a_m_major ||
               op.b_n_major != b_n_major || op.bf16 != bf16 ||
               op.desc_b != desc_b || (!reg_a && op.desc_a != desc_a)) {
        fail(SINKLESS_SIM_ERR_DEADLOCK,
             "divergent wgmma.mma_async: thread %u issues n=%d desc_b=%016llx in group %llu, while %u threads of its "
             "warpgroup wait at n=%d desc_b=%016llx in group %llu",
             t, n, static_cast<unsigned long long>(desc_b), static_cast<unsigned long long>(f->wg_open_group),
             g.arrived, op.n, static_cast<unsigned long long>(op.desc_b), static_cast<unsigned long long>(op.group));
    }
    op.a[t] = a;
    op.d[t] = d;
    g.threads[t] = f;
    if (++g.arrived < 128) {
        f->state = FiberState::kAtWarp;
        suspend(f);
        return;
    }
    mark_reads(*tls_worker, f->linear / 128, op);
    g.pending.push_back(op);
    g.arrived = 0;
    tls_worker->wake_rest(g.threads, 128, t);
}

}  // namespace sim
}  // namespace sinkless
