// Score activations as policies of the shared attention kernels.
//
// Every policy sees raw scores acc = q.k (plus score_init(), see below) in the f32 accumulator
// layout of tile.cuh and turns them into the weights that multiply V:
//   softmax            p = exp(scale*acc - lse), online: running row max m and row sum l in
//                      log2 units (ex2 with scale_log2 = scale * log2(e) folded into one FFMA).
//                      A sink logit is a key without value: the state starts at m = sink*log2(e),
//                      l = 1 instead of m = -inf, l = 0, which is exactly exp(sink) in Z.
//   sigmoid            p = sigmoid(scale*acc) with acc started at b/scale, so the bias costs
//                      nothing per element; one MUFU op (ex2) and a polynomial on the FMA pipe,
//                      within 2^-14 relative for every x (2^-11.46 in its bf16 forward; see
//                      sigmoid_scaled for how, and for why not FlashSigmoid's 0.5 + 0.5*tanh(0.5*x)).
//   normalized sigmoid the same p, divided at the end by the row sum L = sum_j p.
// Masked entries: softmax fills -inf before the max; the sigmoids overwrite p with 0 after the
// activation (sigmoid of any finite score is not 0), so masked keys contribute exactly 0.
//
// Backward, per element, with a = activation value recomputed from the scores, dp = dO.v and
// the per-query statistics prepared by prep_stat / the row dot D = rowsum(dO * O):
//   softmax            a = exp(s - lse), weight for dV = a,       dS = a (dp - D)
//   sigmoid            a = sigmoid(s),   weight for dV = a,       dS = a (1 - a) dp
//   normalized sigmoid a = sigmoid(s),   weight for dV = a / L,   dS = a (1 - a) (dp - D) / L
// The normalized sigmoid line: o = sum_j a_j v_j / L with L = sum_j a_j gives
//   d o / d a_j = (v_j - o) / L, so the loss gradient of a_j is (dp_j - D) / L with D = dO.o
//   (the same row statistic as softmax's), and the sigmoid's derivative adds a_j (1 - a_j).
#pragma once

#include "sinkless/compat.cuh"
#include "sinkless/ptx.cuh"
#include "sinkless/attn_params.h"

namespace sinkless {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Quad reductions: a row of the accumulator is spread over the 4 lanes sharing lane / 4.
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// 1/x for finite x > 0 given lg = log2(x), without a division: nvcc's IEEE division has a
// called slow path, and a call with the output accumulator live made ptxas spill it.
// ex2(-lg) is within a few ulp; one Newton step brings it to about 1 ulp.
__device__ __forceinline__ float reciprocal_from_log2(float x, float lg) {
    const float r = ptx::ex2_approx(-lg);
    return r * (2.f - x * r);
}
// x > 0 finite, or anything for which the caller discards the result
__device__ __forceinline__ float reciprocal(float x) { return reciprocal_from_log2(x, logf(x) * kLog2e); }

// sigmoid(x) for x = acc * scale_log2 / log2(e): r = 1 / (1 + e) for x >= 0 and e r for x < 0,
// with e = 2^(-|x| log2 e) in [0, 1] from one MUFU op, and r = 1 + e q(e), q a polynomial fitted
// (minimax, coefficients rounded to f32) so that r's relative error is least over [0, 1] with
// r(0) = 1 exactly. Two fits, errors measured in f32 arithmetic over 4M points of x in [-87, 90]:
//   kDegree 4: 2^-14.04 at most, eight times below f16's rounding of p (2^-11) and 64 times below
//     bf16's (2^-8). Everywhere but the plain sigmoid's bf16 forward.
//   kDegree 3: 2^-11.46 at most, 11 times below bf16's rounding, one FFMA fewer per score. The
//     plain sigmoid's bf16 forward, whose only use of p is the bf16 operand of P V: 64
//     instructions a step fewer per thread at hd 128 (SASS, sm_90a, both mask branches of the
//     loop: 2011 -> 1883; the overlapped wgmma forward 1779 -> 1651). The backward keeps degree 4
//     in both dtypes: its 1 - p near saturation is e q(e), where degree 3 is 3.5 times further
//     off (5.4e-7 against 1.5e-7 absolute for x > 10); so does the normalized sigmoid (its row
//     sum, see sigmoid_policy::sigmoid_in_tile).
// The error is relative, so it holds where p is tiny, as under the -ln(sk) bias (p near 1/sk); and
// it vanishes as e does, so a saturated score gives p = 1 and the backward's 1 - p stays right
// (an unconstrained degree-4 fit, 2^-14.25, left 5e-5 there, which the f16 gradients of large
// logits in tests/attention_backward.rs failed by 2 to 3.5x). With the argument's multiply, the
// FFMA, the compare and the select (a predicated multiply) it is 8 FP32-pipe instructions (7 at
// degree 3) and one MUFU per score in the SASS, where a linear seed and two Newton steps took 9.
// FlashSigmoid's 0.5 + 0.5 tanh(x / 2) would take two FP32 instructions, but tanh.approx may be
// off by 2^-11 relative (PTX ISA), and adding 0.5 turns that into an absolute error of about
// 2^-12 on p, huge relative to p wherever p is small: with the emulator's tanh off by that bound,
// the outputs of check::long_key_cases (sk = 4096) missed the tolerance rule by about 18x in bf16
// and 140x in f16, and at sk = 113 f16 already missed by 3x. So neither dtype uses it.
// Where e flushes to 0 (x < -87) p is 0, within the smallest normal f32 of the exact value;
// NaN stays NaN. conf_math checks both bounds against the float64 sigmoid (conformance suite).
template <int kDegree = 4>
__device__ __forceinline__ float sigmoid_scaled(float acc, float scale_log2) {
    static_assert(kDegree == 3 || kDegree == 4, "the two fits above");
    const float e = ptx::ex2_approx(-fabsf(acc) * scale_log2);
    float q;
    if constexpr (kDegree == 4) {
        q = fmaf(-0.10911263525485992f, e, 0.43077701330184937f);
        q = fmaf(q, e, -0.7835405468940735f);
        q = fmaf(q, e, 0.9591548442840576f);
        q = fmaf(q, e, -0.9973081946372986f);
    } else {
        q = fmaf(0.160438567f, e, -0.551473498f);
        q = fmaf(q, e, 0.880015373f);
        q = fmaf(q, e, -0.988803029f);
    }
    const float r = fmaf(q, e, 1.f);
    return acc >= 0.f ? r : e * r;
}

// The sigmoid bias of head h for a sequence with sk keys.
template <class P>
__device__ __forceinline__ float sigmoid_bias(const P& p, int h, int sk) {
    if (p.bias_kind == SINKLESS_BIAS_PER_HEAD) return p.bias[h];
    if (p.bias_kind == SINKLESS_BIAS_NEG_LOG_SK) return -logf(static_cast<float>(sk > 0 ? sk : 1));
    return p.bias_value;
}

struct softmax_policy {
    static constexpr bool kRowStat = true;   // forward writes lse
    static constexpr bool kRowDot = true;    // backward reads D = rowsum(dO * O)
    static constexpr bool kBiasGrad = false; // backward writes db
    static constexpr bool kTallTilesAtHd128 = true;  // see fwd_traits
    static constexpr bool kQkTestAtHd128 = true;        // see fwd_traits
    static constexpr bool kDvRowTestFromHd128 = false;  // see bwd_traits
    static constexpr bool kDqKeyTestAtHd128 = false;    // see bwd_traits
    static constexpr bool kQRowTestAtHd128 = false;     // see bwd_traits

    float scale_log2;
    float sink_log2;  // -inf without a sink

    template <class P>
    __device__ __forceinline__ softmax_policy(const P& p, int h, int /*sk*/) : scale_log2(p.scale * kLog2e) {
        set_head(p, h);
    }
    // Re-targets the policy at query head h of the same sequence (cheap: one load).
    template <class P>
    __device__ __forceinline__ void set_head(const P& p, int h) {
        sink_log2 = p.sink ? p.sink[h] * kLog2e : -INFINITY;
    }

    __device__ __forceinline__ float score_init() const { return 0.f; }

    // ---- forward, online ----
    template <int MT>
    struct state {
        float m[MT][2];  // running max of scale_log2 * acc, per owned row
        float l[MT][2];  // this lane's partial row sum of exp2(x - m)
    };
    template <int MT>
    __device__ __forceinline__ void init(state<MT>& st, int lane) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                st.m[mt][h] = sink_log2;
                // the sink's exp2(sink - m) = 1 is counted once per row, by the quad's first lane
                st.l[mt][h] = (sink_log2 != -INFINITY && (lane & 3) == 0) ? 1.f : 0.f;
            }
    }
    // s: raw scores of one key tile -> unnormalised probabilities exp2(x - m), o and l kept
    // relative to the same m.
    //
    // Lazy rescaling: m is the running maximum only up to kRescaleSlack. A tile whose maximum
    // stays within m + kRescaleSlack (log2 units) leaves m, l and o alone, and its p may reach
    // 2^kRescaleSlack = 256: harmless in the f32 accumulators and in T (f16 reaches 65504), and
    // p rounds to T with the same relative error at any magnitude. Only when some row of the
    // warp overshoots does the warp move every row's m to its true maximum and rescale o,
    // which is kMTiles * kHD / 2 multiplies per thread (4 per score at hd 128 with 32-key
    // tiles). After the first tiles of a row that is rare, since the maximum then rarely grows
    // by a factor of 256. The vote keeps the branch uniform over the warp.
    //
    // apply() does it all; the wgmma forward, whose o is still being accumulated by the tensor
    // core while the next scores are turned into probabilities, splits it: apply_deferred() moves
    // m and l and returns whether o needs rescale(corr) once the product in flight is done.
    // T, the element type's traits, is for the sigmoids, whose forward picks its fit by it.
    static constexpr float kRescaleSlack = 8.f;
    template <bool kMask, class T, int MT, int NT, int NO, class MaskFn>
    __device__ __forceinline__ void apply(state<MT>& st, float (&s)[MT][NT][4], float (&o)[MT][NO][4],
                                          MaskFn&& mask) const {
        float corr[MT][2];
        if (rebase<kMask>(st, s, corr, mask)) rescale(corr, o);
        exponentiate(st, s);
    }
    template <bool kMask, class T, int MT, int NT, class MaskFn>
    __device__ __forceinline__ bool apply_deferred(state<MT>& st, float (&s)[MT][NT][4], float (&corr)[MT][2],
                                                   MaskFn&& mask) const {
        const bool moved = rebase<kMask>(st, s, corr, mask);
        exponentiate(st, s);
        return moved;
    }
    template <int MT, int NO>
    __device__ __forceinline__ void rescale(const float (&corr)[MT][2], float (&o)[MT][NO][4]) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int nt = 0; nt < NO; ++nt) {
                    o[mt][nt][2 * h] *= corr[mt][h];
                    o[mt][nt][2 * h + 1] *= corr[mt][h];
                }
    }
    // Masks s, and where some row of the warp overshoots moves every row's m to its maximum,
    // scales l to match and returns true with the factors o needs in corr.
    template <bool kMask, int MT, int NT, class MaskFn>
    __device__ __forceinline__ bool rebase(state<MT>& st, float (&s)[MT][NT][4], float (&corr)[MT][2],
                                           MaskFn&& mask) const {
        if (kMask) mask(s, -INFINITY);
        float tile_max[MT][2];
        bool overshoot = false;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
                tile_max[mt][h] = quad_max(mx) * scale_log2;
                // false while both are -inf (a row that has seen only masked keys)
                overshoot |= tile_max[mt][h] > st.m[mt][h] + kRescaleSlack;
            }
        if (!__any_sync(0xffffffffu, overshoot)) return false;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float m_new = fmaxf(st.m[mt][h], tile_max[mt][h]);
                // exp2(-inf - m_new) = 0 for a row whose first visible key this is; a row still
                // at -inf keeps corr = exp2(-inf - 0) = 0 on an o and l that are 0.
                corr[mt][h] = ptx::ex2_approx(st.m[mt][h] - (m_new == -INFINITY ? 0.f : m_new));
                st.m[mt][h] = m_new;
                st.l[mt][h] *= corr[mt][h];
            }
        return true;
    }
    // s -> exp2(scale_log2 * s - m), summed into l.
    template <int MT, int NT>
    __device__ __forceinline__ void exponentiate(state<MT>& st, float (&s)[MT][NT][4]) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                // A row that has seen only masked keys keeps m = -inf; using 0 as the offset then
                // gives exp2(-inf) = 0 everywhere instead of exp2(-inf + inf) = NaN.
                const float m_use = st.m[mt][h] == -INFINITY ? 0.f : st.m[mt][h];
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const float p = ptx::ex2_approx(s[mt][nt][2 * h + e] * scale_log2 - m_use);
                        s[mt][nt][2 * h + e] = p;
                        sum += p;
                    }
                st.l[mt][h] += sum;
            }
    }
    // Normalises o; stat[mt][h] = lse (natural log), -inf for a row with no key and no sink.
    template <int MT, int NO>
    __device__ __forceinline__ void finalize(state<MT>& st, float (&o)[MT][NO][4], float (&stat)[MT][2]) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float l = quad_sum(st.l[mt][h]);
                const float lg = log2f(l > 0.f ? l : 1.f);  // one log serves lse and 1/l
                const float inv = l > 0.f ? reciprocal_from_log2(l, lg) : 0.f;
#pragma unroll
                for (int nt = 0; nt < NO; ++nt) {
                    o[mt][nt][2 * h] *= inv;
                    o[mt][nt][2 * h + 1] *= inv;
                }
                stat[mt][h] = l > 0.f ? (st.m[mt][h] + lg) * kLn2 : -INFINITY;
            }
    }

    // ---- backward, per element ----
    // lse -> log2 units; +inf (so every p is 0) for a row that saw nothing.
    __device__ __forceinline__ float prep_stat(float lse) const {
        return lse == -INFINITY ? INFINITY : lse * kLog2e;
    }
    __device__ __forceinline__ float act(float s, float stat) const {
        return ptx::ex2_approx(s * scale_log2 - stat);
    }
    __device__ __forceinline__ float dv_weight(float a, float /*stat*/) const { return a; }
    __device__ __forceinline__ float grad(float a, float dp, float d, float /*stat*/) const {
        return a * (dp - d);
    }
};

// kRcpEvery picks how the forward evaluates the sigmoid, per score n-tile: 0 (the default)
// everywhere by the polynomial (sigmoid_scaled), one MUFU op and eight FP32 ones (seven for the
// plain sigmoid in bf16); k > 0 by sigmoid_rcp() in every k-th n-tile, two MUFU ops and two
// FP32 ones. The MUFU pipe does 16 results per SM and clock on sm_80 and sm_90, the FP32 pipe
// 64 (sm_80) or 128 (sm_90), so which mix keeps both pipes and the tensor cores busy depends on
// the GPU and the head dim: the benchmark measures k = 1, 2, 4 as forward variants (config.rs,
// KernelVariant), and k = 1 in the backward, whose recomputed p then comes from sigmoid_rcp()
// everywhere.
template <bool kNormalized, int kRcpEvery = 0>
struct sigmoid_policy {
    static constexpr bool kRowStat = kNormalized;  // forward writes L = sum_j p
    static constexpr bool kRowDot = kNormalized;
    static constexpr bool kBiasGrad = true;
    static constexpr bool kTallTilesAtHd128 = !kNormalized;  // see fwd_traits
    static constexpr bool kQkTestAtHd128 = false;           // see fwd_traits
    static constexpr bool kDvRowTestFromHd128 = true;       // see bwd_traits
    static constexpr bool kDqKeyTestAtHd128 = kNormalized;  // see bwd_traits
    static constexpr bool kQRowTestAtHd128 = kNormalized;   // see bwd_traits

    float scale_log2;  // scale * log2(e)
    float inv_scale;
    float bias_seq;  // the bias when it does not depend on the head
    float bias_raw;  // b / scale, the accumulator's starting value

    template <class P>
    __device__ __forceinline__ sigmoid_policy(const P& p, int h, int sk)
        : scale_log2(p.scale * kLog2e), inv_scale(reciprocal(p.scale)), bias_seq(sigmoid_bias(p, h, sk)) {
        set_head(p, h);
    }
    // Re-targets the policy at query head h of the same sequence (cheap: at most one load).
    template <class P>
    __device__ __forceinline__ void set_head(const P& p, int h) {
        bias_raw = (p.bias_kind == SINKLESS_BIAS_PER_HEAD ? p.bias[h] : bias_seq) * inv_scale;
    }

    __device__ __forceinline__ float score_init() const { return bias_raw; }
    // sigmoid(x), x = scale * acc, by the degree-4 fit: the backward's in both dtypes
    __device__ __forceinline__ float sigmoid(float acc) const { return sigmoid_scaled<4>(acc, scale_log2); }
    // sigmoid(x) = 1 / (1 + 2^(-x log2 e)) with rcp.approx: within a few f32 ulp for every x;
    // 2^(-x log2 e) overflows to +inf for very negative x, and rcp.approx(inf) is 0.
    __device__ __forceinline__ float sigmoid_rcp(float acc) const {
        return ptx::rcp_approx(1.f + ptx::ex2_approx(-acc * scale_log2));
    }
    // The forward's evaluation in score n-tile nt (a constant once the loops are unrolled), for
    // element type T: the polynomial of degree 3 for the plain sigmoid in bf16, else 4 (see
    // sigmoid_scaled). The normalized sigmoid's row sum L is an output of its own, and a sum
    // keeps the polynomial's error where P V's rounding to bf16 hides it: with degree 3, L
    // missed the tolerance rule by up to 3x in bf16 (tests/attention_forward.rs).
    template <class T>
    __device__ __forceinline__ float sigmoid_in_tile(float acc, int nt) const {
        constexpr int kEvery = kRcpEvery > 0 ? kRcpEvery : 1;
        if (kRcpEvery > 0 && nt % kEvery == 0) return sigmoid_rcp(acc);
        return sigmoid_scaled<T::kBf16 && !kNormalized ? 3 : 4>(acc, scale_log2);
    }

    template <int MT>
    struct state {
        float l[MT][2];  // normalized: this lane's partial row sum
    };
    template <int MT>
    __device__ __forceinline__ void init(state<MT>& st, int /*lane*/) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) st.l[mt][0] = st.l[mt][1] = 0.f;
    }
    template <bool kMask, class T, int MT, int NT, int NO, class MaskFn>
    __device__ __forceinline__ void apply(state<MT>& st, float (&s)[MT][NT][4], float (&)[MT][NO][4],
                                          MaskFn&& mask) const {
        float corr[MT][2];
        apply_deferred<kMask, T>(st, s, corr, mask);
    }
    // o is never rescaled
    template <bool kMask, class T, int MT, int NT, class MaskFn>
    __device__ __forceinline__ bool apply_deferred(state<MT>& st, float (&s)[MT][NT][4], float (&)[MT][2],
                                                   MaskFn&& mask) const {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][nt][e] = sigmoid_in_tile<T>(s[mt][nt][e], nt);
        if (kMask) mask(s, 0.f);
        if (kNormalized) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                    st.l[mt][0] += s[mt][nt][0] + s[mt][nt][1];
                    st.l[mt][1] += s[mt][nt][2] + s[mt][nt][3];
                }
        }
        return false;
    }
    template <int MT, int NO>
    __device__ __forceinline__ void rescale(const float (&)[MT][2], float (&)[MT][NO][4]) const {}
    template <int MT, int NO>
    __device__ __forceinline__ void finalize(state<MT>& st, float (&o)[MT][NO][4], float (&stat)[MT][2]) const {
        if constexpr (kNormalized) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const float l = quad_sum(st.l[mt][h]);
                    // a row with no visible key stays 0
                    const float inv = l > 0.f ? reciprocal(l) : 0.f;
#pragma unroll
                    for (int nt = 0; nt < NO; ++nt) {
                        o[mt][nt][2 * h] *= inv;
                        o[mt][nt][2 * h + 1] *= inv;
                    }
                    stat[mt][h] = l;
                }
        }
    }

    // backward: stat is 1 / L (normalized), unused otherwise
    __device__ __forceinline__ float prep_stat(float l) const {
        return kNormalized ? (l > 0.f ? reciprocal(l) : 0.f) : 0.f;
    }
    __device__ __forceinline__ float act(float s, float /*stat*/) const {
        return kRcpEvery > 0 ? sigmoid_rcp(s) : sigmoid(s);
    }
    __device__ __forceinline__ float dv_weight(float a, float stat) const { return kNormalized ? a * stat : a; }
    // a (1 - a) as fmaf(-a, a, a): one rounding (the product had one or two) and one instruction
    // fewer per score (the sigmoid backward's loop, sm_90a bf16: hd 128 1193 -> 1177, the wgmma
    // one 1356 -> 1324). The normalized sigmoid keeps the product: with the FMA ptxas spilled
    // 4 to 16 bytes at hd 128.
    __device__ __forceinline__ float grad(float a, float dp, float d, float stat) const {
        return kNormalized ? a * (1.f - a) * (dp - d) * stat : fmaf(-a, a, a) * dp;
    }
};

}  // namespace sinkless
