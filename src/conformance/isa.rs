//! What each conformance kernel must write, worked out from the PTX ISA and the CUDA
//! programming guide in plain Rust: no emulator code and no `half` crate, so a shared mistake
//! cannot hide. Every function here is the executable form of one table or rule of the ISA.

/// `2^e` as an `f64`, exactly (built from the exponent bits; `e` in `-1022..=1023`).
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// `floor(log2(v))` of a positive, finite, normal `f64` (every `f32` is one once widened).
fn exponent(v: f64) -> i32 {
    ((v.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// A binary floating-point format with a hidden bit: fraction bits, smallest and largest normal
/// exponent, exponent bias.
#[derive(Clone, Copy)]
struct Format {
    fraction_bits: i32,
    min_exponent: i32,
    max_exponent: i32,
    bias: i32,
}

/// IEEE binary16: 10 fraction bits, normals from `2^-14`, largest finite 65504.
const F16: Format = Format {
    fraction_bits: 10,
    min_exponent: -14,
    max_exponent: 15,
    bias: 15,
};

/// bfloat16: the top half of an `f32`, 7 fraction bits, normals from `2^-126`.
const BF16: Format = Format {
    fraction_bits: 7,
    min_exponent: -126,
    max_exponent: 127,
    bias: 127,
};

impl Format {
    /// The first power of two past the largest finite value: a rounded magnitude that reaches it
    /// is infinity.
    fn overflow(self) -> f64 {
        pow2(self.max_exponent + 1)
    }

    /// Rounds a finite magnitude to the nearest representable one, ties to even (the `.rn` of
    /// `cvt.rn`): the grid spacing is `2^(e - fraction_bits)` in binade `e`, and the subnormal
    /// spacing below the smallest normal. The quotient is exact in `f64` because an `f32` has
    /// 24 significant bits.
    fn round(self, magnitude: f64) -> f64 {
        if magnitude == 0.0 {
            return 0.0;
        }
        let e = exponent(magnitude).max(self.min_exponent);
        let spacing = pow2(e - self.fraction_bits);
        (magnitude / spacing).round_ties_even() * spacing
    }

    /// The bits of a representable, finite, non-negative magnitude.
    fn encode(self, v: f64) -> u16 {
        let hidden = 1u32 << self.fraction_bits;
        if v < pow2(self.min_exponent) {
            return (v / pow2(self.min_exponent - self.fraction_bits)) as u16;
        }
        let e = exponent(v);
        let significand = (v / pow2(e - self.fraction_bits)) as u32;
        (((e + self.bias) as u32) << self.fraction_bits | (significand - hidden)) as u16
    }

    /// The value of a finite bit pattern's magnitude bits.
    fn decode(self, bits: u16) -> f64 {
        let e = i32::from(bits >> self.fraction_bits);
        let m = f64::from(u32::from(bits) & ((1 << self.fraction_bits) - 1));
        if e == 0 {
            m * pow2(self.min_exponent - self.fraction_bits)
        } else {
            (m + pow2(self.fraction_bits)) * pow2(e - self.bias - self.fraction_bits)
        }
    }

    /// `cvt.rn.{f16,bf16}.f32`: round to nearest even; subnormal results are kept (no `.ftz`);
    /// a magnitude that rounds to or past `overflow` is infinity; any NaN becomes the canonical
    /// NaN `0x7fff` (the ISA's rule for results of `cvt` to a 16-bit float).
    fn narrow(self, x: f32) -> u16 {
        let inf_bits = (((1u32 << (15 - self.fraction_bits)) - 1) << self.fraction_bits) as u16;
        if x.is_nan() {
            return 0x7fff;
        }
        let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
        if x.is_infinite() {
            return sign | inf_bits;
        }
        let v = self.round(f64::from(x.abs()));
        if v >= self.overflow() {
            sign | inf_bits
        } else {
            sign | self.encode(v)
        }
    }
}

/// `cvt.rn.f16.f32`: see [`Format::narrow`]; 65520 and above round to infinity.
pub(super) fn f32_to_f16(x: f32) -> u16 {
    F16.narrow(x)
}

/// `cvt.rn.bf16.f32`: see [`Format::narrow`].
pub(super) fn f32_to_bf16(x: f32) -> u16 {
    BF16.narrow(x)
}

/// `cvt.f32.f16`: exact for every finite value and infinity (subnormals become normal `f32`s);
/// a NaN becomes the canonical `f32` NaN `0x7fffffff`, payload and sign dropped.
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    match h & 0x7fff {
        0x7c00 => sign as f32 * f32::INFINITY,
        m if m > 0x7c00 => f32::from_bits(0x7fff_ffff),
        m => (sign * F16.decode(m)) as f32,
    }
}

/// bf16 to f32: the bf16 bits are the top half of the `f32`, payload included (a move, no
/// conversion instruction, on every device).
pub(super) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `cvt.rn.f16x2.f32` / `cvt.rn.bf16x2.f32` as the kernels' `pack_*x2(lo, hi)` use them: the
/// first operand in the low half.
pub(super) fn pack(convert: fn(f32) -> u16, lo: f32, hi: f32) -> u32 {
    u32::from(convert(lo)) | u32::from(convert(hi)) << 16
}

/// Largest relative error of `ex2.approx.ftz.f32`, in units in the last place of the exact
/// result: the PTX ISA documents a maximum of 2 ulp over the full range.
pub(super) const EX2_ULPS: f64 = 2.0;

/// Largest relative error of `tanh.approx.f32` over the whole range. Summaries of the PTX ISA's
/// tables give 2^-11 for the f32 variant and 2^-10.987 for the f16 variant's absolute error; the
/// larger is used, so the emulator's tanh (`kernels/sim`), which errs by this much, is never
/// kinder than the GPU's.
pub(super) const TANH_REL: f64 = 4.9271e-4; // 2^-10.987 = 4.92701e-4, rounded up

/// The exact `2^x` that `ex2.approx.ftz.f32` approximates: a subnormal input is flushed to
/// zero first (so the answer is 1). The output flush (results below `2^-126` become +0) is left
/// to [`ex2_close`], since a result within the error bound of `2^-126` may land on either side.
pub(super) fn ex2_exact(x: f32) -> f64 {
    let x = if x.abs() < f32::MIN_POSITIVE { 0.0 } else { x };
    f64::from(x).exp2()
}

/// Whether `got` is a valid `ex2.approx.ftz.f32` result for the exact value `exact`, allowing
/// `ulps` units in the last place: NaN for NaN; infinity counts as `2^128` (the value past
/// `f32::MAX`), so a result just under the overflow point may round either way; +0 is valid
/// where a result within the bound would be subnormal (and so flushed).
pub(super) fn ex2_close(got: f32, exact: f64, ulps: f64) -> bool {
    if exact.is_nan() || got.is_nan() {
        return exact.is_nan() && got.is_nan();
    }
    if got.is_sign_negative() {
        return false;
    }
    let top = pow2(128);
    let (g, e) = (f64::from(got).min(top), exact.min(top));
    let ulp = pow2(exponent(e.max(f64::from(f32::MIN_POSITIVE))) - 23);
    if got == 0.0 {
        return e < f64::from(f32::MIN_POSITIVE) + ulps * ulp;
    }
    (g - e).abs() <= ulps * ulp
}

/// The exact `tanh(x)` that `tanh.approx.f32` approximates (subnormal inputs are supported).
pub(super) fn tanh_exact(x: f32) -> f64 {
    f64::from(x).tanh()
}

/// Whether `got` is within relative error `rel` of `exact`; NaN only for NaN.
pub(super) fn tanh_close(got: f32, exact: f64, rel: f64) -> bool {
    if exact.is_nan() || got.is_nan() {
        return exact.is_nan() && got.is_nan();
    }
    (f64::from(got) - exact).abs() <= rel * exact.abs()
}

/// Largest relative error of the attention kernels' sigmoid (`sigmoid_scaled<4>`,
/// `activation.cuh`): its polynomial's 2^-14.04 (5.94e-5) in f32 arithmetic, plus what `ex2`'s
/// 2 ulp and the last rounding add (under 5e-7), within 2^-14.
pub(super) const SIGMOID_REL: f64 = 6.103515625e-5; // 2^-14

/// The same for the fit of the sigmoid's bf16 forward (`sigmoid_scaled<3>`): 2^-11.46
/// (3.554e-4) plus under 5e-7, within 3.6e-4 (2^-11.44).
pub(super) const SIGMOID3_REL: f64 = 3.6e-4;

/// The bound of the fit of this degree (3 or 4).
pub(super) fn sigmoid_rel(degree: u8) -> f64 {
    if degree == 3 {
        SIGMOID3_REL
    } else {
        SIGMOID_REL
    }
}

/// The exact `1 / (1 + e^-x)`.
pub(super) fn sigmoid_exact(x: f32) -> f64 {
    let x = f64::from(x);
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Whether `got` is within relative error `rel` of `exact`, or is a zero where `exact` lies
/// below the smallest normal `f32` (within `rel`: where the kernels' `ex2` flushes to zero); NaN
/// only for NaN.
pub(super) fn sigmoid_close(got: f32, exact: f64, rel: f64) -> bool {
    if exact.is_nan() || got.is_nan() {
        return exact.is_nan() && got.is_nan();
    }
    let tiny = f64::from(f32::MIN_POSITIVE);
    (f64::from(got) - exact).abs() <= rel * exact.abs()
        || (got == 0.0 && exact < tiny * (1.0 + rel))
}

/// Largest error of `rcp.approx.ftz.f32`, in units in the last place of the exact result: the
/// PTX ISA documents a maximum of 1 ulp over the full range.
pub(super) const RCP_ULPS: f64 = 1.0;

/// The exact `1/x` that `rcp.approx.ftz.f32` approximates: a subnormal input is flushed to a
/// zero of its sign first (so the answer is an infinity of that sign). The output flush is left
/// to [`rcp_close`].
pub(super) fn rcp_exact(x: f32) -> f64 {
    let x = if x.abs() < f32::MIN_POSITIVE {
        0.0f32.copysign(x)
    } else {
        x
    };
    1.0 / f64::from(x)
}

/// Whether `got` is a valid `rcp.approx.ftz.f32` result for the exact value `exact`, allowing
/// `ulps` units in the last place: NaN for NaN; the sign always matches (zeros and infinities
/// included); an infinity or a zero is exact; a signed zero is valid where a result within the
/// bound would be subnormal (and so flushed).
pub(super) fn rcp_close(got: f32, exact: f64, ulps: f64) -> bool {
    if exact.is_nan() || got.is_nan() {
        return exact.is_nan() && got.is_nan();
    }
    if got.is_sign_negative() != exact.is_sign_negative() {
        return false;
    }
    let (g, e) = (f64::from(got).abs(), exact.abs());
    if e.is_infinite() || e == 0.0 {
        return g == e;
    }
    let ulp = pow2(exponent(e.max(f64::from(f32::MIN_POSITIVE))) - 23);
    if g == 0.0 {
        return e < f64::from(f32::MIN_POSITIVE) + ulps * ulp;
    }
    (g - e).abs() <= ulps * ulp
}

/// `conf_index`: per thread, in linear block then linear thread order (x fastest), the words
/// threadIdx.xyz, blockIdx.xyz, threads per block, blocks per grid.
pub(super) fn index(grid: [u32; 3], block: [u32; 3]) -> Vec<u32> {
    let threads = block.iter().product::<u32>();
    let blocks = grid.iter().product::<u32>();
    let mut out = Vec::with_capacity((threads * blocks * 8) as usize);
    for b in 0..blocks {
        for t in 0..threads {
            out.extend([
                t % block[0],
                t / block[0] % block[1],
                t / block[0] / block[1],
                b % grid[0],
                b / grid[0] % grid[1],
                b / grid[0] / grid[1],
                threads,
                blocks,
            ]);
        }
    }
    out
}

/// `conf_reduce`: per block, the wrapping `u32` sum of its 128 inputs (addition is associative
/// modulo 2^32, so the tree order does not matter).
pub(super) fn reduce(input: &[u32]) -> Vec<u32> {
    input
        .chunks(128)
        .map(|c| c.iter().fold(0u32, |s, &v| s.wrapping_add(v)))
        .collect()
}

/// `conf_cp_async`: thread `u` of stage `s` copies 16-byte chunk `c = 128 s + u` (zero-filled,
/// `src-size` 0, when `c % 7 == 3`) into shared slot `128 s + (5u + 1) % 128`, and slot
/// `128 s + j` is written back to destination chunk `128 s + j`; per block of 512 chunks.
pub(super) fn cp_async(src: &[u32]) -> Vec<u32> {
    let mut dst = vec![0u32; src.len()];
    for (block_src, block_dst) in src.chunks(512 * 4).zip(dst.chunks_mut(512 * 4)) {
        for s in 0..4 {
            for u in 0..128 {
                let chunk = s * 128 + u;
                let slot = s * 128 + (5 * u + 1) % 128;
                for w in 0..4 {
                    block_dst[slot * 4 + w] = if chunk % 7 == 3 {
                        0
                    } else {
                        block_src[chunk * 4 + w]
                    };
                }
            }
        }
    }
    dst
}

/// The 32 x 16 matrix row that lane `l` of `conf_ldmatrix` addresses: row `(7l + 3) % 32`,
/// columns from `8 ((l / 8) % 2)`.
fn ldmatrix_row(src: &[u16], lane: usize) -> &[u16] {
    let start = ((7 * lane + 3) % 32) * 16 + 8 * ((lane / 8) % 2);
    &src[start..start + 8]
}

/// `conf_ldmatrix`: `[variant][lane][register]` for x1, x2, x4, x1.trans, x2.trans, x4.trans.
/// Row `r` of matrix `i` is the 8 values at the address of lane `8i + r`; lane `l` receives in
/// register `i` elements `(l / 4, 2 (l % 4))` and `(l / 4, 2 (l % 4) + 1)` of matrix `i`, or
/// of its transpose with `.trans`, the first in the low half. Unused registers are 0.
pub(super) fn ldmatrix(src: &[u16]) -> Vec<u32> {
    let mut out = Vec::with_capacity(6 * 32 * 4);
    for (variant, count) in [1, 2, 4, 1, 2, 4].into_iter().enumerate() {
        let trans = variant >= 3;
        for lane in 0..32 {
            let (q, c) = (lane / 4, 2 * (lane % 4));
            for reg in 0..4 {
                let m = |r: usize, col: usize| u32::from(ldmatrix_row(src, 8 * reg + r)[col]);
                out.push(match (reg < count, trans) {
                    (false, _) => 0,
                    (true, false) => m(q, c) | m(q, c + 1) << 16,
                    (true, true) => m(c, q) | m(c + 1, q) << 16,
                });
            }
        }
    }
    out
}

/// `conf_mma` and `conf_wgmma`: `D = A B + C` with A `[m][k]`, B `[k][n]`, C and D `[m][n]`,
/// all row-major, summed in `f64`. The suite's inputs make every product and partial sum exact
/// in `f32`, so the order and width of the hardware's accumulation cannot show.
pub(super) fn mma(a: &[f64], b: &[f64], c: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    (0..m * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            let dot: f64 = (0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
            (f64::from(c[ij]) + dot) as f32
        })
        .collect()
}

/// `conf_shfl`: `[case][thread]` for the 16 cases listed in conformance.cu, by the CUDA
/// programming guide's rules: lanes are split into segments of `width`; `__shfl_sync` reads
/// lane `src % width` of the caller's segment; `__shfl_up/down_sync` read `lane -/+ delta` and
/// keep their own value when that leaves the segment; `__shfl_xor_sync` reads `lane ^ mask`
/// and keeps its own value when that lies in a later segment. A vote sees the predicates of
/// the caller's warp only: the ballot has bit `l` set for each lane `l` whose predicate holds.
pub(super) fn shfl(input: &[u32]) -> Vec<u32> {
    const CASES: usize = 16;
    let n = input.len();
    let mut out = vec![0u32; CASES * n];
    for tid in 0..n {
        let lane = tid % 32;
        let v = |l: usize| input[tid - lane + l];
        let seg = |width: usize| lane & !(width - 1);
        let mut want = [0u32; CASES];
        want[0] = v((5 * lane + 3) % 32);
        want[1] = v(seg(8) + (3 * lane) % 8);
        want[2] = v(seg(16) + 5);
        for (i, w) in want[3..8].iter_mut().enumerate() {
            *w = v(lane ^ (1 << i));
        }
        want[8] = if lane ^ 4 < seg(4) + 4 {
            v(lane ^ 4)
        } else {
            v(lane)
        };
        want[9] = if lane + 3 < 32 { v(lane + 3) } else { v(lane) };
        want[10] = if lane >= seg(16) + 2 {
            v(lane - 2)
        } else {
            v(lane)
        };
        want[11] = if lane + 1 < seg(8) + 8 {
            v(lane + 1)
        } else {
            v(lane)
        };
        want[12] = if lane < 16 { v(15 - lane) } else { v(lane) };
        let warp: Vec<u32> = (0..32).map(v).collect();
        want[13] = warp
            .iter()
            .enumerate()
            .filter(|(_, x)| *x >> 19 & 1 == 1)
            .fold(0, |bits, (l, _)| bits | 1 << l);
        want[14] = u32::from(warp.contains(&input[39]));
        want[15] = u32::from(warp.iter().all(|x| f32::from_bits(*x) < 4.9));
        for (c, w) in want.into_iter().enumerate() {
            out[c * n + tid] = w;
        }
    }
    out
}

/// `conf_atomic`: thread `t` of block `b` adds `1 + t % 3` to `sums[(b + t) % nsums]`, and
/// `1 + t % 3` and `1 + t % 5` to the pair `j = (b + 2 t) % npairs` (`pairs[2 j]`, `pairs[2 j +
/// 1]`); the totals are small integers, exact in `f32` in any order. Returns the sums and the
/// pairs.
pub(super) fn atomic(blocks: u32, threads: u32, nsums: u32, npairs: u32) -> [Vec<f32>; 2] {
    let mut sums = vec![0f64; nsums as usize];
    let mut pairs = vec![0f64; 2 * npairs as usize];
    for b in 0..blocks {
        for t in 0..threads {
            sums[((b + t) % nsums) as usize] += f64::from(1 + t % 3);
            let j = ((b + 2 * t) % npairs) as usize;
            pairs[2 * j] += f64::from(1 + t % 3);
            pairs[2 * j + 1] += f64::from(1 + t % 5);
        }
    }
    [sums, pairs].map(|v| v.into_iter().map(|s| s as f32).collect())
}

/// `conf_tma`: each copy's box (tiled mode: box element `e` is tensor element `c + e`, zero when
/// outside the tensor), laid out row-major with the innermost dimension fastest, and then the
/// 128-byte swizzle of a 1024-byte aligned buffer: the 16-byte chunk at byte `a` moves to
/// `a ^ (((a >> 7) & 7) << 4)` (CUDA driver API, `CU_TENSOR_MAP_SWIZZLE_128B`; PTX ISA, "Tensor
/// Copy"). `strides` are the byte steps of dimensions 1 to 3.
pub(super) fn tma(
    data: &[u16],
    dims: [u32; 4],
    strides: [u64; 3],
    boxed: [u32; 4],
    coords: &[[i32; 4]],
) -> Vec<u16> {
    let elems = boxed.iter().product::<u32>() as usize;
    let mut out = vec![0u16; coords.len() * elems];
    for (i, c) in coords.iter().enumerate() {
        let image = &mut out[i * elems..(i + 1) * elems];
        let mut linear = 0usize;
        for e3 in 0..boxed[3] {
            for e2 in 0..boxed[2] {
                for e1 in 0..boxed[1] {
                    for e0 in 0..boxed[0] {
                        let x = [e0, e1, e2, e3].map(i64::from);
                        let x: Vec<i64> = (0..4).map(|d| i64::from(c[d]) + x[d]).collect();
                        let inside = (0..4).all(|d| x[d] >= 0 && x[d] < i64::from(dims[d]));
                        let value = if inside {
                            let byte = x[0] as u64 * 2
                                + (1..4).map(|d| x[d] as u64 * strides[d - 1]).sum::<u64>();
                            data[(byte / 2) as usize]
                        } else {
                            0
                        };
                        let a = linear * 2;
                        let swizzled = a ^ (((a >> 7) & 7) << 4);
                        image[swizzled / 2] = value;
                        linear += 1;
                    }
                }
            }
        }
    }
    out
}

/// `conf_tma`'s named-barrier hand-off: word `i` is what thread `i` stored, `7 i + 3`.
pub(super) fn named_handoff() -> Vec<u32> {
    (0..64).map(|i| 7 * i + 3).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_by_the_rules() {
        let p = |m: f32, e: i32| m * (e as f32).exp2();
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "65520 rounds to inf");
        assert_eq!(f32_to_f16(65519.0), 0x7bff, "65519 rounds to 65504");
        assert_eq!(f32_to_f16(-65520.0), 0xfc00);
        assert_eq!(f32_to_f16(p(1.0, -25)), 0x0000, "2^-25 ties to even 0");
        assert_eq!(f32_to_f16(p(1.5, -25)), 0x0001);
        assert_eq!(
            f32_to_f16(p(5.0, -27)),
            0x0001,
            "0.625 * 2^-24 rounds to 2^-24"
        );
        assert_eq!(
            f32_to_f16(p(3.0, -25)),
            0x0002,
            "1.5 * 2^-24 ties to even 2"
        );
        assert_eq!(f32_to_f16(1.0 + p(1.0, -11)), 0x3c00, "tie to even 1");
        assert_eq!(f32_to_f16(1.0 + p(3.0, -11)), 0x3c02, "tie to even up");
        assert_eq!(f32_to_f16(p(1023.0, -24)), 0x03ff, "largest subnormal");
        assert_eq!(
            f32_to_f16(p(2047.0, -25)),
            0x0400,
            "rounds up into the normals"
        );
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(
            f32_to_f16(f32::from_bits(0xffc0_0123)),
            0x7fff,
            "canonical NaN"
        );
        assert_eq!(f32_to_f16(f32::MIN_POSITIVE / 4.0), 0);
    }

    #[test]
    fn bf16_rounding_by_the_rules() {
        let b = f32::from_bits;
        assert_eq!(f32_to_bf16(1.0 + (-8f32).exp2()), 0x3f80, "tie to even 1");
        assert_eq!(f32_to_bf16(1.0 + 3.0 * (-8f32).exp2()), 0x3f82);
        assert_eq!(f32_to_bf16(b(0x7f7f_ffff)), 0x7f80, "overflow to inf");
        assert_eq!(
            f32_to_bf16(b(0x7f7f_8000)),
            0x7f80,
            "tie at the top to even inf"
        );
        assert_eq!(f32_to_bf16(b(0x7f7f_7fff)), 0x7f7f);
        assert_eq!(
            f32_to_bf16(b(0x0001_8000)),
            0x0002,
            "subnormal tie to even up"
        );
        assert_eq!(
            f32_to_bf16(b(0x0000_8000)),
            0x0000,
            "subnormal tie to even 0"
        );
        assert_eq!(f32_to_bf16(b(0x8000_0001)), 0x8000);
        assert_eq!(f32_to_bf16(f32::NEG_INFINITY), 0xff80);
        assert_eq!(f32_to_bf16(f32::NAN), 0x7fff);
    }

    #[test]
    fn widening_is_exact_and_inverts_narrowing() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert_eq!(f.to_bits(), 0x7fff_ffff);
            } else {
                assert_eq!(f32_to_f16(f), h, "f16 {h:#06x} round trip");
            }
            let g = bf16_to_f32(h);
            if !g.is_nan() {
                assert_eq!(f32_to_bf16(g), h, "bf16 {h:#06x} round trip");
            }
        }
        assert_eq!(f16_to_f32(0x0001), (-24f32).exp2());
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
    }

    #[test]
    fn sigmoid_bounds() {
        assert_eq!(sigmoid_exact(0.0), 0.5);
        assert!((sigmoid_exact(-30.0) - (-30f64).exp() / (1.0 + (-30f64).exp())).abs() < 1e-30);
        assert!(sigmoid_close(0.5, sigmoid_exact(0.0), SIGMOID_REL));
        assert!(!sigmoid_close(
            0.5 * (1.0 + 2e-4),
            sigmoid_exact(0.0),
            SIGMOID_REL
        ));
        let small = sigmoid_exact(-20.0);
        assert!(!sigmoid_close(
            (small * (1.0 + 2e-4)) as f32,
            small,
            SIGMOID_REL
        ));
        assert!(
            sigmoid_close(0.0, sigmoid_exact(-100.0), SIGMOID_REL),
            "flushed"
        );
        assert!(!sigmoid_close(0.0, sigmoid_exact(-80.0), SIGMOID_REL));
        assert!(sigmoid_close(
            f32::NAN,
            sigmoid_exact(f32::NAN),
            SIGMOID_REL
        ));
        assert!(!sigmoid_close(1.0, sigmoid_exact(f32::NAN), SIGMOID_REL));
        let third = sigmoid_exact(-3.0);
        assert!(sigmoid_close(
            (third * (1.0 + 3.5e-4)) as f32,
            third,
            sigmoid_rel(3)
        ));
        assert!(!sigmoid_close(
            (third * (1.0 + 3.5e-4)) as f32,
            third,
            sigmoid_rel(4)
        ));
        assert!(!sigmoid_close(
            (third * (1.0 + 4e-4)) as f32,
            third,
            sigmoid_rel(3)
        ));
    }

    #[test]
    fn ex2_bounds() {
        assert_eq!(
            ex2_exact(f32::from_bits(1)),
            1.0,
            "subnormal input is flushed"
        );
        assert!(ex2_close(8.0, ex2_exact(3.0), EX2_ULPS));
        assert!(!ex2_close(8.0 + 3.0 * 2f32.powi(-20), 8.0, EX2_ULPS));
        assert!(ex2_close(0.0, ex2_exact(-127.0), EX2_ULPS), "flushed");
        assert!(!ex2_close(0.0, ex2_exact(-125.0), EX2_ULPS));
        assert!(ex2_close(f32::INFINITY, ex2_exact(128.0), EX2_ULPS));
        assert!(ex2_close(f32::NAN, ex2_exact(f32::NAN), EX2_ULPS));
        let documented = (-10.987f64).exp2();
        assert!(TANH_REL >= documented && TANH_REL - documented < 1e-8);
    }
}
