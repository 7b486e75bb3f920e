// Warp-collective operations of the emulator: __syncwarp, shuffles, votes, ldmatrix and mma.sync.
//
// Each is a rendezvous: a lane writes its operands into its slot and parks; the last lane of the
// warp to arrive computes every lane's result, wakes the others and carries on. Lanes arriving
// at different collectives (or with different masks) are reported as a divergence error, and a
// lane that never arrives shows up as a deadlock when the block runs out of runnable fibers.
//
// Fragment layouts follow the PTX ISA tables ("Matrix Fragments for mma.m16n8k16", "ldmatrix").
// With groupID g = lane / 4 and threadID_in_group t = lane % 4:
//   A (16x16, row):  a[0] = A[g][2t..2t+1]    a[1] = A[g+8][2t..2t+1]
//                    a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
//   B (16x8, col):   b[0] = B[2t..2t+1][g]    b[1] = B[2t+8..2t+9][g]
//   C, D (16x8 f32): c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]
// the lower-numbered element of each pair in the low 16 bits. ldmatrix: lanes 8i..8i+7 give the
// row addresses of matrix i; lane l receives in r[i] row l/4, columns 2(l%4) and 2(l%4)+1 of
// matrix i, or with .trans rows 2(l%4) and 2(l%4)+1 of column l/4.
// The GPU reads each 8x8 matrix in one shared-memory wavefront when its 8 rows sit in the 8
// distinct 16-byte slots of a 128-byte line (4 of the 32 banks each); two rows in the same slot
// make it replay. Kernels here lay their tiles out so that never happens (tile.cuh), so the
// emulator fails such an ldmatrix (SINKLESS_SIM_ERR_BANK_CONFLICT), naming the rows.
//
// mma numerics: f16 and bf16 products are exact in double, the sixteen products and the
// accumulator are summed in double (exact unless the terms span more than about 2^30) and
// rounded once to f32. Tensor cores add differently (their alignment and truncation are not
// IEEE), so the emulator matches the GPU bit for bit only where the exact sum is representable
// in f32, e.g. small integers and dyadic fractions; the conformance suite uses such inputs.
#include "sim_internal.h"

namespace sinkless {
namespace sim {

const char* warp_op_name(int op) {
    switch (op) {
    case kOpSyncwarp: return "__syncwarp";
    case kOpShfl + kShflIdx: return "__shfl_sync";
    case kOpShfl + kShflUp: return "__shfl_up_sync";
    case kOpShfl + kShflDown: return "__shfl_down_sync";
    case kOpShfl + kShflXor: return "__shfl_xor_sync";
    case kOpLdmatrix + 0: return "ldmatrix.x1";
    case kOpLdmatrix + 1: return "ldmatrix.x1.trans";
    case kOpLdmatrix + 2: return "ldmatrix.x2";
    case kOpLdmatrix + 3: return "ldmatrix.x2.trans";
    case kOpLdmatrix + 4: return "ldmatrix.x4";
    case kOpLdmatrix + 5: return "ldmatrix.x4.trans";
    case kOpMmaF16: return "mma.sync.m16n8k16.f16";
    case kOpMmaBf16: return "mma.sync.m16n8k16.bf16";
    case kOpBallot: return "__ballot_sync";
    default: return "nothing";
    }
}

namespace {

void complete_shfl(Warp& w) {
    for (uint32_t lane = 0; lane < 32; ++lane) {
        if (!(w.mask >> lane & 1)) continue;
        WarpSlot& s = w.slot[lane];
        const uint32_t arg = s.in[1];
        const uint32_t width = s.in[2];
        const uint32_t seg_lo = lane & ~(width - 1);
        const uint32_t seg_hi = seg_lo + width;  // one past the segment
        // Per CUDA: a source outside the lane's width-segment (xor: only a later segment) or
        // outside the warp gives the lane its own value.
        uint32_t src = lane;
        switch (ShflMode(w.op - kOpShfl)) {
        case kShflIdx: src = seg_lo + (arg & (width - 1)); break;
        case kShflUp: src = lane >= seg_lo + arg ? lane - arg : lane; break;
        case kShflDown: src = lane + arg < seg_hi ? lane + arg : lane; break;
        case kShflXor: {
            const uint32_t j = lane ^ (arg & 31);
            src = j < seg_hi ? j : lane;
            break;
        }
        }
        // A source lane that did not take part holds no defined value; the GPU returns garbage,
        // the emulator the lane's own value.
        s.out[0] = (w.mask >> src & 1) ? w.slot[src].in[0] : s.in[0];
    }
}

// __syncwarp: each lane of the mask releases, and every one acquires all of those releases,
// so the shared-memory accesses of each before it are ordered before those of each after it.
void complete_syncwarp(Warp& w) {
    Worker& worker = *tls_worker;
    std::vector<uint32_t> acc;
    for (uint32_t lane = 0; lane < 32; ++lane)
        if (w.mask >> lane & 1) release_into(worker, *w.lanes[lane], acc);
    for (uint32_t lane = 0; lane < 32; ++lane)
        if (w.mask >> lane & 1) acquire_from(worker, *w.lanes[lane], acc);
}

void complete_ballot(Warp& w) {
    uint32_t bits = 0;
    for (uint32_t lane = 0; lane < 32; ++lane)
        if ((w.mask >> lane & 1) && w.slot[lane].in[0] != 0) bits |= 1u << lane;
    for (uint32_t lane = 0; lane < 32; ++lane)
        if (w.mask >> lane & 1) w.slot[lane].out[0] = bits;
}

uint16_t half_of(uint32_t word, int hi) { return uint16_t(hi ? word >> 16 : word & 0xffffu); }

void complete_ldmatrix(Warp& w, int count, bool trans) {
    for (int i = 0; i < count; ++i) {
        uint16_t m[8][8];
        int slot_row[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
        for (int r = 0; r < 8; ++r) {
            const void* row = w.slot[8 * i + r].addr;
            const uint32_t off = shared_offset(row, 16, "ldmatrix");
            memcpy(m[r], shared_at(*tls_worker, off), 16);
            ldmatrix_row_read(off);
            const int slot = int(off >> 4) & 7;
            if (slot_row[slot] >= 0) {
                const uint32_t other = shared_offset(w.slot[8 * i + slot_row[slot]].addr, 16, "ldmatrix");
                fail(SINKLESS_SIM_ERR_BANK_CONFLICT,
                     "ldmatrix%s matrix %d: rows %d and %d (shared bytes %u and %u) share the banks of 16-byte slot %d: "
                     "a bank conflict",
                     trans ? ".trans" : "", i, slot_row[slot], r, other, off, slot);
            }
            slot_row[slot] = r;
        }
        for (uint32_t lane = 0; lane < 32; ++lane) {
            const int q = int(lane / 4), c = int(2 * (lane % 4));
            const uint16_t lo = trans ? m[c][q] : m[q][c];
            const uint16_t hi = trans ? m[c + 1][q] : m[q][c + 1];
            w.slot[lane].out[i] = uint32_t(lo) | uint32_t(hi) << 16;
        }
    }
}

template <bool kBf16>
void complete_mma(Warp& w) {
    double a[16][16], b[16][8], d[16][8];
    auto widen = [](uint16_t h) { return double(kBf16 ? bf16_to_f32(h) : f16_to_f32(h)); };
    for (int lane = 0; lane < 32; ++lane) {
        const uint32_t* in = w.slot[lane].in;
        const int g = lane / 4, t = 2 * (lane % 4);
        for (int e = 0; e < 2; ++e) {
            a[g][t + e] = widen(half_of(in[0], e));
            a[g + 8][t + e] = widen(half_of(in[1], e));
            a[g][t + 8 + e] = widen(half_of(in[2], e));
            a[g + 8][t + 8 + e] = widen(half_of(in[3], e));
            b[t + e][g] = widen(half_of(in[4], e));
            b[t + 8 + e][g] = widen(half_of(in[5], e));
            d[g][t + e] = double(bits_float(in[6 + e]));
            d[g + 8][t + e] = double(bits_float(in[8 + e]));
        }
    }
    // Each sum runs in the order c + p0 + p1 + ... + p15. Two rows at a time give eight
    // independent vector accumulators, enough to hide the add latency; summing through memory
    // instead made this the emulator's hottest loop.
    typedef double v2d __attribute__((vector_size(16)));
    for (int i = 0; i < 16; i += 2) {
        v2d acc[2][4];
#pragma GCC unroll 2
        for (int r = 0; r < 2; ++r)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) acc[r][j] = v2d{d[i + r][2 * j], d[i + r][2 * j + 1]};
        for (int k = 0; k < 16; ++k) {
            const v2d a0 = {a[i][k], a[i][k]}, a1 = {a[i + 1][k], a[i + 1][k]};
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const v2d bk = {b[k][2 * j], b[k][2 * j + 1]};
                acc[0][j] += a0 * bk;
                acc[1][j] += a1 * bk;
            }
        }
#pragma GCC unroll 2
        for (int r = 0; r < 2; ++r)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                d[i + r][2 * j] = acc[r][j][0];
                d[i + r][2 * j + 1] = acc[r][j][1];
            }
    }
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = 2 * (lane % 4);
        uint32_t* out = w.slot[lane].out;
        out[0] = float_bits(float(d[g][t]));
        out[1] = float_bits(float(d[g][t + 1]));
        out[2] = float_bits(float(d[g + 8][t]));
        out[3] = float_bits(float(d[g + 8][t + 1]));
    }
}

// The calling lane has filled its slot; returns once every lane of mask has arrived and the
// results are in the slots.
void rendezvous(int op, uint32_t mask) {
    Fiber* f = tls_fiber;
    Warp& w = tls_worker->warps[f->warp];
    const uint32_t bit = 1u << f->lane;
    mask &= w.existing;
    if (!(mask & bit)) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s with mask %08x, which leaves out the calling lane %u", warp_op_name(op),
             mask, f->lane);
    }
    if (op >= kOpLdmatrix && mask != 0xffffffffu) {
        fail(SINKLESS_SIM_ERR_CONFIG, "%s needs a full warp, but warp %u has lanes %08x", warp_op_name(op), f->warp,
             w.existing);
    }
    if (w.arrived == 0) {
        w.op = op;
        w.mask = mask;
    } else if (w.op != op || w.mask != mask) {
        fail(SINKLESS_SIM_ERR_DEADLOCK,
             "divergent warp collective: lane %u calls %s (mask %08x) while lanes %08x wait at %s (mask %08x)",
             f->lane, warp_op_name(op), mask, w.arrived, warp_op_name(w.op), w.mask);
    }
    w.arrived |= bit;
    if (w.arrived != w.mask) {
        f->state = FiberState::kAtWarp;
        suspend(f);
        return;
    }
    if (op >= kOpShfl && op < kOpShfl + 4) {
        complete_shfl(w);
    } else if (op >= kOpLdmatrix && op < kOpLdmatrix + 6) {
        complete_ldmatrix(w, 1 << ((op - kOpLdmatrix) / 2), (op - kOpLdmatrix) & 1);
    } else if (op == kOpMmaF16) {
        complete_mma<false>(w);
    } else if (op == kOpMmaBf16) {
        complete_mma<true>(w);
    } else if (op == kOpBallot) {
        complete_ballot(w);
    } else if (op == kOpSyncwarp) {
        complete_syncwarp(w);
    }
    w.arrived = 0;
    if (mask == w.existing) {  // the warp converged: its shared accesses since are complete
        char what[512];
        if (check_bank_conflicts(w, f->warp, what, sizeof what) != SINKLESS_SIM_OK) {
            fail(SINKLESS_SIM_ERR_BANK_CONFLICT, "%s", what);
        }
    }
    // The woken lanes go to the front of the queue (from a random lane on, so they do not
    // always resume in lane order): a warp then runs on until it reaches a block barrier. Warps
    // still start each barrier phase in a shuffled order, which is what exposes a missing
    // __syncthreads, and the working set of one warp's fibers stays in cache (10% faster than
    // round-robin over the whole block on an mma + ldmatrix loop).
    const uint32_t start = uint32_t(tls_worker->next_random() % 32);
    for (uint32_t k = 0; k < 32; ++k) {
        const uint32_t lane = (start + k) % 32;
        if ((mask >> lane & 1) && lane != f->lane) {
            w.lanes[lane]->state = FiberState::kRunnable;
            tls_worker->push_front(w.lanes[lane]);
        }
    }
}

WarpSlot& my_slot() { return tls_worker->warps[tls_fiber->warp].slot[tls_fiber->lane]; }

}  // namespace

void syncwarp(unsigned mask) { rendezvous(kOpSyncwarp, mask); }

uint32_t shfl(unsigned mask, uint32_t value, ShflMode mode, unsigned lane_arg, int width) {
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        fail(SINKLESS_SIM_ERR_CONFIG, "shuffle width %d is not a power of two in 1..32", width);
    }
    WarpSlot& s = my_slot();
    s.in[0] = value;
    s.in[1] = lane_arg;
    s.in[2] = uint32_t(width);
    rendezvous(kOpShfl + mode, mask);
    return s.out[0];
}

uint32_t ballot(unsigned mask, int predicate) {
    WarpSlot& s = my_slot();
    s.in[0] = predicate != 0;
    rendezvous(kOpBallot, mask);
    return s.out[0];
}

void ldmatrix(uint32_t* r, int count, bool trans, const void* smem_row) {
    WarpSlot& s = my_slot();
    s.addr = smem_row;
    const int log2 = count == 4 ? 2 : count == 2 ? 1 : 0;
    rendezvous(kOpLdmatrix + 2 * log2 + (trans ? 1 : 0), 0xffffffffu);
    for (int i = 0; i < count; ++i) r[i] = s.out[i];
}

void mma_m16n8k16(float* d, const uint32_t* a, const uint32_t* b, bool bf16) {
    WarpSlot& s = my_slot();
    for (int i = 0; i < 4; ++i) s.in[i] = a[i];
    s.in[4] = b[0];
    s.in[5] = b[1];
    for (int i = 0; i < 4; ++i) s.in[6 + i] = float_bits(d[i]);
    rendezvous(bf16 ? kOpMmaBf16 : kOpMmaF16, 0xffffffffu);
    for (int i = 0; i < 4; ++i) d[i] = bits_float(s.out[i]);
}

}  // namespace sim
}  // namespace sinkless
