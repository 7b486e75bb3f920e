//! The conformance kernels' inputs: seeded, and chosen so that the right answer is exact on
//! every backend (small integers for `mma`, distinct values for the data movers) except where
//! the ISA itself allows an error (`ex2`, `tanh`, `rcp`).

use super::isa;
use crate::check::Rng;
use crate::config::DType;

/// `conf_reduce`: 128 random words per block.
pub(super) fn reduce(blocks: u32, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..blocks * 128).map(|_| rng.next_u64() as u32).collect()
}

/// `conf_cp_async`: 512 chunks of 4 random words per block, never 0 (a zero-filled chunk must
/// differ from a copied one).
pub(super) fn cp_async(blocks: u32, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..blocks * 512 * 4)
        .map(|_| rng.next_u64() as u32 | 1)
        .collect()
}

/// `conf_ldmatrix`: a 32 x 16 matrix of random 16-bit values.
pub(super) fn ldmatrix(seed: u64) -> Vec<u16> {
    let mut rng = Rng::new(seed);
    (0..32 * 16).map(|_| rng.next_u64() as u16).collect()
}

/// `conf_mma`'s and `conf_wgmma`'s operands, as values and as the bits the kernel reads.
pub(super) struct Mma {
    /// A `[m][k]`: halves in `[-8, 8]`.
    pub a: Vec<f64>,
    /// B `[k][n]`: integers in `[-8, 8]`.
    pub b: Vec<f64>,
    /// A in the element type.
    pub a_bits: Vec<u16>,
    /// B in the element type.
    pub b_bits: Vec<u16>,
    /// C `[m][n]`: quarters in `[-25, 25]`.
    pub c: Vec<f32>,
}

/// The operands of an `m x k x n` product: every product is a multiple of 1/2 below 64 in
/// magnitude and C a multiple of 1/4, so each partial sum (below `2^20` for `k <= 4096`) is
/// exact in `f32`, and both element types hold every input exactly.
pub(super) fn mma(dtype: DType, (m, k, n): (usize, usize, usize), seed: u64) -> Mma {
    let mut rng = Rng::new(seed);
    let mut pick = |count: u64, offset: i64, step: f64| {
        ((rng.next_u64() % count) as i64 - offset) as f64 * step
    };
    let a: Vec<f64> = (0..m * k).map(|_| pick(33, 16, 0.5)).collect();
    let b: Vec<f64> = (0..k * n).map(|_| pick(17, 8, 1.0)).collect();
    let c: Vec<f32> = (0..m * n).map(|_| pick(201, 100, 0.25) as f32).collect();
    let convert = match dtype {
        DType::F16 => isa::f32_to_f16,
        DType::BF16 => isa::f32_to_bf16,
    };
    let bits = |v: &[f64]| v.iter().map(|&x| convert(x as f32)).collect();
    Mma {
        a_bits: bits(&a),
        b_bits: bits(&b),
        a,
        b,
        c,
    }
}

/// `conf_shfl`: 64 distinct floats (`1 + i / 8`), so a value read from the wrong lane shows.
pub(super) fn shfl() -> Vec<u32> {
    (0..64)
        .map(|i| (1.0 + i as f32 * 0.125).to_bits())
        .collect()
}

/// Inputs every rounding rule of `cvt` and every special case of `ex2`/`tanh`/`rcp` meets: signed
/// zeros, infinities, NaNs with payloads, the f16 overflow point, subnormal results and exact
/// ties of both element types, `f32` subnormals and extremes.
fn math_specials() -> Vec<f32> {
    let p = |m: f32, e: i32| m * (e as f32).exp2();
    let b = f32::from_bits;
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        2.0,
        3.0,
        -3.0,
        10.0,
        -10.0,
        127.0,
        128.0,
        -126.0,
        -127.0,
        -149.0,
        -150.0,
        1e-40,
        -1e-45,
        65504.0,
        65519.0,
        65520.0,
        65536.0,
        -65520.0,
        1e10,
        -1e10,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        b(0x7f80_0001),
        b(0xffc0_0123),
        p(1.0, -24),
        p(1.0, -25),
        p(3.0, -26),
        p(1.5, -25),
        p(5.0, -27),
        p(1.0, -14),
        p(1023.0, -24),
        p(2047.0, -25),
        1.0 + p(1.0, -11),
        1.0 + p(3.0, -11),
        1.0 + p(1.0, -8),
        1.0 + p(3.0, -8),
        b(0x7f7f_ffff),
        b(0x7f7f_8000),
        b(0x7f7f_7fff),
        b(0x0000_8000),
        b(0x0001_8000),
        b(0x8000_0001),
    ]
}

/// `conf_math`: the specials, then seeded values in turn: any bit pattern; uniform in
/// `[-20, 20]` (where ex2 and tanh are interesting); a value in the f16 range (exponent
/// `2^-27..2^17`); that value made an exact f16 tie; and an exact bf16 tie.
pub(super) fn math(n: u32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut xs = math_specials();
    let mut turn = 0u32;
    while xs.len() < n as usize {
        let r = rng.next_u64();
        let bits = r as u32;
        let f16_range = (bits & 0x807f_ffff) | ((100 + (r >> 32) as u32 % 45) << 23);
        xs.push(match turn % 5 {
            0 => f32::from_bits(bits),
            1 => rng.uniform(-20.0, 20.0) as f32,
            2 => f32::from_bits(f16_range),
            3 => f32::from_bits(f16_range & !0x1fff | 0x1000),
            _ => f32::from_bits(bits & !0xffff | 0x8000),
        });
        turn += 1;
    }
    xs.truncate(n as usize);
    xs
}

/// `conf_widen`: the first `n` 16-bit patterns (all of them for `n = 65536`).
pub(super) fn widen(n: u32) -> Vec<u16> {
    (0..n).map(|i| i as u16).collect()
}

/// `conf_tma`'s tensor and the coordinates of its copies.
pub(super) struct Tma {
    /// The tensor's elements, never 0 (a zero-filled element must differ from a copied one) and
    /// never `0xffff` (the poison).
    pub data: Vec<u16>,
    /// Byte strides of dimensions 1, 2, 3: padded, so rows do not abut.
    pub strides: [u64; 3],
    /// Each copy's box origin, innermost first. The first copy's is the tensor's origin, so
    /// whatever the seed some copy brings data; the others' first coordinate is a multiple of 8
    /// inside the tensor, the rest from half a box before the tensor to its last index, so boxes
    /// cross every edge.
    pub coords: [[i32; 4]; 4],
}

/// `conf_tma`: a padded 4D tensor of extents `dims` (innermost first) and boxes of `boxed`.
pub(super) fn tma(dims: [u32; 4], boxed: [u32; 4], seed: u64) -> Tma {
    let mut rng = Rng::new(seed);
    let pitch1 = u64::from(dims[0]).div_ceil(8) * 8 + 8;
    let pitch2 = pitch1 * u64::from(dims[1]) + 8;
    let pitch3 = pitch2 * u64::from(dims[2]) + 16;
    let len = (pitch3 * u64::from(dims[3])) as usize;
    let data = (0..len)
        .map(|_| (rng.next_u64() % 0xfffe) as u16 + 1)
        .collect();
    let mut coords = [[0i32; 4]; 4];
    for c in &mut coords[1..] {
        c[0] = 8 * (rng.next_u64() % u64::from(dims[0].div_ceil(8))) as i32;
        for d in 1..4 {
            let lo = -i64::from(boxed[d] / 2);
            let span = (i64::from(dims[d]) - lo) as u64;
            c[d] = (lo + (rng.next_u64() % span) as i64) as i32;
        }
    }
    Tma {
        data,
        strides: [pitch1 * 2, pitch2 * 2, pitch3 * 2],
        coords,
    }
}
