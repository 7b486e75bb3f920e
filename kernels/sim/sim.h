// The SIMT emulator as kernel code sees it (host only): the CUDA index types, the current
// fiber's coordinates, and the runtime calls behind compat.cuh's intrinsics and ptx.cuh's
// emulated instructions. Pure arithmetic (f16/bf16 conversions, ex2, tanh) is inline here so
// the kernels' hot loops do not pay a call per element; everything that needs the warp or the
// block goes through sim_*.cpp.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace sinkless {
namespace sim {

// What threadIdx/blockIdx/... read. A fiber's view stays valid while it runs; the runtime
// points the thread-local pointers at the running fiber and block on every switch.
struct ThreadView {
    uint3 thread_idx;
};

struct BlockView {
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    unsigned char* smem;  // dynamic shared memory, 128-byte aligned
};

// __thread, not thread_local: a plain TLS slot, so reading it costs no wrapper call.
extern __thread const ThreadView* tls_thread;
extern __thread const BlockView* tls_block;

// Block barrier; the call site names the barrier, so threads waiting at two different
// __syncthreads() are reported as a divergent barrier rather than silently matched.
void syncthreads(const char* file, int line);

enum ShflMode { kShflIdx = 0, kShflUp = 1, kShflDown = 2, kShflXor = 3 };
void syncwarp(unsigned mask);
uint32_t shfl(unsigned mask, uint32_t value, ShflMode mode, unsigned lane_arg, int width);
// __ballot_sync: bit i set when lane i is in mask and passed a nonzero predicate.
uint32_t ballot(unsigned mask, int predicate);

float atomic_add(float* address, float value);
// red.global.add.v2.f32: two atomic adds, the address checked for 8-byte alignment.
void red_add_f32x2(float* address, float v0, float v1);

// st.shared of `bytes` (naturally aligned, up to 16) from src to dst in dynamic shared memory,
// checked against the reads it must be ordered after (sim_shared.cpp).
void st_shared(void* dst, const void* src, size_t bytes);
// ld.shared of `bytes` (naturally aligned, up to 16) from src in dynamic shared memory to dst,
// checked against the write it reads (sim_shared.cpp).
void ld_shared(void* dst, const void* src, size_t bytes);

void cp_async_16(void* smem_dst, const void* gmem_src, bool full);
void cp_async_commit();
void cp_async_wait(int pending_groups);
void cp_async_wait_all();

// ldmatrix .x1/.x2/.x4 (count 1, 2, 4), optionally .trans; r receives count registers.
void ldmatrix(uint32_t* r, int count, bool trans, const void* smem_row);
// mma.sync.m16n8k16.row.col, f32 accumulators; bf16 selects the input type.
void mma_m16n8k16(float* d, const uint32_t* a, const uint32_t* b, bool bf16);

// Hopper's warpgroup MMA (sim_wgmma.cpp). smem_address is the "shared-window address" of a
// pointer into dynamic shared memory: its offset from the block's base, which the emulator
// places on a 1024-byte boundary like the GPU's window, so the descriptors' swizzle (a function
// of address bits) comes out the same on both sides.
uint32_t smem_address(const void* p);
void wgmma_fence();
void wgmma_commit();
void wgmma_wait(int pending_groups);
void fence_proxy_async();
// wgmma.mma_async.m64nNk16, f32 accumulators: d[N / 2] per thread; A from registers a[4] when a
// is not null, else from shared memory by desc_a; a_m_major and b_n_major are the instruction's
// imm-trans-a and imm-trans-b. Modelled: register A with B N-major, and shared A with both
// K-major or A M-major with B N-major.
void wgmma(float* d, int n, const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool a_m_major, bool b_n_major,
           bool bf16);

// Hopper's asynchronous transaction barriers, tensor copies and named barriers (sim_tma.cpp).
// mbarrier_arrive announces tx_bytes (0: none) for the current phase, then arrives once;
// mbarrier_wait parks the thread until the phase of that parity has completed. tma_load reads a
// box of the sinkless_tma_desc at `map` (tma_params.h) at once and lands it in shared memory, then
// completes its bytes on `bar`, as late as the schedule allows: when no thread of the block can
// run any more. named_barrier is bar.sync (wait) or bar.arrive on barrier `id` of `threads`.
void mbarrier_init(uint64_t* bar, uint32_t count);
void mbarrier_arrive(uint64_t* bar, uint32_t tx_bytes);
void mbarrier_wait(uint64_t* bar, uint32_t parity);
void tma_load(void* smem_dst, const void* map, const int32_t* coords, int rank, uint64_t* bar);
void named_barrier(uint32_t id, uint32_t threads, bool wait);

inline uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// cvt.rn.f16.f32: round to nearest even, subnormal results kept, overflow to inf, and any NaN
// becomes the canonical 0x7fff (as the GPU does; the sign and payload are dropped).
inline uint16_t f32_to_f16(float f) {
    const uint32_t x = float_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fff;
    if (a >= 0x47800000u) return uint16_t(sign | 0x7c00u);  // >= 2^16: past the inf rounding point
    uint32_t h, rem, half;
    if (a >= 0x38800000u) {  // normal f16: rebias the exponent by 127 - 15, drop 13 mantissa bits
        const uint32_t r = a - 0x38000000u;
        h = r >> 13;
        rem = r & 0x1fffu;
        half = 0x1000u;
    } else {
        if (a <= 0x33000000u) return uint16_t(sign);  // <= 2^-25: rounds to zero (2^-25 is a tie to even 0)
        // f16 subnormal: value / 2^-24 = mantissa(with hidden bit) >> (126 - exponent)
        const uint32_t shift = 126u - (a >> 23);
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
    }
    // A carry out of the mantissa steps the exponent, which is the correctly rounded result,
    // up to and including 65520 -> inf.
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return uint16_t(sign | h);
}

// cvt.rn.bf16.f32: bf16 is the top half of an f32, so rounding is an add with carry; NaN -> 0x7fff.
inline uint16_t f32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// cvt.f32.f16: exact; a NaN becomes the canonical 0x7fffffff.
inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;
    if (em >= 0x7c00u) return bits_float(em == 0x7c00u ? (sign | 0x7f800000u) : 0x7fffffffu);
    // em << 13 is an f32 (an f32 subnormal for an f16 subnormal) whose exponent is 112 short;
    // scaling by 2^112 is exact, so one multiply covers normals and subnormals alike.
    return bits_float(sign | float_bits(bits_float(em << 13) * 0x1p112f));
}

// bf16 -> f32 is the same bits in the top half on every device, payload included.
inline float bf16_to_f32(uint16_t h) { return bits_float(uint32_t(h) << 16); }

// ex2.approx.ftz.f32: subnormal inputs and results flush to zero. The GPU's approximation has
// about 2 ulp of error; this returns libm's (nearly correctly rounded) exp2, so the two agree
// exactly only where the result is exact (integer inputs), and within a few ulp elsewhere.
inline float ex2_approx(float x) {
    if (fabsf(x) < 0x1p-126f) x = 0.f;
    const float y = exp2f(x);
    return y < 0x1p-126f ? 0.f : y;
}

// tanh.approx.f32: the PTX ISA bounds the GPU's relative error by about 2^-11 (2^-10.987 is
// used, the larger of the figures it gives for tanh.approx; src/conformance/isa.rs). The emulator
// returns tanh off by nearly that bound (2^-11), up or down as a hash of the input's bits picks,
// so a kernel whose accuracy depends on tanh.approx (the sigmoid, 0.5 + 0.5 tanh(x/2)) is tested
// against the hardware's worst case rather than against libm's correctly rounded value. The
// result stays within [-1, 1], as tanh's does.
inline float tanh_approx(float x) {
    const uint32_t h = float_bits(x) * 0x9e3779b1u;
    const float rel = (h >> 31) ? 0x1p-11f : -0x1p-11f;
    const float t = tanhf(x);
    if (!(fabsf(t) < 1.0f)) return t;  // NaN and the saturated +-1 pass through exactly
    return fminf(1.0f, fmaxf(-1.0f, t * (1.0f + rel)));
}

// rcp.approx.ftz.f32: subnormal inputs flush to a zero of their sign (so 1/x is an infinity of
// that sign), subnormal results flush to a signed zero. The ISA allows 1 ulp of error; this
// returns the correctly rounded 1/x, within half an ulp.
inline float rcp_approx(float x) {
    if (fabsf(x) < 0x1p-126f) x = copysignf(0.f, x);
    const float y = 1.0f / x;
    return fabsf(y) < 0x1p-126f ? copysignf(0.f, y) : y;
}

}  // namespace sim
}  // namespace sinkless
