// Bank conflicts of ld.shared, st.shared and cp.async in the emulator.
//
// The model. Shared memory is 32 banks of 4-byte words; a word lives in bank (byte offset / 4)
// mod 32. The GPU serves one warp's access instruction in wavefronts: accesses of up to 4 bytes
// in one, 8-byte accesses one half-warp at a time (lanes 0-15, then 16-31) and 16-byte accesses
// one quarter-warp at a time (lanes 0-7, 8-15, ...), so 128 bytes a wavefront at best. Within
// one such phase, lanes that touch the same word share it, but two different words in the same
// bank take a wavefront each: a phase costs the most distinct words any one bank holds. An
// access is conflict-free when every phase it has lanes in costs one wavefront, which is what
// the kernels' layouts are built for (tile.cuh), so the emulator fails any other with
// SINKLESS_SIM_ERR_BANK_CONFLICT, naming two lanes, their bytes and the bank, as it fails an
// ldmatrix whose rows collide (sim_warp.cpp). A cp.async's write into shared memory is an access
// of 16 bytes by the same rule.
//
// Finding the instruction. The emulator runs a warp's lanes one after another, not in step, so
// each lane counts its accesses at each place in the kernel (the return address into it) since
// the warp last converged (a warp collective of all its lanes, a block barrier, the block's
// end), and the n-th access of every lane at one place is taken to be one instruction. That
// holds for code every lane runs alike, and for loops whose trip count differs between lanes (a
// lane that stops early just leaves the last groups). It would not hold for an access guarded
// inside a loop the host compiler keeps rolled, where a lane skips an iteration before others it
// makes: its later accesses there would shift into the wrong group. No kernel here guards a
// shared access that way (store_rows skips only a thread's last passes).
#include "sim_internal.h"

#include <stdio.h>

namespace sinkless {
namespace sim {

void note_shared_access(uint32_t off, uint32_t bytes, SharedAccessKind kind, const void* site) {
    const Fiber& f = *tls_fiber;
    Warp& w = tls_worker->warps[f.warp];
    size_t i = 0;
    while (i < w.live_sites && w.access_sites[i].site != site) ++i;
    if (i == w.live_sites) {
        if (i == w.access_sites.size()) w.access_sites.emplace_back();
        SharedAccessSite& fresh = w.access_sites[i];
        fresh.site = site;
        fresh.bytes = bytes;
        fresh.kind = kind;
        for (uint32_t& n : fresh.count) n = 0;
        fresh.groups.clear();
        ++w.live_sites;
    }
    SharedAccessSite& at = w.access_sites[i];
    const uint32_t n = at.count[f.lane]++;
    if (n == at.groups.size()) at.groups.push_back(SharedAccessGroup{0, {}});
    SharedAccessGroup& g = at.groups[n];
    g.lanes |= 1u << f.lane;
    g.off[f.lane] = off;
}

void forget_shared_accesses(Warp& w) { w.live_sites = 0; }

namespace {

const char* kind_name(SharedAccessKind kind) {
    switch (kind) {
    case kAccessLoad: return "ld.shared";
    case kAccessStore: return "st.shared";
    default: return "cp.async";
    }
}

// The first two lanes of a phase that touch different words of one bank.
struct Conflict {
    uint32_t lane_a, lane_b, word_a, word_b, bank;
};

// Wavefronts of the lanes [lo, lo + count) of g (0 when none of them takes part); *c gets the
// first conflict when there is one and c->bank is still unset.
int phase_wavefronts(const SharedAccessGroup& g, uint32_t bytes, uint32_t lo, uint32_t count, Conflict* c) {
    uint32_t words[32][32];
    uint32_t first_lane[32][32];
    uint32_t held[32] = {};
    int worst = 0;
    for (uint32_t lane = lo; lane < lo + count; ++lane) {
        if (!(g.lanes >> lane & 1)) continue;
        const uint32_t first = g.off[lane] / 4, last = (g.off[lane] + bytes - 1) / 4;
        for (uint32_t word = first; word <= last; ++word) {
            const uint32_t bank = word % 32;
            uint32_t i = 0;
            while (i < held[bank] && words[bank][i] != word) ++i;
            if (i < held[bank]) continue;
            words[bank][i] = word;
            first_lane[bank][i] = lane;
            ++held[bank];
            if (int(held[bank]) > worst) worst = int(held[bank]);
            if (held[bank] == 2 && c->bank == UINT32_MAX) {
                *c = Conflict{first_lane[bank][0], lane, words[bank][0], word, bank};
            }
        }
    }
    return worst;
}

}  // namespace

int check_bank_conflicts(Warp& w, size_t index, char* msg, size_t len) {
    for (size_t s = 0; s < w.live_sites; ++s) {
        const SharedAccessSite& at = w.access_sites[s];
        for (const SharedAccessGroup& g : at.groups) {
            const uint32_t phases = at.bytes <= 4 ? 1 : at.bytes / 4;
            const uint32_t per = 32 / phases;
            int wavefronts = 0, ideal = 0;
            Conflict c{0, 0, 0, 0, UINT32_MAX};
            for (uint32_t p = 0; p < phases; ++p) {
                const int n = phase_wavefronts(g, at.bytes, p * per, per, &c);
                wavefronts += n;
                ideal += n > 0 ? 1 : 0;
            }
            if (wavefronts == ideal) continue;
            snprintf(msg, len,
                     "%s of %u bytes by warp %zu (lanes %08x): lanes %u and %u touch shared bytes %u and %u, two "
                     "words of bank %u, so it takes %d wavefronts where %d would do: a bank conflict",
                     kind_name(at.kind), at.bytes, index, g.lanes, c.lane_a, c.lane_b, 4 * c.word_a,
                     4 * c.word_b, c.bank, wavefronts, ideal);
            forget_shared_accesses(w);
            return SINKLESS_SIM_ERR_BANK_CONFLICT;
        }
    }
    forget_shared_accesses(w);
    return SINKLESS_SIM_OK;
}

}  // namespace sim
}  // namespace sinkless
