//! Every tensor in a layout of its own. The API gives each attention tensor its own strides,
//! and the other cases give q, o, dO, dQ one layout and k, v, dK, dV another, so a kernel that
//! addressed one tensor through another's strides would pass them. A [`LayoutCase`] runs one
//! problem twice on a backend: packed, and with the eight tensors in eight layouts (heads outside
//! tokens as PyTorch's `(b, h, s, d)`, padded rows, one slot of an interleaved buffer). The two
//! must agree bit for bit (the packed run is what the other cases judge against the reference),
//! but for dQ of the atomic backward, whose additions may land in another order (within two
//! units in the last place of its largest element); and every element outside an output's view
//! must keep its poison.

use super::attn::{CheckBackend, Lengths};
use super::{CaseResult, Rng};
use crate::attention::{BackwardInputs, BackwardOutputs, ForwardInputs, ForwardOutputs};
use crate::config::{
    Activation, AttentionOptions, DType, Element, KernelVariant, Mask, SigmoidBias,
};
use crate::error::Result;
use crate::tensor::{Shape, Strides, TensorMut, TensorRef};

/// Where a tensor's elements live: its strides, and the buffer length they need.
#[derive(Clone, Copy, Debug)]
struct Layout {
    strides: Strides,
    len: usize,
}

/// The extents of one tensor: sequences (1 under varlen), tokens per sequence, heads, head dim.
#[derive(Clone, Copy, Debug)]
struct Extent {
    batch: usize,
    tokens: usize,
    heads: usize,
    d: usize,
}

impl Extent {
    fn elements(self) -> usize {
        self.batch * self.tokens * self.heads * self.d
    }

    /// `[batch, tokens, heads, d]` with `pad` elements after each token's heads.
    fn tokens_outside(self, pad: usize) -> Layout {
        let row = self.heads * self.d + pad;
        Layout {
            strides: Strides {
                batch: self.tokens * row,
                row,
                head: self.d,
            },
            len: self.batch * self.tokens * row,
        }
    }

    /// `[batch, heads, tokens, d + pad]`.
    fn heads_outside(self, pad: usize) -> Layout {
        let row = self.d + pad;
        let head = self.tokens * row;
        Layout {
            strides: Strides {
                batch: self.heads * head,
                row,
                head,
            },
            len: self.batch * self.heads * head,
        }
    }

    /// The first of `slots` tensors interleaved per token, `[batch, tokens, slots, heads, d]`,
    /// as k in a packed kv buffer.
    fn interleaved(self, slots: usize) -> Layout {
        self.tokens_outside((slots - 1) * self.heads * self.d)
    }

    /// Each element's offset under `l`, in packed order (`[batch, tokens, heads, d]`).
    fn offsets(self, l: Layout) -> impl Iterator<Item = usize> {
        let s = l.strides;
        (0..self.batch).flat_map(move |b| {
            (0..self.tokens).flat_map(move |t| {
                (0..self.heads).flat_map(move |h| {
                    let base = b * s.batch + t * s.row + h * s.head;
                    base..base + self.d
                })
            })
        })
    }

    /// `packed` placed in layout `l`, NaN everywhere else.
    fn place<T: Element>(self, packed: &[T], l: Layout) -> Vec<T> {
        let mut buf = vec![T::from_f64(f64::NAN); l.len];
        for (x, at) in packed.iter().zip(self.offsets(l)) {
            buf[at] = *x;
        }
        buf
    }

    /// The tensor read out of `buf` in layout `l`, packed; and how many elements outside the
    /// view lost their NaN.
    fn gather<T: Element>(self, buf: &[T], l: Layout) -> (Vec<T>, usize) {
        let mut inside = vec![false; buf.len()];
        let mut packed = Vec::with_capacity(self.elements());
        for at in self.offsets(l) {
            packed.push(buf[at]);
            inside[at] = true;
        }
        let touched = buf
            .iter()
            .zip(&inside)
            .filter(|(x, inside)| !**inside && !x.to_f64().is_nan())
            .count();
        (packed, touched)
    }
}

/// The eight tensors' layouts of one run.
#[derive(Clone, Copy, Debug)]
struct Layouts {
    q: Layout,
    k: Layout,
    v: Layout,
    o: Layout,
    d_o: Layout,
    dq: Layout,
    dk: Layout,
    dv: Layout,
}

impl Layouts {
    fn packed(q: Extent, k: Extent) -> Layouts {
        let (q, k) = (q.tokens_outside(0), k.tokens_outside(0));
        Layouts {
            q,
            k,
            v: k,
            o: q,
            d_o: q,
            dq: q,
            dk: k,
            dv: k,
        }
    }

    fn each_its_own(q: Extent, k: Extent) -> Layouts {
        Layouts {
            q: q.heads_outside(8),
            k: k.interleaved(2),
            v: k.tokens_outside(16),
            o: q.tokens_outside(8),
            d_o: q.heads_outside(0),
            dq: q.interleaved(3),
            dk: k.heads_outside(8),
            dv: k.tokens_outside(24),
        }
    }
}

/// One problem run packed and in a layout per tensor.
#[derive(Clone, Debug)]
pub struct LayoutCase {
    /// Sequence lengths.
    pub lengths: Lengths,
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads.
    pub heads_kv: usize,
    /// Head dim.
    pub head_dim: usize,
    /// Options (the variant's kernels where it has them).
    pub opts: AttentionOptions,
}

/// The outputs of one run, packed, in the order of [`OUTPUTS`]; and how many poisoned elements
/// outside the outputs' views it wrote.
struct Run {
    values: Vec<Vec<f64>>,
    touched: usize,
}

/// The outputs a [`LayoutCase`] compares.
const OUTPUTS: [&str; 6] = ["o", "dq", "dk", "dv", "row statistic", "dsink/dbias"];

impl LayoutCase {
    /// A one-line description.
    pub fn describe<T: Element>(&self) -> String {
        format!(
            "layouts {:?} {:?}, heads {}/{}, hd {}, {:?}, {:?}{}, variant {}",
            T::DTYPE,
            self.lengths,
            self.heads_q,
            self.heads_kv,
            self.head_dim,
            self.opts.activation,
            self.opts.mask,
            if self.opts.deterministic {
                ", deterministic"
            } else {
                ""
            },
            self.opts.variant.name()
        )
    }

    fn shape(&self) -> Shape<'_> {
        let (hq, hk, d) = (self.heads_q, self.heads_kv, self.head_dim);
        match &self.lengths {
            Lengths::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            } => Shape::dense(*batch, *seqlen_q, *seqlen_k, hq, hk, d),
            Lengths::Varlen { cu_q, cu_k } => Shape::varlen(cu_q, cu_k, hq, hk, d),
        }
    }

    fn extents(&self) -> (Extent, Extent) {
        let (batch, sq, sk) = match &self.lengths {
            Lengths::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            } => (*batch, *seqlen_q, *seqlen_k),
            Lengths::Varlen { cu_q, cu_k } => {
                let total = |cu: &[i32]| cu.last().map_or(0, |&t| t as usize);
                (1, total(cu_q), total(cu_k))
            }
        };
        let e = |tokens, heads| Extent {
            batch,
            tokens,
            heads,
            d: self.head_dim,
        };
        (e(sq, self.heads_q), e(sk, self.heads_kv))
    }

    /// The forward and backward in layouts `l`, on inputs drawn from `seed`.
    fn run_in<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        l: Layouts,
        seed: u64,
    ) -> Result<Run> {
        let (qe, ke) = self.extents();
        let hq = self.heads_q;
        let mut rng = Rng::new(seed);
        let (q, k, v, d_o): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) = (
            rng.vec(qe.elements()),
            rng.vec(ke.elements()),
            rng.vec(ke.elements()),
            rng.vec(qe.elements()),
        );
        let param: Vec<f32> = (0..hq).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let param = backend.up32(&param)?;
        let act = self.opts.activation;
        let (sink, bias) = (
            act.has_sink().then_some(&param),
            act.has_bias_tensor().then_some(&param),
        );
        let (q, k, v, d_o) = (
            backend.up(&qe.place(&q, l.q))?,
            backend.up(&ke.place(&k, l.k))?,
            backend.up(&ke.place(&v, l.v))?,
            backend.up(&qe.place(&d_o, l.d_o))?,
        );
        let poison = |l: Layout| backend.up(&vec![T::from_f64(f64::NAN); l.len]);
        let poison32 = |n: usize| backend.up32(&vec![f32::NAN; n]);
        let mut stat = act
            .has_row_stat()
            .then(|| poison32(qe.batch * qe.tokens * hq))
            .transpose()?;
        let mut o = poison(l.o)?;
        let shape = self.shape();
        let t = |data, strides| TensorRef { data, strides };
        backend.forward(
            &shape,
            &self.opts,
            ForwardInputs {
                q: t(&q, l.q.strides),
                k: t(&k, l.k.strides),
                v: t(&v, l.v.strides),
                sink,
                bias,
            },
            ForwardOutputs {
                o: TensorMut {
                    data: &mut o,
                    strides: l.o.strides,
                },
                row_stat: stat.as_mut(),
            },
        )?;
        let (mut dq, mut dk, mut dv) = (poison(l.dq)?, poison(l.dk)?, poison(l.dv)?);
        let (mut dsink, mut dbias) = (poison32(hq)?, poison32(hq)?);
        backend.backward(
            &shape,
            &self.opts,
            BackwardInputs {
                q: t(&q, l.q.strides),
                k: t(&k, l.k.strides),
                v: t(&v, l.v.strides),
                o: t(&o, l.o.strides),
                d_o: t(&d_o, l.d_o.strides),
                row_stat: stat.as_ref(),
                sink,
                bias,
            },
            BackwardOutputs {
                dq: TensorMut {
                    data: &mut dq,
                    strides: l.dq.strides,
                },
                dk: TensorMut {
                    data: &mut dk,
                    strides: l.dk.strides,
                },
                dv: TensorMut {
                    data: &mut dv,
                    strides: l.dv.strides,
                },
                dsink: act.has_sink().then_some(&mut dsink),
                dbias: act.has_bias_tensor().then_some(&mut dbias),
            },
        )?;
        let mut run = Run {
            values: Vec::new(),
            touched: 0,
        };
        for (buf, e, l) in [
            (&o, qe, l.o),
            (&dq, qe, l.dq),
            (&dk, ke, l.dk),
            (&dv, ke, l.dv),
        ] {
            let (packed, touched) = e.gather(&backend.down(buf)?, l);
            run.values.push(packed.iter().map(|x| x.to_f64()).collect());
            run.touched += touched;
        }
        let wide = |x: Vec<f32>| x.into_iter().map(f64::from).collect::<Vec<f64>>();
        run.values
            .push(stat.map_or(Ok(Vec::new()), |s| backend.down32(&s).map(wide))?);
        let dparam = if act.has_sink() {
            Some(&dsink)
        } else {
            act.has_bias_tensor().then_some(&dbias)
        };
        run.values
            .push(dparam.map_or(Ok(Vec::new()), |p| backend.down32(p).map(wide))?);
        Ok(run)
    }

    /// Runs the case packed and in a layout per tensor on `backend` and compares. The result's
    /// error is the largest difference beyond what is allowed (infinite for an output left
    /// unwritten in the packed run or an element written outside a view), so the tolerance is
    /// 0; the case's text names what differed.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn run<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        seed: u64,
    ) -> Result<CaseResult> {
        let (qe, ke) = self.extents();
        let packed = self.run_in(backend, Layouts::packed(qe, ke), seed)?;
        let own = self.run_in(backend, Layouts::each_its_own(qe, ke), seed)?;
        let mut err = 0.0f64;
        let mut notes = Vec::new();
        for (name, (a, b)) in OUTPUTS.iter().zip(packed.values.iter().zip(&own.values)) {
            if let Some(i) = a.iter().position(|x| !x.is_finite()) {
                err = f64::INFINITY;
                notes.push(format!(
                    "{name}: the packed run left element {i} not finite"
                ));
                continue;
            }
            // dQ of the atomic backward: two units in the last place of its largest element
            let allowed = if *name == "dq" && !self.opts.deterministic {
                let max = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                let epsilon = match T::DTYPE {
                    DType::F16 => 2f64.powi(-10),
                    DType::BF16 => 2f64.powi(-7),
                };
                2.0 * epsilon * max
            } else {
                0.0
            };
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    if y.is_nan() {
                        f64::INFINITY
                    } else {
                        (x - y).abs()
                    }
                })
                .fold(0.0f64, f64::max);
            if worst > allowed {
                let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                notes.push(format!(
                    "{name}: {differ} of {} differ, by up to {worst:e}",
                    a.len()
                ));
                err = err.max(worst - allowed);
            }
        }
        if own.touched > 0 {
            err = f64::INFINITY;
            notes.push(format!(
                "{} elements outside the outputs' views written",
                own.touched
            ));
        }
        let mut case = self.describe::<T>();
        if !notes.is_empty() {
            case = format!("{case}: {}", notes.join("; "));
        }
        Ok(CaseResult {
            backend: B::NAME,
            case,
            max_err: err,
            tol: 0.0,
        })
    }
}

/// The layout cases: every activation, dense and varlen (an empty key sequence and a one-query
/// one among them), a mask of each kind, both backward modes, head dims from 40 to 256, and the
/// wgmma kernels, the forward that reads q, k and v through tensor maps included.
pub fn layout_cases() -> Vec<LayoutCase> {
    let varlen = || Lengths::Varlen {
        cu_q: vec![0, 1, 64, 140],
        cu_k: vec![0, 30, 30, 95],
    };
    let dense = || Lengths::Dense {
        batch: 2,
        seqlen_q: 113,
        seqlen_k: 77,
    };
    let per_head = Activation::Sigmoid {
        bias: SigmoidBias::PerHead,
    };
    let neg_log = Activation::Sigmoid {
        bias: SigmoidBias::NegLogSeqlenK,
    };
    let softmax = |sink| Activation::Softmax { sink };
    let left = Mask::window(Some(40), None);
    use KernelVariant::{Default, Wgmma, WgmmaPingPong, WgmmaWarpSpecialized};
    let cases = [
        (dense(), 72, softmax(true), Mask::CAUSAL, Default, false),
        (
            dense(),
            128,
            per_head,
            Mask::window(Some(20), Some(3)),
            Default,
            true,
        ),
        (
            varlen(),
            40,
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            Mask::window(Some(11), None),
            Default,
            false,
        ),
        (varlen(), 256, softmax(true), Mask::NONE, Default, true),
        (dense(), 64, softmax(false), left, Wgmma, false),
        (dense(), 128, per_head, Mask::CAUSAL, Wgmma, true),
        (dense(), 128, neg_log, Mask::CAUSAL, WgmmaPingPong, false),
        (
            varlen(),
            64,
            softmax(true),
            Mask::NONE,
            WgmmaWarpSpecialized,
            false,
        ),
    ];
    cases
        .into_iter()
        .map(
            |(lengths, head_dim, a, mask, variant, deterministic)| LayoutCase {
                lengths,
                heads_q: 4,
                heads_kv: 2,
                head_dim,
                opts: AttentionOptions::new(a)
                    .with_mask(mask)
                    .with_variant(variant)
                    .with_deterministic(deterministic),
            },
        )
        .collect()
}
