//! Attention cases: random inputs, the float64 and input-precision references, and a run on a
//! backend judged by FlashAttention's rule.

use super::{max_abs_diff, tolerance, CaseResult, Rng};
use crate::attention::{BackwardInputs, BackwardOutputs, ForwardInputs, ForwardOutputs};
use crate::backend::emulator::{Emulator, HostBuffer};
use crate::backend::watch::sync_limit;
use crate::config::{
    Activation, AttentionOptions, DType, Element, KernelVariant, Mask, SigmoidBias,
};
use crate::error::Result;
use crate::reference::{self, Precision, Problem};
use crate::tensor::{Seqlens, Shape, Strides, TensorMut, TensorRef};
use crate::CudaBackend;
use cudarc::driver::{CudaSlice, DeviceRepr};

/// Sequence lengths of an [`AttnCase`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lengths {
    /// `batch` sequences of `seqlen_q` queries and `seqlen_k` keys.
    Dense {
        /// Sequences.
        batch: usize,
        /// Queries per sequence.
        seqlen_q: usize,
        /// Keys per sequence.
        seqlen_k: usize,
    },
    /// Packed sequences.
    Varlen {
        /// Query prefix sums.
        cu_q: Vec<i32>,
        /// Key prefix sums.
        cu_k: Vec<i32>,
    },
}

/// One attention problem to check.
#[derive(Clone, Debug)]
pub struct AttnCase {
    /// Sequence lengths.
    pub lengths: Lengths,
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads.
    pub heads_kv: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// What to compute.
    pub opts: AttentionOptions,
    /// Extra elements between rows (a strided view), a multiple of 8.
    pub row_pad: usize,
    /// Standard deviation of q and k: 1 for ordinary inputs, large for extreme logits.
    pub qk_std: f64,
}

/// A case's inputs, in the element type.
#[derive(Clone, Debug)]
pub struct AttnInputs<T> {
    /// Queries, `[tokens_q, heads_q, d]` with row stride `heads_q * d + row_pad`.
    pub q: Vec<T>,
    /// Keys.
    pub k: Vec<T>,
    /// Values.
    pub v: Vec<T>,
    /// Output gradient, shaped like q.
    pub d_o: Vec<T>,
    /// Sink logits per query head, when the options use them.
    pub sink: Option<Vec<f32>>,
    /// Sigmoid bias per query head, when the options use it.
    pub bias: Option<Vec<f32>>,
}

impl AttnCase {
    /// Whether a [`variant_cases`] case runs in f16 as well as bf16: its variant is compiled for
    /// f16 (the wgmma ones are; the others are bf16 alone).
    pub fn variant_in_f16(&self) -> bool {
        self.opts
            .variant
            .exists_for(DType::F16, self.opts.activation, self.head_dim)
    }

    /// The case's [`Shape`].
    pub fn shape(&self) -> Shape<'_> {
        let seqlens = match &self.lengths {
            Lengths::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            } => Seqlens::Dense {
                batch: *batch,
                seqlen_q: *seqlen_q,
                seqlen_k: *seqlen_k,
            },
            Lengths::Varlen { cu_q, cu_k } => Seqlens::Varlen {
                cu_seqlens_q: cu_q,
                cu_seqlens_k: cu_k,
            },
        };
        Shape {
            seqlens,
            heads_q: self.heads_q,
            heads_kv: self.heads_kv,
            head_dim: self.head_dim,
        }
    }

    fn tokens(&self) -> (usize, usize) {
        match &self.lengths {
            Lengths::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            } => (batch * seqlen_q, batch * seqlen_k),
            Lengths::Varlen { cu_q, cu_k } => (
                *cu_q.last().unwrap() as usize,
                *cu_k.last().unwrap() as usize,
            ),
        }
    }

    fn dense_seqlens(&self) -> (usize, usize) {
        match &self.lengths {
            Lengths::Dense {
                seqlen_q, seqlen_k, ..
            } => (*seqlen_q, *seqlen_k),
            Lengths::Varlen { .. } => (0, 0),
        }
    }

    /// Strides of the query-side tensors.
    pub fn q_strides(&self) -> Strides {
        let row = self.heads_q * self.head_dim + self.row_pad;
        Strides {
            batch: row * self.dense_seqlens().0,
            row,
            head: self.head_dim,
        }
    }

    /// Strides of the key-side tensors.
    pub fn k_strides(&self) -> Strides {
        let row = self.heads_kv * self.head_dim + self.row_pad;
        Strides {
            batch: row * self.dense_seqlens().1,
            row,
            head: self.head_dim,
        }
    }

    /// Elements of a per-row statistic.
    pub fn row_stat_len(&self) -> usize {
        self.tokens().0 * self.heads_q
    }

    /// A one-line description.
    pub fn describe<T: Element>(&self) -> String {
        let lengths = match &self.lengths {
            Lengths::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            } => format!("b={batch} sq={seqlen_q} sk={seqlen_k}"),
            Lengths::Varlen { cu_q, cu_k } => format!("varlen q={cu_q:?} k={cu_k:?}"),
        };
        let act = match self.opts.activation {
            Activation::Softmax { sink } => {
                if sink {
                    "softmax+sink".to_string()
                } else {
                    "softmax".to_string()
                }
            }
            Activation::Sigmoid { bias } => format!("sigmoid({bias:?})"),
            Activation::NormalizedSigmoid { bias } => format!("nsigmoid({bias:?})"),
        };
        let mask = match (self.opts.mask.left, self.opts.mask.right) {
            (None, None) => String::new(),
            (None, Some(0)) => " causal".into(),
            (l, r) => format!(" window({l:?},{r:?})"),
        };
        let variant = match self.opts.variant {
            KernelVariant::Default => String::new(),
            v => format!(" [{}]", v.name()),
        };
        format!(
            "{} {act}{variant}{mask} {lengths} h={}/{} d={}{}{}",
            T::DTYPE.name(),
            self.heads_q,
            self.heads_kv,
            self.head_dim,
            if self.row_pad > 0 {
                format!(" pad={}", self.row_pad)
            } else {
                String::new()
            },
            if self.qk_std != 1.0 {
                format!(" qk_std={}", self.qk_std)
            } else {
                String::new()
            },
        )
    }

    /// Random inputs for the case (padding elements random too, so a read of them shows).
    pub fn inputs<T: Element>(&self, seed: u64) -> AttnInputs<T> {
        let mut rng = Rng::new(seed);
        let (tq, tk) = self.tokens();
        let (qs, ks) = (self.q_strides(), self.k_strides());
        let scaled = |rng: &mut Rng, n: usize, std: f64| {
            (0..n)
                .map(|_| T::from_f64(std * rng.normal()))
                .collect::<Vec<T>>()
        };
        let q = scaled(&mut rng, tq.max(1) * qs.row, self.qk_std);
        let mut k = scaled(&mut rng, tk.max(1) * ks.row, self.qk_std);
        let mut v = scaled(&mut rng, tk.max(1) * ks.row, 1.0);
        let d_o = scaled(&mut rng, tq.max(1) * qs.row, 1.0);
        // The keys and values of a packed sequence without queries are NaN: no query may see
        // them, so a kernel whose tiles run past the end of its own sequence (the tensor copies
        // of the warp-specialised forwards do) fails if it lets them into a neighbour's output.
        if let Lengths::Varlen { cu_q, cu_k } = &self.lengths {
            for (qw, kw) in cu_q.windows(2).zip(cu_k.windows(2)) {
                if qw[0] != qw[1] {
                    continue;
                }
                let tokens = usize::try_from(kw[0]).expect("prefix sums")
                    ..usize::try_from(kw[1]).expect("prefix sums");
                for t in tokens {
                    let row = t * ks.row..t * ks.row + self.heads_kv * self.head_dim;
                    k[row.clone()].fill(T::from_f64(f64::NAN));
                    v[row].fill(T::from_f64(f64::NAN));
                }
            }
        }
        let per_head = |rng: &mut Rng, lo: f64, hi: f64| {
            (0..self.heads_q)
                .map(|_| rng.uniform(lo, hi) as f32)
                .collect::<Vec<f32>>()
        };
        let sink = self
            .opts
            .activation
            .has_sink()
            .then(|| per_head(&mut rng, -1.0, 3.0));
        let bias = self
            .opts
            .activation
            .has_bias_tensor()
            .then(|| per_head(&mut rng, -4.0, 1.0));
        AttnInputs {
            q,
            k,
            v,
            d_o,
            sink,
            bias,
        }
    }

    /// Copies a padded tensor into the reference's packed `[tokens, heads, d]` f64 layout.
    fn pack<T: Element>(&self, x: &[T], tokens: usize, heads: usize, row: usize) -> Vec<f64> {
        let d = self.head_dim;
        let mut out = Vec::with_capacity(tokens * heads * d);
        for t in 0..tokens {
            out.extend(x[t * row..t * row + heads * d].iter().map(|v| v.to_f64()));
        }
        out
    }

    /// Unpacks a padded query-side tensor into `[tokens, heads, d]` f64.
    fn unpack_q<T: Element>(&self, x: &[T]) -> Vec<f64> {
        self.pack(x, self.tokens().0, self.heads_q, self.q_strides().row)
    }

    fn problem<'a>(
        &self,
        qkv: (&'a [f64], &'a [f64], &'a [f64]),
        sink: &'a Option<Vec<f64>>,
        bias: &'a Option<Vec<f64>>,
    ) -> Problem<'a> {
        let dims = crate::tensor::check_shape(&self.shape()).expect("test cases have valid shapes");
        crate::attention::CpuReference::problem(&dims, &self.opts, qkv, sink, bias)
    }

    /// The forward's `o` in the float64 reference and in the input precision, and the f64 row statistic.
    pub fn reference_forward<T: Element>(
        &self,
        x: &AttnInputs<T>,
    ) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
        let (tq, tk) = self.tokens();
        let q = self.unpack_q(&x.q);
        let k = self.pack(&x.k, tk, self.heads_kv, self.k_strides().row);
        let v = self.pack(&x.v, tk, self.heads_kv, self.k_strides().row);
        let widen = |p: &Option<Vec<f32>>| {
            p.as_ref()
                .map(|s| s.iter().map(|&v| v as f64).collect::<Vec<f64>>())
        };
        let (sink, bias) = (widen(&x.sink), widen(&x.bias));
        let p = self.problem((&q, &k, &v), &sink, &bias);
        let exact = reference::forward(&p, Precision::F64);
        let low = reference::forward(&p, precision::<T>());
        let stat = match self.opts.activation {
            Activation::Softmax { .. } => exact.lse,
            Activation::NormalizedSigmoid { .. } => Some(reference::sigmoid_row_sums(&p)),
            Activation::Sigmoid { .. } => None,
        };
        debug_assert_eq!(exact.o.len(), tq * self.heads_q * self.head_dim);
        (exact.o, low.o, stat)
    }

    /// Judges a forward run: `o` by FlashAttention's rule, the row statistic to 1e-4 relative.
    pub fn judge_forward<T: Element>(
        &self,
        backend: &'static str,
        x: &AttnInputs<T>,
        o: &[T],
        stat: Option<&[f32]>,
    ) -> Vec<CaseResult> {
        let (exact, low, want_stat) = self.reference_forward(x);
        let got = self.unpack_q(o);
        let mut results = vec![CaseResult {
            backend,
            case: format!("fwd o {}", self.describe::<T>()),
            max_err: max_abs_diff(&got, &exact),
            tol: tolerance(max_abs_diff(&low, &exact), 2.0, ulp_floor::<T>(&exact)),
        }];
        if let (Some(got), Some(want)) = (stat, want_stat) {
            let got: Vec<f64> = got.iter().map(|&g| g as f64).collect();
            let scale = want
                .iter()
                .filter(|w| w.is_finite())
                .fold(1.0f64, |m, w| m.max(w.abs()));
            results.push(CaseResult {
                backend,
                case: format!("fwd row_stat {}", self.describe::<T>()),
                max_err: max_abs_diff(&got, &want),
                tol: 1e-4 * scale,
            });
        }
        results
    }
}

/// The tolerance floor: one unit in the last place of `T` at the largest reference magnitude.
///
/// Where the input-precision reference happens to be exact (a row with one visible key, whose
/// weight is exactly 1), a kernel that rounds the same quantities in another order is still one
/// rounding of the output away; the floor admits that and nothing more.
pub fn ulp_floor<T: Element>(reference: &[f64]) -> f64 {
    let eps = match T::DTYPE {
        crate::DType::F16 => f64::powi(2.0, -10),
        crate::DType::BF16 => f64::powi(2.0, -7),
    };
    let max = reference
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    eps * max.max(f64::MIN_POSITIVE)
}

/// The reference precision matching `T`.
fn precision<T: Element>() -> Precision {
    match T::DTYPE {
        crate::DType::F16 => Precision::F16,
        crate::DType::BF16 => Precision::Bf16,
    }
}

fn copy_err(e: cudarc::driver::DriverError) -> crate::Error {
    crate::Error::Cuda {
        during: "copying test data",
        message: format!("{e:?}"),
    }
}

fn dense(batch: usize, seqlen_q: usize, seqlen_k: usize) -> Lengths {
    Lengths::Dense {
        batch,
        seqlen_q,
        seqlen_k,
    }
}

/// Masks every suite covers: none, causal, causal sliding window, a two-sided window, right only,
/// left only.
pub const MASKS: [Mask; 6] = [
    Mask::NONE,
    Mask::CAUSAL,
    Mask {
        left: Some(7),
        right: Some(0),
    },
    Mask {
        left: Some(20),
        right: Some(3),
    },
    Mask {
        left: None,
        right: Some(9),
    },
    Mask {
        left: Some(11),
        right: None,
    },
];

/// Every mask x (MHA, GQA, MQA) x (dense sq > sk, dense sq < sk, varlen with an empty and a
/// one-row sequence) for one activation, cycling through `head_dims`; sizes are not tile
/// multiples.
pub fn matrix(activation: Activation, head_dims: &[usize]) -> Vec<AttnCase> {
    let varlen = Lengths::Varlen {
        cu_q: vec![0, 1, 18, 18, 131],
        cu_k: vec![0, 5, 22, 39, 116],
    };
    let mut cases = Vec::new();
    for (mi, mask) in MASKS.iter().enumerate() {
        for (hq, hk) in [(2, 2), (4, 2), (3, 1)] {
            for lengths in [dense(2, 113, 37), dense(1, 17, 140), varlen.clone()] {
                let i = cases.len();
                cases.push(AttnCase {
                    lengths,
                    heads_q: hq,
                    heads_kv: hk,
                    head_dim: head_dims[(i + mi) % head_dims.len()],
                    opts: AttentionOptions::new(activation).with_mask(*mask),
                    row_pad: if i % 3 == 0 { 8 } else { 0 },
                    qk_std: 1.0,
                });
            }
        }
    }
    cases
}

/// Every head-dim bucket and dims between them, for softmax with sinks and sigmoid (with a
/// learnable per-head bias on every other dim, so `db` is checked in both backward layouts).
pub fn head_dim_cases() -> Vec<AttnCase> {
    let mut cases = Vec::new();
    for (i, d) in [8, 32, 40, 64, 72, 96, 104, 128, 136, 192, 200, 256]
        .into_iter()
        .enumerate()
    {
        let bias = if i % 2 == 0 {
            SigmoidBias::PerHead
        } else {
            SigmoidBias::NegLogSeqlenK
        };
        for activation in [
            Activation::Softmax { sink: true },
            Activation::Sigmoid { bias },
        ] {
            cases.push(AttnCase {
                lengths: dense(1, 65, 70),
                heads_q: 2,
                heads_kv: 1,
                head_dim: d,
                opts: AttentionOptions::new(activation).with_mask(Mask::CAUSAL),
                row_pad: 0,
                qk_std: 1.0,
            });
        }
    }
    cases
}

/// Seqlen 1 on either side and rows that see no key, for every activation; the last shape has
/// whole query blocks that see no key, in both forward pipelines (double-buffered at hd 64,
/// single-buffered at hd 128 and 256).
pub fn edge_cases() -> Vec<AttnCase> {
    let mut cases = Vec::new();
    for (lengths, head_dim) in [
        (dense(1, 1, 1), 64),
        (dense(3, 1, 9), 64),
        (dense(1, 9, 1), 64),
        (dense(2, 40, 3), 64),
        (dense(1, 300, 20), 64),
        (dense(1, 300, 20), 128),
        (dense(1, 300, 20), 256),
    ] {
        for activation in [
            Activation::Softmax { sink: false },
            Activation::Softmax { sink: true },
            Activation::Sigmoid {
                bias: SigmoidBias::Constant(0.5),
            },
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
        ] {
            cases.push(AttnCase {
                lengths: lengths.clone(),
                heads_q: 2,
                heads_kv: 2,
                head_dim,
                opts: AttentionOptions::new(activation).with_mask(Mask::CAUSAL),
                row_pad: 0,
                qk_std: 1.0,
            });
        }
    }
    cases
}

/// Logits up to about 1e4 in magnitude, and a custom scale, for every activation.
pub fn extreme_cases() -> Vec<AttnCase> {
    let mut cases = Vec::new();
    for activation in [
        Activation::Softmax { sink: true },
        Activation::Softmax { sink: false },
        Activation::Sigmoid {
            bias: SigmoidBias::NegLogSeqlenK,
        },
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::Constant(0.0),
        },
    ] {
        // q, k with standard deviation 60 at d = 64 and scale 1/8: |s| reaches about 1e4.
        let case = AttnCase {
            lengths: dense(1, 33, 47),
            heads_q: 2,
            heads_kv: 2,
            head_dim: 64,
            opts: AttentionOptions::new(activation).with_mask(Mask::sliding_window(11)),
            row_pad: 0,
            qk_std: 60.0,
        };
        cases.push(AttnCase {
            opts: case.opts.with_scale(0.37),
            qk_std: 1.0,
            ..case.clone()
        });
        cases.push(case);
    }
    cases
}

/// Long key sequences, where each weight is small and hundreds of key tiles pass through one
/// query block. A sigmoid under the -ln(sk) bias has p near 1/sk, so its output is a sum of many
/// small terms and an activation that errs in absolute rather than relative terms fails here:
/// 0.5 + 0.5 tanh(x / 2) with tanh.approx off by its documented bound misses the tolerance
/// rule by about 20x at sk = 4096 in bf16 and 150x in f16 (see activation.cuh). Softmax with
/// q, k of standard deviation 2.5 has a running maximum that keeps growing over many tiles, the
/// path of the forward's lazy rescaling.
pub fn long_key_cases() -> Vec<AttnCase> {
    let mut cases = Vec::new();
    for (activation, head_dim, mask, qk_std) in [
        (
            Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            64,
            Mask::NONE,
            1.0,
        ),
        (
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            128,
            Mask::NONE,
            1.0,
        ),
        (Activation::Softmax { sink: false }, 128, Mask::CAUSAL, 2.5),
        (Activation::Softmax { sink: true }, 64, Mask::NONE, 2.5),
        // all but the last key block unseen: their dK, dV and db partials are still written
        (
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead,
            },
            64,
            Mask::sliding_window(9),
            1.0,
        ),
    ] {
        cases.push(AttnCase {
            lengths: dense(1, 24, 4096),
            heads_q: 2,
            heads_kv: 1,
            head_dim,
            opts: AttentionOptions::new(activation).with_mask(mask),
            row_pad: 0,
            qk_std,
        });
    }
    cases
}

/// The sink-score cases ([`AttnCase::run_sink_scores`]): every activation, dense and varlen (a
/// packed sequence without queries among them), GQA and MQA, sq != sk, causal, windows and no
/// mask, head dims on and off the buckets, lengths 1, 17 and 113.
pub fn sink_cases() -> Vec<AttnCase> {
    let case = |lengths, heads_q, heads_kv, head_dim, activation, mask| AttnCase {
        lengths,
        heads_q,
        heads_kv,
        head_dim,
        opts: AttentionOptions::new(activation).with_mask(mask),
        row_pad: 0,
        qk_std: 1.0,
    };
    let varlen = Lengths::Varlen {
        cu_q: vec![0, 5, 22, 22, 23],
        cu_k: vec![0, 9, 30, 37, 38],
    };
    vec![
        case(
            dense(2, 17, 17),
            4,
            2,
            64,
            Activation::Softmax { sink: true },
            Mask::CAUSAL,
        ),
        case(
            dense(1, 33, 113),
            3,
            1,
            40,
            Activation::Softmax { sink: false },
            Mask::window(Some(20), Some(3)),
        ),
        case(
            dense(1, 1, 17),
            2,
            2,
            32,
            Activation::Softmax { sink: false },
            Mask::CAUSAL,
        ),
        case(
            varlen,
            2,
            2,
            128,
            Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            Mask::CAUSAL,
        ),
        case(
            dense(1, 64, 64),
            4,
            1,
            96,
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::PerHead,
            },
            Mask::NONE,
        ),
        case(
            dense(1, 113, 113),
            2,
            2,
            256,
            Activation::Sigmoid {
                bias: SigmoidBias::Constant(-2.0),
            },
            Mask::sliding_window(8),
        ),
    ]
}

/// The kernel variants ([`KernelVariant`]), for bf16 (and f16 where [`AttnCase::variant_in_f16`]): every
/// variant on each activation and head-dim bucket it exists for, at the bucket and at a dim
/// inside it, on a causal GQA shape, a window with MQA (two-sided at the 64 and 192 buckets, its
/// left bound alone at 128 and 256) and varlen; plus, per variant
/// and bucket, a long key sequence (where the sigmoid's accuracy shows and softmax's running
/// maximum keeps growing) and logits near 1e4.
pub fn variant_cases() -> Vec<AttnCase> {
    let varlen = Lengths::Varlen {
        cu_q: vec![0, 1, 18, 18, 131],
        cu_k: vec![0, 5, 22, 39, 116],
    };
    let small = [
        (dense(2, 113, 37), 4, 2, Mask::CAUSAL),
        (
            dense(1, 17, 140),
            3,
            1,
            Mask {
                left: Some(20),
                right: Some(3),
            },
        ),
        (varlen, 2, 2, Mask::NONE),
    ];
    let activations = [
        Activation::Softmax { sink: true },
        Activation::Sigmoid {
            bias: SigmoidBias::NegLogSeqlenK,
        },
        Activation::Sigmoid {
            bias: SigmoidBias::PerHead,
        },
    ];
    let mut cases = Vec::new();
    for variant in KernelVariant::ALTERNATIVES {
        for (b, (bucket, inside)) in [(64, 56), (128, 120), (192, 184), (256, 248)]
            .into_iter()
            .enumerate()
        {
            let mut long_added = false;
            for activation in activations {
                if !variant.exists_for(DType::BF16, activation, bucket) {
                    continue;
                }
                let opts = AttentionOptions::new(activation).with_variant(variant);
                for (i, (lengths, heads_q, heads_kv, mask)) in small.iter().enumerate() {
                    // the window loses its right bound at every other bucket: the backward's
                    // key blocks then run last to first (key_block_index)
                    let mask = if i == 1 && b % 2 == 1 {
                        Mask::window(mask.left, None)
                    } else {
                        *mask
                    };
                    cases.push(AttnCase {
                        lengths: lengths.clone(),
                        heads_q: *heads_q,
                        heads_kv: *heads_kv,
                        head_dim: if i == 1 { inside } else { bucket },
                        opts: opts.with_mask(mask),
                        row_pad: if i == 0 { 8 } else { 0 },
                        qk_std: 1.0,
                    });
                }
                // the long and extreme cases once per variant and bucket, on its first activation
                if long_added {
                    continue;
                }
                long_added = true;
                let softmax = matches!(activation, Activation::Softmax { .. });
                cases.push(AttnCase {
                    lengths: dense(1, 24, 4096),
                    heads_q: 2,
                    heads_kv: 1,
                    head_dim: bucket,
                    opts: opts.with_mask(if softmax { Mask::CAUSAL } else { Mask::NONE }),
                    row_pad: 0,
                    qk_std: if softmax { 2.5 } else { 1.0 },
                });
                cases.push(AttnCase {
                    lengths: dense(1, 33, 47),
                    heads_q: 2,
                    heads_kv: 2,
                    head_dim: bucket,
                    opts: opts.with_mask(Mask::sliding_window(11)),
                    row_pad: 0,
                    qk_std: 60.0,
                });
            }
        }
    }
    cases
}

/// The whole fixed suite: every activation's matrix, the head dims, the edges, the extremes,
/// the long key sequences.
pub fn suite() -> Vec<AttnCase> {
    let mut cases = matrix(Activation::Softmax { sink: false }, &[40, 64, 128]);
    cases.extend(matrix(Activation::Softmax { sink: true }, &[72, 32, 96]));
    cases.extend(matrix(
        Activation::Sigmoid {
            bias: SigmoidBias::NegLogSeqlenK,
        },
        &[64, 136, 8],
    ));
    cases.extend(matrix(
        Activation::Sigmoid {
            bias: SigmoidBias::PerHead,
        },
        &[48, 128],
    ));
    cases.extend(matrix(
        Activation::Sigmoid {
            bias: SigmoidBias::Constant(-3.5),
        },
        &[192],
    ));
    cases.extend(matrix(
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::PerHead,
        },
        &[128, 40],
    ));
    cases.extend(matrix(
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::Constant(1.0),
        },
        &[256],
    ));
    cases.extend(head_dim_cases());
    cases.extend(edge_cases());
    cases.extend(extreme_cases());
    cases.extend(long_key_cases());
    cases
}

/// Gradients a backend produced, in the element type (parameter gradients in f32).
#[derive(Clone, Debug, PartialEq)]
pub struct AttnGrads<T> {
    /// dQ, in q's padded layout.
    pub dq: Vec<T>,
    /// dK, in k's padded layout.
    pub dk: Vec<T>,
    /// dV, in v's padded layout.
    pub dv: Vec<T>,
    /// dsink, when the options use sinks.
    pub dsink: Option<Vec<f32>>,
    /// dbias, when the options use a per-head bias.
    pub dbias: Option<Vec<f32>>,
}

impl AttnCase {
    /// Judges a backward run: dQ, dK, dV by FlashAttention's rule (3x the input-precision
    /// reference's error plus one output ulp); dsink and dbias the same way in f32 with a floor
    /// of 1e-3 relative to their size.
    pub fn judge_backward<T: Element>(
        &self,
        backend: &'static str,
        x: &AttnInputs<T>,
        g: &AttnGrads<T>,
    ) -> Vec<CaseResult> {
        let (tq, tk) = self.tokens();
        let (qrow, krow) = (self.q_strides().row, self.k_strides().row);
        let q = self.pack(&x.q, tq, self.heads_q, qrow);
        let k = self.pack(&x.k, tk, self.heads_kv, krow);
        let v = self.pack(&x.v, tk, self.heads_kv, krow);
        let d_o = self.pack(&x.d_o, tq, self.heads_q, qrow);
        let widen = |p: &Option<Vec<f32>>| {
            p.as_ref()
                .map(|s| s.iter().map(|&v| v as f64).collect::<Vec<f64>>())
        };
        let (sink, bias) = (widen(&x.sink), widen(&x.bias));
        let p = self.problem((&q, &k, &v), &sink, &bias);
        let exact = reference::backward(&p, &d_o, Precision::F64);
        let low = reference::backward(&p, &d_o, precision::<T>());
        let desc = self.describe::<T>();
        let mut out = Vec::new();
        // One ulp of the largest gradient: dQ and dK of a row with one visible key are exactly 0
        // (dP = D), and a kernel computing dP and D in different orders lands an ulp of the
        // operands away, which a floor relative to a zero result would never admit.
        let all: Vec<f64> = exact
            .dq
            .iter()
            .chain(&exact.dk)
            .chain(&exact.dv)
            .copied()
            .collect();
        let floor = ulp_floor::<T>(&all);
        let mut grad = |name: &str, got: Vec<f64>, want: &[f64], lowp: &[f64]| {
            out.push(CaseResult {
                backend,
                case: format!("bwd {name} {desc}"),
                max_err: max_abs_diff(&got, want),
                tol: tolerance(max_abs_diff(lowp, want), 3.0, floor),
            });
        };
        grad(
            "dq",
            self.pack(&g.dq, tq, self.heads_q, qrow),
            &exact.dq,
            &low.dq,
        );
        grad(
            "dk",
            self.pack(&g.dk, tk, self.heads_kv, krow),
            &exact.dk,
            &low.dk,
        );
        grad(
            "dv",
            self.pack(&g.dv, tk, self.heads_kv, krow),
            &exact.dv,
            &low.dv,
        );
        // dsink and dbias are sums over a whole head. Where they go through D = dO . o, the o the
        // kernel is given was rounded to T, which moves each D_i by up to eps * sum_d |dO o|; the
        // weights multiplying D_i are at most 1 and sum to at most 1 per row, so that bound,
        // summed over the head's rows, joins the floor.
        let uses_d = !matches!(self.opts.activation, Activation::Sigmoid { .. });
        let d_floor = if uses_d {
            let o = reference::forward(&p, Precision::F64).o;
            let eps = ulp_floor::<T>(&[1.0]);
            (0..self.heads_q)
                .map(|h| {
                    let mut sum = 0.0;
                    for t in 0..tq {
                        let r = p.q_row(t, h);
                        sum += d_o[r.clone()]
                            .iter()
                            .zip(&o[r])
                            .map(|(a, b)| (a * b).abs())
                            .sum::<f64>();
                    }
                    eps * sum
                })
                .fold(0.0, f64::max)
        } else {
            0.0
        };
        for (name, got, want, lowp) in [
            ("dsink", &g.dsink, &exact.dsink, &low.dsink),
            ("dbias", &g.dbias, &exact.dbias, &low.dbias),
        ] {
            if let (Some(got), Some(want), Some(lowp)) = (got, want, lowp) {
                let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
                let size = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
                out.push(CaseResult {
                    backend,
                    case: format!("bwd {name} {desc}"),
                    max_err: max_abs_diff(&got, want),
                    tol: tolerance(max_abs_diff(lowp, want), 3.0, d_floor + 1e-3 * size),
                });
            }
        }
        out
    }

    /// Runs the forward on `backend` with poisoned outputs; returns `o` and the row statistic.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn forward_on<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        x: &AttnInputs<T>,
    ) -> Result<(Vec<T>, Option<Vec<f32>>)> {
        let (q, k, v) = (backend.up(&x.q)?, backend.up(&x.k)?, backend.up(&x.v)?);
        let sink = x.sink.as_deref().map(|s| backend.up32(s)).transpose()?;
        let bias = x.bias.as_deref().map(|b| backend.up32(b)).transpose()?;
        let mut o = backend.up(&vec![T::from_f64(f64::NAN); x.q.len()])?;
        let mut stat = self
            .opts
            .activation
            .has_row_stat()
            .then(|| backend.up32(&vec![f32::NAN; self.row_stat_len()]))
            .transpose()?;
        let (qs, ks) = (self.q_strides(), self.k_strides());
        let t = |data, strides| TensorRef { data, strides };
        backend.forward(
            &self.shape(),
            &self.opts,
            ForwardInputs {
                q: t(&q, qs),
                k: t(&k, ks),
                v: t(&v, ks),
                sink: sink.as_ref(),
                bias: bias.as_ref(),
            },
            ForwardOutputs {
                o: TensorMut {
                    data: &mut o,
                    strides: qs,
                },
                row_stat: stat.as_mut(),
            },
        )?;
        Ok((
            backend.down(&o)?,
            stat.as_ref().map(|s| backend.down32(s)).transpose()?,
        ))
    }

    /// [`AttnCase::inputs`] with a sink planted: every query shifted by 0.5 and the first key
    /// of each sequence all ones, so that key scores about `sqrt(head_dim) / 2` above the rest
    /// and draws a large share of every softmax row, as a sink does.
    pub fn sink_inputs<T: Element>(&self, seed: u64) -> AttnInputs<T> {
        let mut x = self.inputs::<T>(seed);
        let (qs, ks) = (self.q_strides(), self.k_strides());
        let (tq, _) = self.tokens();
        for t in 0..tq {
            for e in &mut x.q[t * qs.row..t * qs.row + self.heads_q * self.head_dim] {
                *e = T::from_f64(e.to_f64() + 0.5);
            }
        }
        let firsts: Vec<usize> = match &self.lengths {
            Lengths::Dense {
                batch, seqlen_k, ..
            } => (0..*batch)
                .filter(|_| *seqlen_k > 0)
                .map(|b| b * seqlen_k)
                .collect(),
            Lengths::Varlen { cu_q, cu_k } => cu_k
                .windows(2)
                .zip(cu_q.windows(2))
                .filter(|(k, q)| k[1] > k[0] && q[1] > q[0])
                .map(|(k, _)| usize::try_from(k[0]).expect("prefix sums"))
                .collect(),
        };
        for t in firsts {
            x.k[t * ks.row..t * ks.row + self.heads_kv * self.head_dim].fill(T::from_f64(1.0));
        }
        x
    }

    /// [`CpuReference::sink_scores`](crate::CpuReference::sink_scores) of the case on `x`.
    ///
    /// # Errors
    /// The reference's argument errors.
    pub fn reference_sink_scores<T: Element>(&self, x: &AttnInputs<T>) -> Result<Vec<f32>> {
        let (qs, ks) = (self.q_strides(), self.k_strides());
        crate::CpuReference.sink_scores(
            &self.shape(),
            &self.opts,
            ForwardInputs {
                q: TensorRef {
                    data: &x.q[..],
                    strides: qs,
                },
                k: TensorRef {
                    data: &x.k[..],
                    strides: ks,
                },
                v: TensorRef {
                    data: &x.v[..],
                    strides: ks,
                },
                sink: x.sink.as_deref(),
                bias: x.bias.as_deref(),
            },
        )
    }

    /// Runs [`CheckBackend::sink_scores`] on `backend` with [`AttnCase::sink_inputs`] and judges
    /// it against [`CpuReference::sink_scores`](crate::CpuReference::sink_scores): the largest
    /// error relative to the score (plus 10^-3), against two units in the last place of `T`
    /// (the weights and their sum are each rounded to `T` once).
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn run_sink_scores<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        seed: u64,
    ) -> Result<CaseResult> {
        let x = self.sink_inputs::<T>(seed);
        let (qs, ks) = (self.q_strides(), self.k_strides());
        let shape = self.shape();
        let want = self.reference_sink_scores(&x)?;
        let (q, k, v) = (backend.up(&x.q)?, backend.up(&x.k)?, backend.up(&x.v)?);
        let sink = x.sink.as_deref().map(|s| backend.up32(s)).transpose()?;
        let bias = x.bias.as_deref().map(|b| backend.up32(b)).transpose()?;
        let got = backend.sink_scores(
            &shape,
            &self.opts,
            ForwardInputs {
                q: TensorRef {
                    data: &q,
                    strides: qs,
                },
                k: TensorRef {
                    data: &k,
                    strides: ks,
                },
                v: TensorRef {
                    data: &v,
                    strides: ks,
                },
                sink: sink.as_ref(),
                bias: bias.as_ref(),
            },
        )?;
        let max_err = if got.len() == want.len() {
            got.iter().zip(&want).fold(0f64, |m, (&g, &w)| {
                let e = (g as f64 - w as f64).abs() / (w.abs() as f64 + 1e-3);
                if e.is_nan() {
                    f64::INFINITY
                } else {
                    m.max(e)
                }
            })
        } else {
            f64::INFINITY
        };
        Ok(CaseResult {
            backend: B::NAME,
            case: format!("sink scores {}", self.describe::<T>()),
            max_err,
            tol: 2.0 * ulp_floor::<T>(&[1.0]),
        })
    }

    /// Runs the forward on `backend` and judges it against the reference.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn run_forward<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        seed: u64,
    ) -> Result<Vec<CaseResult>> {
        let x = self.inputs::<T>(seed);
        let (o, stat) = self.forward_on(backend, &x)?;
        Ok(self.judge_forward(B::NAME, &x, &o, stat.as_deref()))
    }

    /// Runs the forward and then the backward on `backend`, outputs poisoned, and returns the
    /// gradients.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn backward_on<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        x: &AttnInputs<T>,
    ) -> Result<AttnGrads<T>> {
        self.backward_on_with(backend, x, None)
    }

    /// [`AttnCase::backward_on`], with the backward's scratch in `workspace` where one is given
    /// (the backend's `backward_with_workspace`).
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn backward_on_with<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        x: &AttnInputs<T>,
        workspace: Option<&mut B::F32>,
    ) -> Result<AttnGrads<T>> {
        let (o, stat) = self.forward_on(backend, x)?;
        let up = |v: &[T]| backend.up(v);
        let up32 = |v: &[f32]| backend.up32(v);
        let (q, k, v, d_o, o) = (up(&x.q)?, up(&x.k)?, up(&x.v)?, up(&x.d_o)?, up(&o)?);
        let stat = stat.as_deref().map(up32).transpose()?;
        let sink = x.sink.as_deref().map(up32).transpose()?;
        let bias = x.bias.as_deref().map(up32).transpose()?;
        let nan = T::from_f64(f64::NAN);
        let (mut dq, mut dk, mut dv) = (
            up(&vec![nan; x.q.len()])?,
            up(&vec![nan; x.k.len()])?,
            up(&vec![nan; x.v.len()])?,
        );
        let poisoned32 = |p: &Option<Vec<f32>>| {
            p.as_ref()
                .map(|p| up32(&vec![f32::NAN; p.len()]))
                .transpose()
        };
        let (mut dsink, mut dbias) = (poisoned32(&x.sink)?, poisoned32(&x.bias)?);
        let (qs, ks) = (self.q_strides(), self.k_strides());
        let t = |data, strides| TensorRef { data, strides };
        let inputs = BackwardInputs {
            q: t(&q, qs),
            k: t(&k, ks),
            v: t(&v, ks),
            o: t(&o, qs),
            d_o: t(&d_o, qs),
            row_stat: stat.as_ref(),
            sink: sink.as_ref(),
            bias: bias.as_ref(),
        };
        let outputs = BackwardOutputs {
            dq: TensorMut {
                data: &mut dq,
                strides: qs,
            },
            dk: TensorMut {
                data: &mut dk,
                strides: ks,
            },
            dv: TensorMut {
                data: &mut dv,
                strides: ks,
            },
            dsink: dsink.as_mut(),
            dbias: dbias.as_mut(),
        };
        let shape = self.shape();
        match workspace {
            None => backend.backward(&shape, &self.opts, inputs, outputs),
            Some(ws) => backend.backward_with_workspace(&shape, &self.opts, inputs, outputs, ws),
        }?;
        let down32 = |b: &B::F32| backend.down32(b);
        Ok(AttnGrads {
            dq: backend.down(&dq)?,
            dk: backend.down(&dk)?,
            dv: backend.down(&dv)?,
            dsink: dsink.as_ref().map(down32).transpose()?,
            dbias: dbias.as_ref().map(down32).transpose()?,
        })
    }

    /// Forward and backward on `backend`, judged against the reference.
    ///
    /// # Errors
    /// Whatever the backend reports.
    pub fn run_backward<T: Element, B: CheckBackend<T>>(
        &self,
        backend: &B,
        seed: u64,
    ) -> Result<Vec<CaseResult>> {
        let x = self.inputs::<T>(seed);
        let g = self.backward_on(backend, &x)?;
        Ok(self.judge_backward(B::NAME, &x, &g))
    }

    /// A [`variant_cases`] case's runs on `backend`, each judged: the forward in bf16 and, where
    /// the variant is compiled for it ([`AttnCase::variant_in_f16`]), in f16; then the backward
    /// the same way where the variant has one of its own, and once more in deterministic mode
    /// where it has its own dQ pass too. One entry per run, so that a failing launch does not
    /// hide the others.
    pub fn run_variant<B>(&self, backend: &B, seed: u64) -> Vec<Result<Vec<CaseResult>>>
    where
        B: CheckBackend<half::bf16> + CheckBackend<half::f16>,
    {
        let f16 = self.variant_in_f16();
        let mut runs = vec![self.run_forward::<half::bf16, _>(backend, seed)];
        if f16 {
            runs.push(self.run_forward::<half::f16, _>(backend, seed));
        }
        if self.opts.variant.has_backward() {
            runs.push(self.run_backward::<half::bf16, _>(backend, seed));
            if f16 {
                runs.push(self.run_backward::<half::f16, _>(backend, seed));
            }
        }
        if self.opts.variant.has_dq_pass() {
            let det = AttnCase {
                opts: self.opts.with_deterministic(true),
                ..self.clone()
            };
            runs.push(det.run_backward::<half::bf16, _>(backend, seed));
            if f16 {
                runs.push(det.run_backward::<half::f16, _>(backend, seed));
            }
        }
        runs
    }
}

/// What the suites need of a backend for element type `T`: buffers made from host data and read
/// back, and the two passes. One runner ([`AttnCase::run_forward`], [`AttnCase::run_backward`])
/// then serves the emulator and the GPU alike.
pub trait CheckBackend<T: Element> {
    /// Its name in [`CaseResult`]s.
    const NAME: &'static str;
    /// A buffer of `T`.
    type Buf;
    /// A buffer of `f32`.
    type F32;
    /// A buffer holding `data`.
    ///
    /// # Errors
    /// A failed copy.
    fn up(&self, data: &[T]) -> Result<Self::Buf>;
    /// An `f32` buffer holding `data`.
    ///
    /// # Errors
    /// A failed copy.
    fn up32(&self, data: &[f32]) -> Result<Self::F32>;
    /// The contents of `buf`.
    ///
    /// # Errors
    /// A failed copy.
    fn down(&self, buf: &Self::Buf) -> Result<Vec<T>>;
    /// The contents of an `f32` buffer.
    ///
    /// # Errors
    /// A failed copy.
    fn down32(&self, buf: &Self::F32) -> Result<Vec<f32>>;
    /// The backend's forward.
    ///
    /// # Errors
    /// Whatever the backend reports.
    fn forward(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, Self::Buf, Self::F32>,
        outputs: ForwardOutputs<'_, Self::Buf, Self::F32>,
    ) -> Result<()>;
    /// The backend's sink scores.
    ///
    /// # Errors
    /// Whatever the backend reports.
    fn sink_scores(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, Self::Buf, Self::F32>,
    ) -> Result<Vec<f32>>;
    /// The backend's backward.
    ///
    /// # Errors
    /// Whatever the backend reports.
    fn backward(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, Self::Buf, Self::F32>,
        outputs: BackwardOutputs<'_, Self::Buf, Self::F32>,
    ) -> Result<()>;
    /// The backend's backward with a caller-provided workspace.
    ///
    /// # Errors
    /// Whatever the backend reports.
    fn backward_with_workspace(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, Self::Buf, Self::F32>,
        outputs: BackwardOutputs<'_, Self::Buf, Self::F32>,
        workspace: &mut Self::F32,
    ) -> Result<()>;
}

impl<T: Element> CheckBackend<T> for Emulator {
    const NAME: &'static str = "emulator";
    type Buf = HostBuffer<T>;
    type F32 = HostBuffer<f32>;
    fn up(&self, data: &[T]) -> Result<Self::Buf> {
        Ok(HostBuffer::from_slice(data))
    }
    fn up32(&self, data: &[f32]) -> Result<Self::F32> {
        Ok(HostBuffer::from_slice(data))
    }
    fn down(&self, buf: &Self::Buf) -> Result<Vec<T>> {
        Ok(buf.to_vec())
    }
    fn down32(&self, buf: &Self::F32) -> Result<Vec<f32>> {
        Ok(buf.to_vec())
    }
    fn forward(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, Self::Buf, Self::F32>,
        outputs: ForwardOutputs<'_, Self::Buf, Self::F32>,
    ) -> Result<()> {
        Emulator::forward(self, shape, opts, inputs, outputs)
    }
    fn sink_scores(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, Self::Buf, Self::F32>,
    ) -> Result<Vec<f32>> {
        Emulator::sink_scores(self, shape, opts, inputs)
    }
    fn backward(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, Self::Buf, Self::F32>,
        outputs: BackwardOutputs<'_, Self::Buf, Self::F32>,
    ) -> Result<()> {
        Emulator::backward(self, shape, opts, inputs, outputs)
    }
    fn backward_with_workspace(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, Self::Buf, Self::F32>,
        outputs: BackwardOutputs<'_, Self::Buf, Self::F32>,
        workspace: &mut Self::F32,
    ) -> Result<()> {
        Emulator::backward_with_workspace(self, shape, opts, inputs, outputs, workspace)
    }
}

impl<T: Element + DeviceRepr> CheckBackend<T> for CudaBackend {
    const NAME: &'static str = "cuda";
    type Buf = CudaSlice<T>;
    type F32 = CudaSlice<f32>;
    // Copies on a stream behind hung work may never return, so after a timeout each of these
    // fails at once with it.
    fn up(&self, data: &[T]) -> Result<Self::Buf> {
        self.check_not_hung()?;
        self.stream().clone_htod(data).map_err(copy_err)
    }
    fn up32(&self, data: &[f32]) -> Result<Self::F32> {
        self.check_not_hung()?;
        self.stream().clone_htod(data).map_err(copy_err)
    }
    fn down(&self, buf: &Self::Buf) -> Result<Vec<T>> {
        self.check_not_hung()?;
        self.stream().clone_dtoh(buf).map_err(copy_err)
    }
    fn down32(&self, buf: &Self::F32) -> Result<Vec<f32>> {
        self.check_not_hung()?;
        self.stream().clone_dtoh(buf).map_err(copy_err)
    }
    fn forward(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, Self::Buf, Self::F32>,
        outputs: ForwardOutputs<'_, Self::Buf, Self::F32>,
    ) -> Result<()> {
        CudaBackend::forward(self, shape, opts, inputs, outputs)?;
        self.synchronize_within(sync_limit())
    }
    fn sink_scores(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, Self::Buf, Self::F32>,
    ) -> Result<Vec<f32>> {
        CudaBackend::sink_scores(self, shape, opts, inputs)
    }
    fn backward(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, Self::Buf, Self::F32>,
        outputs: BackwardOutputs<'_, Self::Buf, Self::F32>,
    ) -> Result<()> {
        CudaBackend::backward(self, shape, opts, inputs, outputs)?;
        self.synchronize_within(sync_limit())
    }
    fn backward_with_workspace(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, Self::Buf, Self::F32>,
        outputs: BackwardOutputs<'_, Self::Buf, Self::F32>,
        workspace: &mut Self::F32,
    ) -> Result<()> {
        CudaBackend::backward_with_workspace(self, shape, opts, inputs, outputs, workspace)?;
        self.synchronize_within(sync_limit())
    }
}
