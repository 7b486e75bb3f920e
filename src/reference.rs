//! Float64 reference of every kernel in this crate: the executable spec.
//!
//! Every backend (the SIMT emulator, the CUDA kernels) is compared with the functions here, and
//! where the code of this module and a kernel disagree, this module is right unless
//! `shared/reference/semantics.md` says otherwise. It covers:
//!
//! - softmax attention with an optional per-head sink logit (gpt-oss; `exp(sink[h])` joins the
//!   row sum `Z`, has no value vector and is not multiplied by `scale`);
//! - sigmoid attention without normalization, `p = sigmoid(s + b)`, with a constant, per-head or
//!   `-ln(sk)` bias, and the research variant "normalized sigmoid" that divides by the row sum;
//! - masks: no mask, causal and sliding windows, aligned to the bottom-right corner of each
//!   sequence; `sq < sk` and `sq > sk`; GQA and MQA; dense batches and varlen packing;
//! - the backward pass of all of these (`dq`, `dk`, `dv`, `dsink`, per-head `dbias`);
//! - the "input precision" reference of FlashAttention's tolerance rule ([`Precision`]);
//! - the seed paper's attention-sink metric ([`sink_alpha`], [`sink_rate`]).
//!
//! Numeric policy: everything is computed in `f64` in log space (row maxima subtracted before
//! `exp`, `ln sigmoid` for the normalized sigmoid), so logits of magnitude `1e4` neither overflow
//! nor produce NaN. A query that sees no key gets `o = 0` and `lse = -inf` (or `sink[h]` when
//! the head has a sink); its gradients are zero.
//!
//! ```
//! # use sinkless::reference::*;
//! // One sequence of 3 queries and 4 keys, 2 query heads sharing 1 kv head, head_dim 2.
//! let shape = HeadShape { heads_q: 2, heads_kv: 1, head_dim: 2 };
//! let q = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 1.0, -1.1, 1.2];
//! let k = [0.5, 0.1, -0.3, 0.2, 0.7, -0.4, 0.2, 0.9];
//! let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
//! let problem = Problem { window: (None, Some(0)), ..Problem::dense(1, 3, 4, shape, &q, &k, &v) };
//! let out = forward(&problem, Precision::F64);
//! assert_eq!(out.o.len(), q.len());
//! let grads = backward(&problem, &[1.0; 12], Precision::F64);
//! assert_eq!(grads.dk.len(), k.len());
//! ```

use half::{bf16, f16};
use std::ops::Range;

/// Precision in which the reference computes.
///
/// `F64` is the exact reference. `F16` and `Bf16` are the "input precision" reference of
/// FlashAttention's tolerance rule: the operands `q`, `k`, `v` and `dout` are rounded to the dtype
/// (a no-op when they already are), the probabilities `P` are rounded before `P·V`, in the backward
/// `P` and `dS` are rounded before their products, and `o`, `dq`, `dk`, `dv` are rounded at the
/// end. Everything else (scores, row statistics, accumulation, `lse`, `dsink`, `dbias`, the sink
/// and bias parameters) stays in `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Exact float64.
    F64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl Precision {
    /// Rounds `x` to the nearest value of this precision (identity for `F64`; overflow gives inf).
    pub fn round(self, x: f64) -> f64 {
        match self {
            Precision::F64 => x,
            Precision::F16 => f16::from_f64(x).to_f64(),
            Precision::Bf16 => bf16::from_f64(x).to_f64(),
        }
    }

    fn round_all(self, xs: &[f64]) -> Vec<f64> {
        xs.iter().map(|&x| self.round(x)).collect()
    }
}

/// The attention function applied to the scores `s = scale · q·k`.
#[derive(Clone, Copy, Debug)]
pub enum RefActivation<'a> {
    /// `p = exp(s) / Z`, `Z = sum_visible exp(s) [+ exp(sink[h])]`.
    Softmax {
        /// One sink logit per query head, or none.
        sink: Option<&'a [f64]>,
    },
    /// `p = sigmoid(s + b)` over visible keys.
    Sigmoid {
        /// The bias `b` added to every score.
        bias: RefBias<'a>,
        /// Divide each row by its sum of visible `p` (the research variant).
        normalized: bool,
    },
}

/// The bias of sigmoid attention.
#[derive(Clone, Copy, Debug)]
pub enum RefBias<'a> {
    /// The same value for every head and sequence.
    Constant(f64),
    /// One learnable value per query head; the backward reports its gradient.
    PerHead(&'a [f64]),
    /// `-ln(sk)`, with `sk` the key length of the sequence the row belongs to (FlashSigmoid).
    NegLogSeqlenK,
}

impl RefBias<'_> {
    /// The bias of query head `head` in a sequence of `sk` keys.
    pub fn value(&self, head: usize, sk: usize) -> f64 {
        match *self {
            RefBias::Constant(b) => b,
            RefBias::PerHead(b) => b[head],
            RefBias::NegLogSeqlenK => -(sk as f64).ln(),
        }
    }
}

/// One independent sequence: its rows in the token axis of `q` and of `k`/`v`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seq {
    /// First token row of this sequence in `q`.
    pub q_start: usize,
    /// Number of queries (`sq`).
    pub q_len: usize,
    /// First token row of this sequence in `k` and `v`.
    pub k_start: usize,
    /// Number of keys (`sk`).
    pub k_len: usize,
}

/// Head counts and head dimension, grouped so that constructors stay short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads; divides `heads_q`.
    pub heads_kv: usize,
    /// Head dimension `d`.
    pub head_dim: usize,
}

/// A whole attention problem: shapes, tensors, mask and activation.
///
/// Build it with [`Problem::dense`] or [`Problem::varlen`] and change the defaults (scale
/// `1/sqrt(d)`, no mask, softmax without sink) with struct update syntax.
#[derive(Clone, Debug)]
pub struct Problem<'a> {
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads; query head `h` reads kv head `h / (heads_q / heads_kv)`.
    pub heads_kv: usize,
    /// Head dimension `d`.
    pub head_dim: usize,
    /// Sequences, each `(q_start, q_len, k_start, k_len)` in token rows of `q` and `k`/`v`.
    pub seqs: Vec<Seq>,
    /// Varlen packing; only changes the layout of the log-sum-exp.
    pub varlen: bool,
    /// `[tokens_q, heads_q, head_dim]`, contiguous.
    pub q: &'a [f64],
    /// `[tokens_k, heads_kv, head_dim]`, contiguous.
    pub k: &'a [f64],
    /// `[tokens_k, heads_kv, head_dim]`, contiguous.
    pub v: &'a [f64],
    /// Multiplies `q·k` (not the sink, not the bias).
    pub scale: f64,
    /// `(left, right)`; `None` is unbounded on that side. Causal is `(None, Some(0))`.
    pub window: (Option<usize>, Option<usize>),
    /// Softmax or sigmoid, with their parameters.
    pub activation: RefActivation<'a>,
}

impl<'a> Problem<'a> {
    /// A dense batch of `batch` sequences of `sq` queries and `sk` keys:
    /// `q: [batch * sq, heads_q, d]`, `k`, `v: [batch * sk, heads_kv, d]`.
    ///
    /// # Panics
    /// If a buffer does not have the length its shape implies.
    pub fn dense(
        batch: usize,
        sq: usize,
        sk: usize,
        shape: HeadShape,
        q: &'a [f64],
        k: &'a [f64],
        v: &'a [f64],
    ) -> Self {
        let seqs = (0..batch)
            .map(|b| Seq {
                q_start: b * sq,
                q_len: sq,
                k_start: b * sk,
                k_len: sk,
            })
            .collect();
        Self::new(shape, seqs, false, q, k, v)
    }

    /// Sequences packed along the token axis, from prefix sums `cu_q` and `cu_k` (`batch + 1`
    /// entries each, starting at 0): sequence `b` owns query rows `cu_q[b]..cu_q[b + 1]`.
    ///
    /// # Panics
    /// If the prefix sums differ in length, do not start at 0, decrease, or do not end at the
    /// token count of the buffers.
    pub fn varlen(
        cu_q: &[usize],
        cu_k: &[usize],
        shape: HeadShape,
        q: &'a [f64],
        k: &'a [f64],
        v: &'a [f64],
    ) -> Self {
        assert_eq!(
            cu_q.len(),
            cu_k.len(),
            "cu_seqlens_q and cu_seqlens_k lengths differ"
        );
        assert!(!cu_q.is_empty(), "cu_seqlens must hold at least one entry");
        assert!(
            cu_q[0] == 0 && cu_k[0] == 0,
            "cu_seqlens must start at 0, got {} and {}",
            cu_q[0],
            cu_k[0]
        );
        let seqs = cu_q
            .windows(2)
            .zip(cu_k.windows(2))
            .map(|(wq, wk)| {
                assert!(
                    wq[0] <= wq[1] && wk[0] <= wk[1],
                    "cu_seqlens decrease: {wq:?} {wk:?}"
                );
                Seq {
                    q_start: wq[0],
                    q_len: wq[1] - wq[0],
                    k_start: wk[0],
                    k_len: wk[1] - wk[0],
                }
            })
            .collect();
        let problem = Self::new(shape, seqs, true, q, k, v);
        assert_eq!(
            cu_q[cu_q.len() - 1],
            problem.tokens_q(),
            "cu_seqlens_q must end at total_q"
        );
        assert_eq!(
            cu_k[cu_k.len() - 1],
            problem.tokens_k(),
            "cu_seqlens_k must end at total_k"
        );
        problem
    }

    fn new(
        shape: HeadShape,
        seqs: Vec<Seq>,
        varlen: bool,
        q: &'a [f64],
        k: &'a [f64],
        v: &'a [f64],
    ) -> Self {
        let problem = Problem {
            heads_q: shape.heads_q,
            heads_kv: shape.heads_kv,
            head_dim: shape.head_dim,
            seqs,
            varlen,
            q,
            k,
            v,
            scale: 1.0 / (shape.head_dim as f64).sqrt(),
            window: (None, None),
            activation: RefActivation::Softmax { sink: None },
        };
        problem.check();
        problem
    }

    /// Token rows of `q` (`total_q` under varlen, `batch * sq` dense).
    pub fn tokens_q(&self) -> usize {
        self.q.len() / (self.heads_q * self.head_dim)
    }

    /// Token rows of `k` and `v`.
    pub fn tokens_k(&self) -> usize {
        self.k.len() / (self.heads_kv * self.head_dim)
    }

    /// The kv head read by query head `h`.
    pub fn kv_head(&self, h: usize) -> usize {
        h / (self.heads_q / self.heads_kv)
    }

    /// Index in the `lse` buffer of query `i` (sequence-local) of sequence `seq`, head `h`:
    /// dense `[batch, heads_q, sq]`, varlen `[heads_q, total_q]`.
    pub fn lse_index(&self, seq: usize, h: usize, i: usize) -> usize {
        let s = &self.seqs[seq];
        if self.varlen {
            h * self.tokens_q() + s.q_start + i
        } else {
            // Dense sequences tile the token axis in order, so q_start = b * sq.
            s.q_start * self.heads_q + h * s.q_len + i
        }
    }

    /// Elements of `q` (and `o`, `dout`, `dq`) holding token row `token`, query head `h`.
    pub fn q_row(&self, token: usize, h: usize) -> Range<usize> {
        let start = (token * self.heads_q + h) * self.head_dim;
        start..start + self.head_dim
    }

    /// Elements of `k` and `v` (and `dk`, `dv`) holding token row `token`, kv head `hk`.
    pub fn kv_row(&self, token: usize, hk: usize) -> Range<usize> {
        let start = (token * self.heads_kv + hk) * self.head_dim;
        start..start + self.head_dim
    }

    /// Panics, with the offending numbers, on any inconsistent shape.
    fn check(&self) {
        let (hq, hkv, d) = (self.heads_q, self.heads_kv, self.head_dim);
        assert!(
            hq > 0 && hkv > 0 && d > 0,
            "heads_q {hq}, heads_kv {hkv}, head_dim {d} must be > 0"
        );
        assert_eq!(
            hq % hkv,
            0,
            "heads_q {hq} is not a multiple of heads_kv {hkv}"
        );
        assert_eq!(
            self.q.len() % (hq * d),
            0,
            "q length {} is not a multiple of heads_q * d = {}",
            self.q.len(),
            hq * d
        );
        assert_eq!(
            self.k.len() % (hkv * d),
            0,
            "k length {} is not a multiple of heads_kv * d = {}",
            self.k.len(),
            hkv * d
        );
        assert_eq!(self.k.len(), self.v.len(), "k and v lengths differ");
        for (b, s) in self.seqs.iter().enumerate() {
            assert!(
                s.q_start + s.q_len <= self.tokens_q(),
                "sequence {b} {s:?} runs past {} query tokens",
                self.tokens_q()
            );
            assert!(
                s.k_start + s.k_len <= self.tokens_k(),
                "sequence {b} {s:?} runs past {} key tokens",
                self.tokens_k()
            );
            if !self.varlen {
                let sq = self.seqs[0].q_len;
                assert!(
                    s.q_len == sq && s.q_start == b * sq,
                    "dense sequence {b} {s:?} is not row {b} of a [batch, {sq}] layout"
                );
            }
        }
        if !self.varlen {
            let covered = self.seqs.iter().map(|s| s.q_len).sum::<usize>();
            assert_eq!(
                covered,
                self.tokens_q(),
                "dense sequences cover {covered} of {} query tokens",
                self.tokens_q()
            );
        }
        match self.activation {
            RefActivation::Softmax { sink: Some(sink) } => {
                assert_eq!(
                    sink.len(),
                    hq,
                    "sink has {} values for {hq} query heads",
                    sink.len()
                );
            }
            RefActivation::Sigmoid {
                bias: RefBias::PerHead(b),
                ..
            } => {
                assert_eq!(
                    b.len(),
                    hq,
                    "bias has {} values for {hq} query heads",
                    b.len()
                );
            }
            _ => {}
        }
    }
}

/// Keys visible to query `i` of a sequence of `sq` queries and `sk` keys: those `j` with
/// `i + sk - sq - left <= j <= i + sk - sq + right` (bottom-right aligned), clipped to `0..sk`.
/// Returns an empty range when none is.
pub fn visible_keys(
    sq: usize,
    sk: usize,
    i: usize,
    window: (Option<usize>, Option<usize>),
) -> Range<usize> {
    let signed = |x: usize| i64::try_from(x).expect("sizes fit in i64");
    let diagonal = signed(i) + signed(sk) - signed(sq);
    let lo = window.0.map_or(0, |left| (diagonal - signed(left)).max(0));
    let hi = window.1.map_or(signed(sk), |right| {
        (diagonal + signed(right) + 1).min(signed(sk))
    });
    if lo >= hi {
        return 0..0;
    }
    let unsigned = |x: i64| usize::try_from(x).expect("clipped to 0..sk");
    unsigned(lo)..unsigned(hi)
}

/// Output of [`forward`].
#[derive(Clone, Debug)]
pub struct Forward {
    /// `[tokens_q, heads_q, head_dim]`.
    pub o: Vec<f64>,
    /// Softmax only: natural-log row sums, dense `[batch, heads_q, sq]`, varlen
    /// `[heads_q, total_q]` (see [`Problem::lse_index`]).
    pub lse: Option<Vec<f64>>,
}

/// Output of [`backward`].
#[derive(Clone, Debug)]
pub struct Gradients {
    /// `[tokens_q, heads_q, head_dim]`.
    pub dq: Vec<f64>,
    /// `[tokens_k, heads_kv, head_dim]`, summed over the query heads sharing each kv head.
    pub dk: Vec<f64>,
    /// `[tokens_k, heads_kv, head_dim]`, summed over the query heads sharing each kv head.
    pub dv: Vec<f64>,
    /// Per query head; softmax with sink only.
    pub dsink: Option<Vec<f64>>,
    /// Per query head; sigmoid with [`RefBias::PerHead`] only.
    pub dbias: Option<Vec<f64>>,
}

/// One query row of one head: the visible keys and what the backward needs about them.
struct Row {
    /// Visible keys, sequence-local.
    keys: Range<usize>,
    /// The weight of each visible key in `o` (rounded to the precision).
    weights: Vec<f64>,
    /// `1 - sigmoid(s + b)` of each visible key; empty for softmax.
    sigmoid_complement: Vec<f64>,
    /// Softmax only: `ln Z`.
    lse: Option<f64>,
}

/// `ln sigmoid(x)` without overflow or cancellation for any finite `x`.
fn ln_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += a * x`.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `q`, `k`, `v` rounded to the precision of the computation.
struct Operands {
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
}

impl Operands {
    fn new(p: &Problem, prec: Precision) -> Self {
        Operands {
            q: prec.round_all(p.q),
            k: prec.round_all(p.k),
            v: prec.round_all(p.v),
        }
    }
}

/// Scores, mask and activation of query `i` of sequence `seq`, head `h`.
fn row(p: &Problem, x: &Operands, seq: &Seq, h: usize, i: usize, prec: Precision) -> Row {
    let keys = visible_keys(seq.q_len, seq.k_len, i, p.window);
    let q_i = &x.q[p.q_row(seq.q_start + i, h)];
    let hk = p.kv_head(h);
    let s: Vec<f64> = keys
        .clone()
        .map(|j| p.scale * dot(q_i, &x.k[p.kv_row(seq.k_start + j, hk)]))
        .collect();
    match p.activation {
        RefActivation::Softmax { sink } => {
            let sink = sink.map(|sink| sink[h]);
            if s.is_empty() {
                // No visible key: Z is exp(sink) alone, or empty.
                let lse = sink.unwrap_or(f64::NEG_INFINITY);
                return Row {
                    keys,
                    weights: Vec::new(),
                    sigmoid_complement: Vec::new(),
                    lse: Some(lse),
                };
            }
            let m = s
                .iter()
                .copied()
                .chain(sink)
                .fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s
                .iter()
                .chain(sink.as_ref())
                .map(|&sj| (sj - m).exp())
                .sum();
            let lse = m + z.ln();
            let weights = s.iter().map(|&sj| prec.round((sj - lse).exp())).collect();
            Row {
                keys,
                weights,
                sigmoid_complement: Vec::new(),
                lse: Some(lse),
            }
        }
        RefActivation::Sigmoid { bias, normalized } => {
            let b = bias.value(h, seq.k_len);
            let ln_p: Vec<f64> = s.iter().map(|&sj| ln_sigmoid(sj + b)).collect();
            let sigmoid_complement = s.iter().map(|&sj| ln_sigmoid(-(sj + b)).exp()).collect();
            let weights = if normalized && !ln_p.is_empty() {
                // sum_j p_j computed as a log-sum-exp of ln p_j, so that rows of tiny p survive.
                let m = ln_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let ln_sum = m + ln_p.iter().map(|&l| (l - m).exp()).sum::<f64>().ln();
                ln_p.iter()
                    .map(|&l| prec.round((l - ln_sum).exp()))
                    .collect()
            } else {
                ln_p.iter().map(|&l| prec.round(l.exp())).collect()
            };
            Row {
                keys,
                weights,
                sigmoid_complement,
                lse: None,
            }
        }
    }
}

/// `o_i = sum_j w_j v_j` over the visible keys of a row, rounded to the precision.
fn output_row(
    p: &Problem,
    x: &Operands,
    seq: &Seq,
    h: usize,
    row: &Row,
    prec: Precision,
) -> Vec<f64> {
    let mut o_i = vec![0.0; p.head_dim];
    for (&w, j) in row.weights.iter().zip(row.keys.clone()) {
        axpy(&mut o_i, w, &x.v[p.kv_row(seq.k_start + j, p.kv_head(h))]);
    }
    o_i.iter().map(|&o| prec.round(o)).collect()
}

/// The attention output and, for softmax, the log-sum-exp of every row.
///
/// # Panics
/// If the problem's shapes are inconsistent (see [`Problem`]).
pub fn forward(p: &Problem, prec: Precision) -> Forward {
    p.check();
    let x = Operands::new(p, prec);
    let mut o = vec![0.0; p.q.len()];
    let softmax = matches!(p.activation, RefActivation::Softmax { .. });
    let mut lse = softmax.then(|| vec![f64::NEG_INFINITY; p.tokens_q() * p.heads_q]);
    for (b, seq) in p.seqs.iter().enumerate() {
        for h in 0..p.heads_q {
            for i in 0..seq.q_len {
                let row = row(p, &x, seq, h, i, prec);
                o[p.q_row(seq.q_start + i, h)]
                    .copy_from_slice(&output_row(p, &x, seq, h, &row, prec));
                if let (Some(lse), Some(row_lse)) = (lse.as_mut(), row.lse) {
                    lse[p.lse_index(b, h, i)] = row_lse;
                }
            }
        }
    }
    Forward { o, lse }
}

/// The row sum `sum_j sigmoid(s_ij + b)` over the visible keys of every query row, in the LSE
/// layout (0 for a row that sees no key): the statistic the normalized-sigmoid kernels write in
/// the forward and read in the backward.
///
/// # Panics
/// If the activation is not a sigmoid, or the problem's shapes are inconsistent.
pub fn sigmoid_row_sums(p: &Problem) -> Vec<f64> {
    p.check();
    let RefActivation::Sigmoid { bias, .. } = p.activation else {
        panic!("sigmoid_row_sums needs a sigmoid activation");
    };
    let mut sums = vec![0.0; p.tokens_q() * p.heads_q];
    for (b, seq) in p.seqs.iter().enumerate() {
        for h in 0..p.heads_q {
            let bh = bias.value(h, seq.k_len);
            for i in 0..seq.q_len {
                let q_i = &p.q[p.q_row(seq.q_start + i, h)];
                sums[p.lse_index(b, h, i)] = visible_keys(seq.q_len, seq.k_len, i, p.window)
                    .map(|j| {
                        let s = p.scale * dot(q_i, &p.k[p.kv_row(seq.k_start + j, p.kv_head(h))]);
                        ln_sigmoid(s + bh).exp()
                    })
                    .sum();
            }
        }
    }
    sums
}

/// Gradients of `sum(dout ∘ o)` with respect to `q`, `k`, `v`, the sinks and a per-head bias.
///
/// Softmax: `D = dO·o`, `dS = P ∘ (dP - D)`, `dsink[h] = -sum_i exp(sink[h] - lse[i]) D[i]`.
/// Sigmoid: `dS = p (1 - p) dP`. Normalized sigmoid, with `w = p / sum p` (a softmax over
/// `ln p`, whose derivative in `s` is `1 - p`): `dS = w (dP - D) (1 - p)`.
/// All: `dP = dO·vᵀ`, `dq = scale dS·k`, `dk = scale dSᵀ·q`, `dv = Pᵀ·dO`, `dbias[h] = sum dS`.
///
/// # Panics
/// If the problem's shapes are inconsistent, or `dout` is not as long as `q`.
pub fn backward(p: &Problem, dout: &[f64], prec: Precision) -> Gradients {
    p.check();
    assert_eq!(
        dout.len(),
        p.q.len(),
        "dout has {} elements, q has {}",
        dout.len(),
        p.q.len()
    );
    let x = Operands::new(p, prec);
    let dout = prec.round_all(dout);
    let mut dq = vec![0.0; p.q.len()];
    let mut dk = vec![0.0; p.k.len()];
    let mut dv = vec![0.0; p.v.len()];
    let sink = match p.activation {
        RefActivation::Softmax { sink } => sink,
        RefActivation::Sigmoid { .. } => None,
    };
    let per_head_bias = matches!(
        p.activation,
        RefActivation::Sigmoid {
            bias: RefBias::PerHead(_),
            ..
        }
    );
    let mut dsink = sink.map(|_| vec![0.0; p.heads_q]);
    let mut dbias = per_head_bias.then(|| vec![0.0; p.heads_q]);
    for seq in &p.seqs {
        for h in 0..p.heads_q {
            let hk = p.kv_head(h);
            for i in 0..seq.q_len {
                let row = row(p, &x, seq, h, i, prec);
                if row.keys.is_empty() {
                    continue; // o = 0 does not depend on anything.
                }
                let qi = p.q_row(seq.q_start + i, h);
                let do_i = &dout[qi.clone()];
                let d_i = dot(do_i, &output_row(p, &x, seq, h, &row, prec));
                for (n, j) in row.keys.clone().enumerate() {
                    let kj = p.kv_row(seq.k_start + j, hk);
                    let w = row.weights[n];
                    let dp = dot(do_i, &x.v[kj.clone()]);
                    let ds = match p.activation {
                        RefActivation::Softmax { .. } => w * (dp - d_i),
                        RefActivation::Sigmoid {
                            normalized: true, ..
                        } => w * (dp - d_i) * row.sigmoid_complement[n],
                        RefActivation::Sigmoid {
                            normalized: false, ..
                        } => w * row.sigmoid_complement[n] * dp,
                    };
                    let ds = prec.round(ds);
                    axpy(&mut dq[qi.clone()], p.scale * ds, &x.k[kj.clone()]);
                    axpy(&mut dk[kj.clone()], p.scale * ds, &x.q[qi.clone()]);
                    axpy(&mut dv[kj], w, do_i);
                    if let Some(db) = dbias.as_mut() {
                        db[h] += ds;
                    }
                }
                if let (Some(dsink), Some(sink), Some(lse)) = (dsink.as_mut(), sink, row.lse) {
                    // exp(sink - lse) is the sink's share of the row.
                    dsink[h] -= (sink[h] - lse).exp() * d_i;
                }
            }
        }
    }
    Gradients {
        dq: prec.round_all(&dq),
        dk: prec.round_all(&dk),
        dv: prec.round_all(&dv),
        dsink,
        dbias,
    }
}

/// The full attention map of sequence `seq`, query head `head`: `[q_len, k_len]` row-major, the
/// weight each query gives each key in `o` (softmax `P`, sigmoid `p`, normalized sigmoid
/// `p / sum p`), masked entries 0. The sink's share of a softmax row is `1 - sum` of the row.
///
/// # Panics
/// If the problem's shapes are inconsistent or `seq`/`head` is out of range.
pub fn attention_probs(p: &Problem, seq: usize, head: usize, prec: Precision) -> Vec<f64> {
    p.check();
    assert!(
        head < p.heads_q,
        "head {head} out of range for {} query heads",
        p.heads_q
    );
    let x = Operands::new(p, prec);
    let s = &p.seqs[seq];
    let mut map = vec![0.0; s.q_len * s.k_len];
    for i in 0..s.q_len {
        let row = row(p, &x, s, head, i, prec);
        for (&w, j) in row.weights.iter().zip(row.keys) {
            map[i * s.k_len + j] = w;
        }
    }
    map
}

/// The seed paper's sink score of key `k` (1-based) in a causal `t x t` map `A` (row-major):
/// `alpha_k = (1 / (t - k + 1)) * sum_{i = k..t} A[i][k]`, the mean attention `k` receives from
/// the queries that can see it. With `row_normalize`, `A[i][k]` is replaced by
/// `A[i][k] / sum_j A[i][j]` (the proxy for sigmoid maps; a row summing to 0 contributes 0).
///
/// # Panics
/// If `map` is not `t * t` long or `k` is not in `1..=t`.
pub fn sink_alpha(map: &[f64], t: usize, k: usize, row_normalize: bool) -> f64 {
    assert_eq!(
        map.len(),
        t * t,
        "map has {} entries, a {t} x {t} map has {}",
        map.len(),
        t * t
    );
    assert!((1..=t).contains(&k), "key {k} is not in 1..={t}");
    let received: f64 = (k..=t)
        .map(|i| {
            let row = &map[(i - 1) * t..i * t];
            let a = row[k - 1];
            if !row_normalize {
                return a;
            }
            let sum: f64 = row.iter().sum();
            if sum == 0.0 {
                0.0
            } else {
                a / sum
            }
        })
        .sum();
    received / (t - k + 1) as f64
}

/// `Sink_k^eps`: the percentage (0 to 100) of maps, each `(map, t)` for one (layer, head), whose
/// [`sink_alpha`] of key `k` exceeds `eps` (the paper uses `eps = 0.3`, `k = 1`). No maps give 0.
///
/// # Panics
/// As [`sink_alpha`], for any map.
pub fn sink_rate(maps: &[(&[f64], usize)], k: usize, eps: f64, row_normalize: bool) -> f64 {
    if maps.is_empty() {
        return 0.0;
    }
    let sinks = maps
        .iter()
        .filter(|(map, t)| sink_alpha(map, *t, k, row_normalize) > eps)
        .count();
    100.0 * sinks as f64 / maps.len() as f64
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
