//! Checking backends against the float64 [`reference`](crate::reference): the cases `sinkless
//! check` runs, the comparison and FlashAttention's tolerance rule. The test suites use the
//! same pieces.
//!
//! The rule: a kernel's max error against the float64 reference may be at most `factor` times
//! (2 forward, 3 gradients) the error of the same reference computed in the input precision,
//! plus a tiny absolute floor. NaN never passes.

use crate::backend::emulator::{Emulator, HostBuffer};
use crate::config::{Element, KernelVariant};
use crate::error::{Error, Result};
use crate::tensor::{Seqlens, Shape, Strides, TensorRef};
use crate::CudaBackend;

mod attn;
mod layouts;
pub use attn::{
    edge_cases, extreme_cases, head_dim_cases, long_key_cases, matrix, sink_cases, suite,
    ulp_floor, variant_cases, AttnCase, AttnGrads, AttnInputs, CheckBackend, Lengths, MASKS,
};
pub use layouts::{layout_cases, LayoutCase};

/// A small, seedable generator (SplitMix64) for reproducible test inputs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform(f64::MIN_POSITIVE, 1.0);
        let v = self.uniform(0.0, 1.0);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// `n` normal values rounded to `T`.
    pub fn vec<T: Element>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::from_f64(self.normal())).collect()
    }
}

/// Writes `line` to the process's standard error itself, past the test harness, which keeps
/// what a passing test prints with `eprintln!` to itself: a test that skips (no GPU, a GPU
/// without sm_90) says so in `cargo test`'s output.
pub fn notice(line: &str) {
    use std::io::Write;
    // nothing useful to do if stderr is gone
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Largest `|a - b|`; any NaN on either side gives infinity, so NaN never passes.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared buffers differ in length");
    a.iter().zip(b).fold(0.0, |m: f64, (x, y)| {
        if x.is_nan() || y.is_nan() {
            f64::INFINITY
        } else if x == y {
            // Equal infinities (the LSE of a row that sees no key) match exactly.
            m
        } else {
            m.max((x - y).abs())
        }
    })
}

/// The allowed error: `factor * err_low_precision + floor`.
pub fn tolerance(err_low_precision: f64, factor: f64, floor: f64) -> f64 {
    factor * err_low_precision + floor
}

/// The first `n` mismatches of `got` against `want` beyond `tol`, formatted for a failure message.
pub fn first_mismatches(got: &[f64], want: &[f64], tol: f64, n: usize) -> String {
    got.iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| g.is_nan() || w.is_nan() || (*g - *w).abs() > tol)
        .take(n)
        .map(|(i, (g, w))| format!("  [{i}] got {g}, want {w}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The outcome of one checked case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Which backend ran it.
    pub backend: &'static str,
    /// The case, in words.
    pub case: String,
    /// Max error against the float64 reference.
    pub max_err: f64,
    /// The allowed error.
    pub tol: f64,
}

impl CaseResult {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.max_err <= self.tol
    }
}

/// The failed results, one line each (case, max error, tolerance), for a test's message.
pub fn failures(results: &[CaseResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{}: max error {:e} > tolerance {:e}",
                r.case, r.max_err, r.tol
            )
        })
        .collect()
}

/// One row-dot case: shape, layout, dtype.
#[derive(Clone, Debug)]
pub struct RowDotCase {
    /// Sequences: dense `(batch, seqlen)` or varlen prefix sums.
    pub rows: RowLayout,
    /// Heads.
    pub heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Extra elements between rows beyond the packed stride (a strided view).
    pub row_pad: usize,
}

/// Row layout of a [`RowDotCase`].
#[derive(Clone, Debug)]
pub enum RowLayout {
    /// `batch` sequences of `seqlen` rows.
    Dense(usize, usize),
    /// Prefix sums.
    Varlen(Vec<i32>),
}

impl RowDotCase {
    fn shape(&self) -> Shape<'_> {
        let seqlens = match &self.rows {
            RowLayout::Dense(b, s) => Seqlens::Dense {
                batch: *b,
                seqlen_q: *s,
                seqlen_k: *s,
            },
            RowLayout::Varlen(cu) => Seqlens::Varlen {
                cu_seqlens_q: cu,
                cu_seqlens_k: cu,
            },
        };
        Shape {
            seqlens,
            heads_q: self.heads,
            heads_kv: self.heads,
            head_dim: self.head_dim,
        }
    }

    fn total_rows(&self) -> usize {
        match &self.rows {
            RowLayout::Dense(b, s) => b * s,
            RowLayout::Varlen(cu) => *cu.last().unwrap() as usize,
        }
    }

    fn strides(&self) -> Strides {
        let row = self.heads * self.head_dim + self.row_pad;
        let seqlen = match &self.rows {
            RowLayout::Dense(_, s) => *s,
            RowLayout::Varlen(_) => 0,
        };
        Strides {
            batch: row * seqlen,
            row,
            head: self.head_dim,
        }
    }

    /// A one-line description.
    pub fn describe<T: Element>(&self) -> String {
        let rows = match &self.rows {
            RowLayout::Dense(b, s) => format!("dense b={b} s={s}"),
            RowLayout::Varlen(cu) => format!("varlen cu={cu:?}"),
        };
        format!(
            "row_dot {} {rows} h={} d={} pad={}",
            T::DTYPE.name(),
            self.heads,
            self.head_dim,
            self.row_pad
        )
    }

    /// Index of row `r`'s statistic for head `h` in the output layout.
    fn out_index(&self, r: usize, h: usize) -> usize {
        match &self.rows {
            RowLayout::Dense(_, s) => ((r / s) * self.heads + h) * s + r % s,
            RowLayout::Varlen(_) => h * self.total_rows() + r,
        }
    }

    /// Inputs, the float64 answer and the f32-accumulated answer for this case.
    fn inputs<T: Element>(&self, seed: u64) -> (Vec<T>, Vec<T>, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let s = self.strides();
        let len = self.total_rows().max(1) * s.row;
        let x: Vec<T> = rng.vec(len);
        let y: Vec<T> = rng.vec(len);
        let n_out = self.total_rows() * self.heads;
        let (mut exact, mut single) = (vec![0.0; n_out], vec![0.0; n_out]);
        for r in 0..self.total_rows() {
            for h in 0..self.heads {
                let base = r * s.row + h * s.head;
                let (mut e, mut f) = (0.0f64, 0.0f32);
                for d in 0..self.head_dim {
                    let p = x[base + d].to_f64() * y[base + d].to_f64();
                    e += p;
                    f += p as f32;
                }
                exact[self.out_index(r, h)] = e;
                single[self.out_index(r, h)] = f as f64;
            }
        }
        (x, y, exact, single)
    }

    fn judge<T: Element>(
        &self,
        backend: &'static str,
        got: &[f32],
        exact: &[f64],
        single: &[f64],
    ) -> CaseResult {
        let got: Vec<f64> = got.iter().map(|&g| g as f64).collect();
        CaseResult {
            backend,
            case: self.describe::<T>(),
            max_err: max_abs_diff(&got, exact),
            tol: tolerance(max_abs_diff(single, exact), 2.0, 1e-5),
        }
    }

    /// Runs the case on the emulator.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn run_emulator<T: Element>(&self, emu: &Emulator, seed: u64) -> Result<CaseResult> {
        let (x, y, exact, single) = self.inputs::<T>(seed);
        let (xb, yb) = (HostBuffer::from_slice(&x), HostBuffer::from_slice(&y));
        let mut out = HostBuffer::filled(exact.len(), f32::NAN);
        let s = self.strides();
        emu.row_dot(
            &self.shape(),
            TensorRef {
                data: &xb,
                strides: s,
            },
            TensorRef {
                data: &yb,
                strides: s,
            },
            &mut out,
        )?;
        Ok(self.judge::<T>("emulator", &out, &exact, &single))
    }

    /// Runs the case on a GPU.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn run_cuda<T: Element + cudarc::driver::DeviceRepr>(
        &self,
        gpu: &CudaBackend,
        seed: u64,
    ) -> Result<CaseResult> {
        let cuda = |e: cudarc::driver::DriverError| crate::Error::Cuda {
            during: "copying test data",
            message: format!("{e:?}"),
        };
        let (x, y, exact, single) = self.inputs::<T>(seed);
        let stream = gpu.stream();
        let xd = stream.clone_htod(&x).map_err(cuda)?;
        let yd = stream.clone_htod(&y).map_err(cuda)?;
        let mut out = stream
            .clone_htod(&vec![f32::NAN; exact.len()])
            .map_err(cuda)?;
        let s = self.strides();
        gpu.row_dot(
            &self.shape(),
            TensorRef {
                data: &xd,
                strides: s,
            },
            TensorRef {
                data: &yd,
                strides: s,
            },
            &mut out,
        )?;
        let got = stream.clone_dtoh(&out).map_err(cuda)?;
        Ok(self.judge::<T>("cuda", &got, &exact, &single))
    }
}

/// The row-dot cases `sinkless check` runs: awkward sizes, varlen with empty sequences, strided rows.
pub fn row_dot_cases() -> Vec<RowDotCase> {
    vec![
        RowDotCase {
            rows: RowLayout::Dense(1, 1),
            heads: 1,
            head_dim: 8,
            row_pad: 0,
        },
        RowDotCase {
            rows: RowLayout::Dense(2, 17),
            heads: 3,
            head_dim: 40,
            row_pad: 0,
        },
        RowDotCase {
            rows: RowLayout::Dense(3, 113),
            heads: 2,
            head_dim: 128,
            row_pad: 8,
        },
        RowDotCase {
            rows: RowLayout::Dense(1, 5),
            heads: 4,
            head_dim: 256,
            row_pad: 0,
        },
        RowDotCase {
            rows: RowLayout::Varlen(vec![0, 1, 1, 18, 131]),
            heads: 2,
            head_dim: 72,
            row_pad: 16,
        },
    ]
}

/// What [`run_all`] runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Every eleventh attention case (still every activation) and every seventh variant case,
    /// for runs under compute-sanitizer.
    pub small: bool,
    /// The GPU's runs alone, none on the emulator (which CI runs on every change): for a GPU
    /// lease, whose minutes are scarce. Without a GPU nothing runs.
    pub gpu_only: bool,
}

/// Hands each result on as it comes, and says when a GPU wait timed out, after which nothing
/// more runs: the hung work blocks every later GPU call of this process.
struct Emit<'a> {
    on_result: &'a mut dyn FnMut(Result<CaseResult>),
    hung: bool,
}

impl Emit<'_> {
    fn one(&mut self, r: Result<CaseResult>) {
        self.hung |= matches!(r, Err(Error::GpuTimeout { .. }));
        (self.on_result)(r);
    }
    fn many(&mut self, r: Result<Vec<CaseResult>>) {
        match r {
            Ok(v) => v.into_iter().for_each(|c| self.one(Ok(c))),
            Err(e) => self.one(Err(e)),
        }
    }
}

/// Runs every case on the emulator and, when `gpu` is given, on the GPU: `row_dot`, then the
/// attention [`suite`], forward and backward, in f16 and bf16, then the [`variant_cases`] in
/// bf16 (the backward of the variants that have their own), then the [`layout_cases`], then
/// the sink scores; `options` may thin the cases out or leave the emulator out. Each result goes
/// to `on_result` as soon as it is known, so a run cut short by an outer time limit has said
/// what it found. The CUDA
/// backend waits for each run with a deadline ([`crate::backend::watch`]); after an
/// [`Error::GpuTimeout`] nothing more runs. Returns whether every case ran.
pub fn run_all(
    emu: &Emulator,
    gpu: Option<&CudaBackend>,
    options: RunOptions,
    on_result: &mut dyn FnMut(Result<CaseResult>),
) -> bool {
    let on_emu = !options.gpu_only;
    let mut out = Emit {
        on_result,
        hung: false,
    };
    for (i, case) in row_dot_cases().iter().enumerate() {
        let seed = 1000 + i as u64;
        if on_emu {
            out.one(case.run_emulator::<half::f16>(emu, seed));
            out.one(case.run_emulator::<half::bf16>(emu, seed));
        }
        if let Some(gpu) = gpu {
            out.one(case.run_cuda::<half::f16>(gpu, seed));
            out.one(case.run_cuda::<half::bf16>(gpu, seed));
        }
        if out.hung {
            return false;
        }
    }
    for (i, case) in suite()
        .iter()
        .enumerate()
        .step_by(if options.small { 11 } else { 1 })
    {
        let seed = 2000 + i as u64;
        // Every other case runs the deterministic backward.
        let case = AttnCase {
            opts: case.opts.with_deterministic(i % 2 == 1),
            ..case.clone()
        };
        if on_emu {
            out.many(case.run_forward::<half::f16, _>(emu, seed));
            out.many(case.run_forward::<half::bf16, _>(emu, seed));
            out.many(case.run_backward::<half::f16, _>(emu, seed));
            out.many(case.run_backward::<half::bf16, _>(emu, seed));
        }
        if let Some(gpu) = gpu {
            out.many(case.run_forward::<half::f16, _>(gpu, seed));
            out.many(case.run_forward::<half::bf16, _>(gpu, seed));
            out.many(case.run_backward::<half::f16, _>(gpu, seed));
            out.many(case.run_backward::<half::bf16, _>(gpu, seed));
        }
        if out.hung {
            return false;
        }
    }
    // The kernel variants, bf16 and, where compiled, f16, backward where they have one; on the
    // GPU those it can run (wgmma needs sm_90).
    if let Some(gpu) = gpu {
        for v in KernelVariant::ALTERNATIVES {
            if !gpu.runs_variant(v) {
                let (major, minor) = gpu.compute_capability();
                eprintln!(
                    "check: skipping kernel variant {} on the GPU: it needs sm_90, this is sm_{major}{minor}",
                    v.name()
                );
            }
        }
    }
    for (i, case) in variant_cases()
        .iter()
        .enumerate()
        .step_by(if options.small { 7 } else { 1 })
    {
        let seed = 3000 + i as u64;
        if on_emu {
            case.run_variant(emu, seed)
                .into_iter()
                .for_each(|r| out.many(r));
        }
        if let Some(gpu) = gpu.filter(|g| g.runs_variant(case.opts.variant)) {
            case.run_variant(gpu, seed)
                .into_iter()
                .for_each(|r| out.many(r));
        }
        if out.hung {
            return false;
        }
    }
    // Each tensor in a layout of its own against the packed layout: the default kernels in both
    // element types, the variants in bf16.
    for (i, case) in layout_cases()
        .iter()
        .enumerate()
        .step_by(if options.small { 3 } else { 1 })
    {
        let seed = 5000 + i as u64;
        let f16 = case.opts.variant == KernelVariant::Default;
        if on_emu {
            out.one(case.run::<half::bf16, _>(emu, seed));
            if f16 {
                out.one(case.run::<half::f16, _>(emu, seed));
            }
        }
        if let Some(gpu) = gpu.filter(|g| g.runs_variant(case.opts.variant)) {
            out.one(case.run::<half::bf16, _>(gpu, seed));
            if f16 {
                out.one(case.run::<half::f16, _>(gpu, seed));
            }
        }
        if out.hung {
            return false;
        }
    }
    // The seed paper's sink scores, every case in both element types.
    for (i, case) in sink_cases().iter().enumerate() {
        let seed = 4000 + i as u64;
        if on_emu {
            out.one(case.run_sink_scores::<half::f16, _>(emu, seed));
            out.one(case.run_sink_scores::<half::bf16, _>(emu, seed));
        }
        if let Some(gpu) = gpu {
            out.one(case.run_sink_scores::<half::f16, _>(gpu, seed));
            out.one(case.run_sink_scores::<half::bf16, _>(gpu, seed));
        }
        if out.hung {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_only_run_without_a_gpu_runs_nothing_and_finishes() {
        let mut seen = 0;
        let options = RunOptions {
            small: true,
            gpu_only: true,
        };
        assert!(run_all(&Emulator::new(), None, options, &mut |_| seen += 1));
        assert_eq!(seen, 0);
    }
}
