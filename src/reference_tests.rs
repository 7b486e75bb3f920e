//! Tests of the reference: every gradient against central finite differences for every feature,
//! hand-checked values for the edge cases, invariants under proptest, the precision references
//! and the sink metric.

use super::*;
use proptest::prelude::*;

/// SplitMix64: a seeded generator with no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` values of magnitude in `[0.1, 1] * scale`, random sign: never zero.
    fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let magnitude = 0.1 + 0.9 * self.uniform();
                let sign = if self.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                sign * magnitude * scale
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BiasKind {
    Constant,
    PerHead,
    NegLog,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Softmax,
    SoftmaxSink,
    Sigmoid(BiasKind),
    NormalizedSigmoid(BiasKind),
}

const ACTS: [Act; 8] = [
    Act::Softmax,
    Act::SoftmaxSink,
    Act::Sigmoid(BiasKind::Constant),
    Act::Sigmoid(BiasKind::PerHead),
    Act::Sigmoid(BiasKind::NegLog),
    Act::NormalizedSigmoid(BiasKind::Constant),
    Act::NormalizedSigmoid(BiasKind::PerHead),
    Act::NormalizedSigmoid(BiasKind::NegLog),
];

type Window = (Option<usize>, Option<usize>);

const NO_MASK: Window = (None, None);
const CAUSAL: Window = (None, Some(0));
const WINDOWS: [Window; 5] = [
    NO_MASK,
    CAUSAL,
    (Some(1), None),
    (None, Some(1)),
    (Some(2), Some(1)),
];

#[derive(Clone, Debug)]
enum Layout {
    Dense { batch: usize, sq: usize, sk: usize },
    Varlen { cu_q: Vec<usize>, cu_k: Vec<usize> },
}

impl Layout {
    fn tokens(&self) -> (usize, usize) {
        match self {
            Layout::Dense { batch, sq, sk } => (batch * sq, batch * sk),
            Layout::Varlen { cu_q, cu_k } => (*cu_q.last().unwrap(), *cu_k.last().unwrap()),
        }
    }
}

/// A problem that owns its tensors, so finite differences can perturb them.
#[derive(Clone, Debug)]
struct Case {
    shape: HeadShape,
    layout: Layout,
    window: Window,
    act: Act,
    scale: Option<f64>,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    dout: Vec<f64>,
    sink: Vec<f64>,
    bias: Vec<f64>,
}

impl Case {
    fn new(seed: u64, shape: HeadShape, layout: Layout, window: Window, act: Act) -> Case {
        let mut rng = Rng(seed);
        let (tq, tk) = layout.tokens();
        let HeadShape {
            heads_q,
            heads_kv,
            head_dim,
        } = shape;
        Case {
            shape,
            layout,
            window,
            act,
            scale: None,
            q: rng.values(tq * heads_q * head_dim, 1.0),
            k: rng.values(tk * heads_kv * head_dim, 1.0),
            v: rng.values(tk * heads_kv * head_dim, 1.0),
            dout: rng.values(tq * heads_q * head_dim, 1.0),
            sink: rng.values(heads_q, 1.0),
            bias: rng.values(heads_q, 1.0),
        }
    }

    fn problem(&self) -> Problem<'_> {
        let (q, k, v) = (&self.q[..], &self.k[..], &self.v[..]);
        let base = match &self.layout {
            Layout::Dense { batch, sq, sk } => {
                Problem::dense(*batch, *sq, *sk, self.shape, q, k, v)
            }
            Layout::Varlen { cu_q, cu_k } => Problem::varlen(cu_q, cu_k, self.shape, q, k, v),
        };
        let bias = |kind| match kind {
            BiasKind::Constant => RefBias::Constant(-0.7),
            BiasKind::PerHead => RefBias::PerHead(&self.bias),
            BiasKind::NegLog => RefBias::NegLogSeqlenK,
        };
        let activation = match self.act {
            Act::Softmax => RefActivation::Softmax { sink: None },
            Act::SoftmaxSink => RefActivation::Softmax {
                sink: Some(&self.sink),
            },
            Act::Sigmoid(kind) => RefActivation::Sigmoid {
                bias: bias(kind),
                normalized: false,
            },
            Act::NormalizedSigmoid(kind) => RefActivation::Sigmoid {
                bias: bias(kind),
                normalized: true,
            },
        };
        Problem {
            window: self.window,
            activation,
            scale: self.scale.unwrap_or(base.scale),
            ..base
        }
    }

    fn loss(&self) -> f64 {
        let o = forward(&self.problem(), Precision::F64).o;
        o.iter().zip(&self.dout).map(|(o, d)| o * d).sum()
    }

    /// Central differences of the loss `sum(dout ∘ o)` in every element of one tensor.
    fn finite_differences(&self, tensor: fn(&mut Case) -> &mut Vec<f64>) -> Vec<f64> {
        let mut case = self.clone();
        let n = tensor(&mut case).len();
        (0..n)
            .map(|idx| {
                let x = tensor(&mut case)[idx];
                let h = 1e-5 * (1.0 + x.abs());
                tensor(&mut case)[idx] = x + h;
                let plus = case.loss();
                tensor(&mut case)[idx] = x - h;
                let minus = case.loss();
                tensor(&mut case)[idx] = x;
                (plus - minus) / (2.0 * h)
            })
            .collect()
    }

    /// Every analytic gradient of the case against finite differences.
    fn check_gradients(&self) {
        let g = backward(&self.problem(), &self.dout, Precision::F64);
        assert_close(
            &format!("dq of {self:?}"),
            &g.dq,
            &self.finite_differences(|c| &mut c.q),
            1e-6,
        );
        assert_close(
            &format!("dk of {self:?}"),
            &g.dk,
            &self.finite_differences(|c| &mut c.k),
            1e-6,
        );
        assert_close(
            &format!("dv of {self:?}"),
            &g.dv,
            &self.finite_differences(|c| &mut c.v),
            1e-6,
        );
        if self.act == Act::SoftmaxSink {
            let dsink = g.dsink.as_deref().expect("softmax with sink reports dsink");
            assert_close(
                &format!("dsink of {self:?}"),
                dsink,
                &self.finite_differences(|c| &mut c.sink),
                1e-6,
            );
        } else {
            assert!(g.dsink.is_none(), "dsink without a sink");
        }
        if let Act::Sigmoid(BiasKind::PerHead) | Act::NormalizedSigmoid(BiasKind::PerHead) =
            self.act
        {
            let dbias = g.dbias.as_deref().expect("per-head bias reports dbias");
            assert_close(
                &format!("dbias of {self:?}"),
                dbias,
                &self.finite_differences(|c| &mut c.bias),
                1e-6,
            );
        } else {
            assert!(g.dbias.is_none(), "dbias without a per-head bias");
        }
    }
}

fn max_abs(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Whole-buffer comparison, relative to the largest expected magnitude (at least 1); prints the
/// first mismatches. Also fails on NaN and on lengths that differ.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} instead of {}",
        got.len(),
        want.len()
    );
    let limit = tol * max_abs(want).max(1.0);
    // NaN is never within the limit.
    let within = |g: f64, w: f64| (g - w).abs() <= limit;
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| !within(**g, **w))
        .map(|(i, (g, w))| format!("[{i}] got {g:e}, want {w:e}"))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} elements off by more than {limit:e}; first: {:?}",
        bad.len(),
        got.len(),
        &bad[..bad.len().min(5)]
    );
}

const GQA: HeadShape = HeadShape {
    heads_q: 4,
    heads_kv: 2,
    head_dim: 3,
};
const MQA: HeadShape = HeadShape {
    heads_q: 3,
    heads_kv: 1,
    head_dim: 5,
};
const MHA: HeadShape = HeadShape {
    heads_q: 2,
    heads_kv: 2,
    head_dim: 3,
};

/// Four unequal sequences: one query over three keys, three queries over one key (causal leaves
/// two queries blind), five over seven, two queries over no key at all.
fn varlen_layout() -> Layout {
    Layout::Varlen {
        cu_q: vec![0, 1, 4, 9, 11],
        cu_k: vec![0, 3, 4, 11, 11],
    }
}

fn layouts() -> [Layout; 3] {
    [
        Layout::Dense {
            batch: 2,
            sq: 3,
            sk: 5,
        },
        Layout::Dense {
            batch: 1,
            sq: 6,
            sk: 4,
        },
        varlen_layout(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Gradients against finite differences.

#[test]
fn gradients_match_finite_differences_for_every_activation_mask_and_layout() {
    let mut seed = 1;
    for act in ACTS {
        for window in WINDOWS {
            for layout in layouts() {
                seed += 1;
                Case::new(seed, GQA, layout, window, act).check_gradients();
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences_for_mha_and_mqa() {
    for (n, act) in ACTS.into_iter().enumerate() {
        let seed = 100 + n as u64;
        Case::new(
            seed,
            MHA,
            Layout::Dense {
                batch: 1,
                sq: 3,
                sk: 3,
            },
            CAUSAL,
            act,
        )
        .check_gradients();
        Case::new(
            seed,
            MQA,
            Layout::Dense {
                batch: 2,
                sq: 4,
                sk: 3,
            },
            (Some(1), Some(1)),
            act,
        )
        .check_gradients();
    }
}

#[test]
fn gradients_match_finite_differences_with_custom_scale() {
    for (n, act) in ACTS.into_iter().enumerate() {
        let mut case = Case::new(
            200 + n as u64,
            GQA,
            Layout::Dense {
                batch: 1,
                sq: 3,
                sk: 4,
            },
            NO_MASK,
            act,
        );
        case.scale = Some(0.37);
        case.check_gradients();
    }
}

#[test]
fn gradients_match_finite_differences_for_single_token_sequences() {
    for (n, act) in ACTS.into_iter().enumerate() {
        let layout = Layout::Dense {
            batch: 3,
            sq: 1,
            sk: 1,
        };
        Case::new(300 + n as u64, MQA, layout, CAUSAL, act).check_gradients();
    }
}

#[test]
fn gradients_are_not_trivially_zero() {
    for act in ACTS {
        let case = Case::new(7, GQA, varlen_layout(), CAUSAL, act);
        let g = backward(&case.problem(), &case.dout, Precision::F64);
        for (name, grad) in [("dq", &g.dq), ("dk", &g.dk), ("dv", &g.dv)] {
            assert!(max_abs(grad) > 1e-3, "{name} of {act:?} is all but zero");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Masks.

#[test]
fn visible_keys_follow_the_bottom_right_inequality() {
    for sq in 0..7 {
        for sk in 0..7 {
            for left in [None, Some(0), Some(1), Some(3)] {
                for right in [None, Some(0), Some(2)] {
                    for i in 0..sq {
                        let keys = visible_keys(sq, sk, i, (left, right));
                        for j in 0..sk {
                            let (i, j, sq, sk) = (i as i64, j as i64, sq as i64, sk as i64);
                            let above = left.map_or(true, |l| i + sk - sq - l as i64 <= j);
                            let below = right.map_or(true, |r| j <= i + sk - sq + r as i64);
                            assert_eq!(
                                keys.contains(&(j as usize)),
                                above && below,
                                "sq {sq} sk {sk} i {i} j {j} {left:?} {right:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn causal_with_fewer_queries_lets_the_last_query_see_every_key() {
    assert_eq!(visible_keys(2, 5, 1, CAUSAL), 0..5);
    assert_eq!(visible_keys(2, 5, 0, CAUSAL), 0..4);
    assert_eq!(visible_keys(5, 2, 2, CAUSAL), 0..0);
    assert_eq!(visible_keys(5, 2, 3, CAUSAL), 0..1);
}

#[test]
fn fully_masked_rows_give_zero_output_and_the_documented_lse() {
    // Causal with sq = 4 > sk = 2: queries 0 and 1 see no key.
    for act in [
        Act::Softmax,
        Act::SoftmaxSink,
        Act::Sigmoid(BiasKind::PerHead),
        Act::NormalizedSigmoid(BiasKind::NegLog),
    ] {
        let case = Case::new(
            11,
            GQA,
            Layout::Dense {
                batch: 2,
                sq: 4,
                sk: 2,
            },
            CAUSAL,
            act,
        );
        let p = case.problem();
        let out = forward(&p, Precision::F64);
        assert!(
            out.o.iter().all(|x| x.is_finite()),
            "{act:?}: non-finite output"
        );
        for b in 0..2 {
            for h in 0..GQA.heads_q {
                for i in 0..4 {
                    let o_i = &out.o[p.q_row(b * 4 + i, h)];
                    assert_eq!(
                        o_i.iter().all(|&x| x == 0.0),
                        i < 2,
                        "{act:?} b {b} h {h} i {i}: {o_i:?}"
                    );
                    let Some(lse) = &out.lse else { continue };
                    let lse = lse[p.lse_index(b, h, i)];
                    match (i < 2, act) {
                        (true, Act::SoftmaxSink) => assert_eq!(lse, case.sink[h]),
                        (true, _) => assert_eq!(lse, f64::NEG_INFINITY),
                        (false, _) => assert!(lse.is_finite()),
                    }
                }
            }
        }
        let g = backward(&p, &case.dout, Precision::F64);
        for grad in [&g.dq, &g.dk, &g.dv] {
            assert!(
                grad.iter().all(|x| x.is_finite()),
                "{act:?}: non-finite gradient"
            );
        }
        for b in 0..2 {
            for h in 0..GQA.heads_q {
                for i in 0..2 {
                    assert!(
                        g.dq[p.q_row(b * 4 + i, h)].iter().all(|&x| x == 0.0),
                        "blind query has a gradient"
                    );
                }
            }
        }
    }
}

#[test]
fn a_sequence_without_keys_is_all_blind() {
    let case = Case::new(12, MHA, varlen_layout(), NO_MASK, Act::SoftmaxSink);
    let p = case.problem();
    let out = forward(&p, Precision::F64);
    let lse = out.lse.unwrap();
    for h in 0..MHA.heads_q {
        for i in 0..2 {
            assert_eq!(lse[p.lse_index(3, h, i)], case.sink[h]);
            assert!(out.o[p.q_row(9 + i, h)].iter().all(|&x| x == 0.0));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What is computed, by hand.

#[test]
fn softmax_with_sink_matches_a_hand_computation() {
    // One query, two keys, d = 1, scale 1: s = (2, -1), sink 0.5, v = (3, -4).
    let shape = HeadShape {
        heads_q: 1,
        heads_kv: 1,
        head_dim: 1,
    };
    let sink = [0.5];
    let base = Problem::dense(1, 1, 2, shape, &[1.0], &[2.0, -1.0], &[3.0, -4.0]);
    let p = Problem {
        scale: 1.0,
        activation: RefActivation::Softmax { sink: Some(&sink) },
        ..base
    };
    let z = 2f64.exp() + (-1f64).exp() + 0.5f64.exp();
    let out = forward(&p, Precision::F64);
    let want_o = (3.0 * 2f64.exp() - 4.0 * (-1f64).exp()) / z;
    assert!(
        (out.o[0] - want_o).abs() < 1e-14,
        "o {} instead of {want_o}",
        out.o[0]
    );
    assert!((out.lse.unwrap()[0] - z.ln()).abs() < 1e-14);
    let probs = attention_probs(&p, 0, 0, Precision::F64);
    assert!(
        (1.0 - probs.iter().sum::<f64>() - 0.5f64.exp() / z).abs() < 1e-14,
        "sink share"
    );
    // dsink = -exp(sink - lse) * D with D = dO · o.
    let g = backward(&p, &[1.5], Precision::F64);
    let want_dsink = -(0.5f64.exp() / z) * 1.5 * want_o;
    assert!((g.dsink.unwrap()[0] - want_dsink).abs() < 1e-14);
}

#[test]
fn sink_zero_is_softmax_off_by_one() {
    let case = Case::new(
        13,
        MHA,
        Layout::Dense {
            batch: 1,
            sq: 3,
            sk: 3,
        },
        CAUSAL,
        Act::SoftmaxSink,
    );
    let zeros = [0.0; 2];
    let p = Problem {
        activation: RefActivation::Softmax { sink: Some(&zeros) },
        ..case.problem()
    };
    let out = forward(&p, Precision::F64);
    let lse = out.lse.unwrap();
    for h in 0..2 {
        for i in 0..3 {
            let q_i = &case.q[p.q_row(i, h)];
            let z: f64 = 1.0
                + (0..=i)
                    .map(|j| (p.scale * dot(q_i, &case.k[p.kv_row(j, h)])).exp())
                    .sum::<f64>();
            assert!((lse[p.lse_index(0, h, i)] - z.ln()).abs() < 1e-14);
        }
    }
}

#[test]
fn sigmoid_matches_a_hand_computation() {
    // One query, two keys, d = 1, scale 1: s = (2, -1), v = (3, -4), bias -ln(2).
    let shape = HeadShape {
        heads_q: 1,
        heads_kv: 1,
        head_dim: 1,
    };
    let base = Problem::dense(1, 1, 2, shape, &[1.0], &[2.0, -1.0], &[3.0, -4.0]);
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let (p0, p1) = (sigmoid(2.0 - 2f64.ln()), sigmoid(-1.0 - 2f64.ln()));
    for normalized in [false, true] {
        let activation = RefActivation::Sigmoid {
            bias: RefBias::NegLogSeqlenK,
            normalized,
        };
        let p = Problem {
            scale: 1.0,
            activation,
            ..base.clone()
        };
        let out = forward(&p, Precision::F64);
        let want = if normalized {
            (3.0 * p0 - 4.0 * p1) / (p0 + p1)
        } else {
            3.0 * p0 - 4.0 * p1
        };
        assert!(
            (out.o[0] - want).abs() < 1e-14,
            "normalized {normalized}: {} instead of {want}",
            out.o[0]
        );
        assert!(out.lse.is_none());
    }
}

#[test]
fn neg_log_seqlen_bias_uses_each_sequences_own_key_count() {
    // Under varlen every sequence must equal the same sequence computed alone.
    for normalized in [false, true] {
        let case = Case::new(
            14,
            GQA,
            varlen_layout(),
            CAUSAL,
            Act::Sigmoid(BiasKind::NegLog),
        );
        let activation = RefActivation::Sigmoid {
            bias: RefBias::NegLogSeqlenK,
            normalized,
        };
        let packed = forward(
            &Problem {
                activation,
                ..case.problem()
            },
            Precision::F64,
        )
        .o;
        let Layout::Varlen { cu_q, cu_k } = &case.layout else {
            unreachable!()
        };
        for b in 0..cu_q.len() - 1 {
            let (sq, sk) = (cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]);
            let (q_row, kv_row) = (GQA.heads_q * GQA.head_dim, GQA.heads_kv * GQA.head_dim);
            let q = &case.q[cu_q[b] * q_row..cu_q[b + 1] * q_row];
            let k = &case.k[cu_k[b] * kv_row..cu_k[b + 1] * kv_row];
            let v = &case.v[cu_k[b] * kv_row..cu_k[b + 1] * kv_row];
            let alone = Problem {
                window: CAUSAL,
                activation,
                ..Problem::dense(1, sq, sk, GQA, q, k, v)
            };
            assert_close(
                &format!("sequence {b}"),
                &forward(&alone, Precision::F64).o,
                &packed[cu_q[b] * q_row..cu_q[b + 1] * q_row],
                1e-15,
            );
        }
    }
}

#[test]
fn gqa_equals_mha_with_repeated_key_value_heads() {
    for act in ACTS {
        let case = Case::new(
            15,
            GQA,
            Layout::Dense {
                batch: 2,
                sq: 3,
                sk: 4,
            },
            (Some(2), Some(0)),
            act,
        );
        let p = case.problem();
        let (d, group) = (GQA.head_dim, GQA.heads_q / GQA.heads_kv);
        let tokens_k = p.tokens_k();
        // k and v with kv head h / group copied into every query head h.
        let repeat = |x: &[f64]| -> Vec<f64> {
            let mut out = Vec::new();
            for t in 0..tokens_k {
                for h in 0..GQA.heads_q {
                    out.extend_from_slice(&x[((t * GQA.heads_kv) + h / group) * d..][..d]);
                }
            }
            out
        };
        let (k, v) = (repeat(&case.k), repeat(&case.v));
        let mha = Problem {
            heads_kv: GQA.heads_q,
            k: &k,
            v: &v,
            ..p.clone()
        };
        let (fg, fm) = (forward(&p, Precision::F64), forward(&mha, Precision::F64));
        assert_close("o", &fg.o, &fm.o, 1e-15);
        let (gg, gm) = (
            backward(&p, &case.dout, Precision::F64),
            backward(&mha, &case.dout, Precision::F64),
        );
        assert_close("dq", &gg.dq, &gm.dq, 1e-14);
        // dk and dv of a kv head are the sums over the query heads sharing it.
        let sum_groups = |x: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0; tokens_k * GQA.heads_kv * d];
            for t in 0..tokens_k {
                for h in 0..GQA.heads_q {
                    for e in 0..d {
                        out[(t * GQA.heads_kv + h / group) * d + e] +=
                            x[(t * GQA.heads_q + h) * d + e];
                    }
                }
            }
            out
        };
        assert_close("dv", &gg.dv, &sum_groups(&gm.dv), 1e-14);
        let summed = sum_groups(&gm.dk);
        assert_close("dk", &gg.dk, &summed, 1e-14);
    }
}

#[test]
fn dense_lse_layout_is_batch_head_query_and_varlen_is_head_token() {
    let case = Case::new(
        16,
        GQA,
        Layout::Dense {
            batch: 2,
            sq: 3,
            sk: 3,
        },
        CAUSAL,
        Act::Softmax,
    );
    let dense = case.problem();
    let varlen = Problem::varlen(&[0, 3, 6], &[0, 3, 6], GQA, &case.q, &case.k, &case.v);
    let varlen = Problem {
        window: CAUSAL,
        ..varlen
    };
    let (a, b) = (
        forward(&dense, Precision::F64),
        forward(&varlen, Precision::F64),
    );
    assert_eq!(a.o, b.o);
    let (la, lb) = (a.lse.unwrap(), b.lse.unwrap());
    for bi in 0..2 {
        for h in 0..GQA.heads_q {
            for i in 0..3 {
                assert_eq!(la[(bi * GQA.heads_q + h) * 3 + i], lb[h * 6 + bi * 3 + i]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extreme logits.

#[test]
fn extreme_logits_neither_overflow_nor_produce_nan() {
    for act in ACTS {
        for window in [NO_MASK, CAUSAL] {
            let mut case = Case::new(
                17,
                GQA,
                Layout::Dense {
                    batch: 1,
                    sq: 5,
                    sk: 3,
                },
                window,
                act,
            );
            // |s| up to 1e4 with scale 1 and d = 3.
            case.q.iter_mut().for_each(|x| *x *= 100.0);
            case.k.iter_mut().for_each(|x| *x *= 33.0);
            case.sink.iter_mut().for_each(|x| *x *= 1e4);
            case.scale = Some(1.0);
            let p = case.problem();
            let out = forward(&p, Precision::F64);
            assert!(out.o.iter().all(|x| x.is_finite()), "{act:?}: o not finite");
            if let Some(lse) = &out.lse {
                for h in 0..GQA.heads_q {
                    for i in 0..5 {
                        let sees_a_key = !visible_keys(5, 3, i, window).is_empty();
                        let l = lse[p.lse_index(0, h, i)];
                        assert!(
                            !l.is_nan() && (l.is_finite() || !sees_a_key),
                            "{act:?}: lse {l} for query {i}"
                        );
                    }
                }
            }
            let g = backward(&p, &case.dout, Precision::F64);
            let all = [&g.dq, &g.dk, &g.dv]
                .into_iter()
                .chain(g.dsink.as_ref())
                .chain(g.dbias.as_ref());
            for grad in all {
                assert!(
                    grad.iter().all(|x| x.is_finite()),
                    "{act:?}: gradient not finite"
                );
            }
        }
    }
}

#[test]
fn normalized_sigmoid_survives_rows_whose_sigmoids_all_underflow() {
    // s + b around -1e4: every p underflows to 0, but p / sum p is still a proper distribution.
    let shape = HeadShape {
        heads_q: 1,
        heads_kv: 1,
        head_dim: 1,
    };
    let base = Problem::dense(1, 1, 2, shape, &[1.0], &[-1e4, -1e4 - 1.0], &[3.0, -4.0]);
    let activation = RefActivation::Sigmoid {
        bias: RefBias::Constant(0.0),
        normalized: true,
    };
    let p = Problem {
        scale: 1.0,
        activation,
        ..base
    };
    let out = forward(&p, Precision::F64);
    let e = (-1f64).exp();
    assert!(
        (out.o[0] - (3.0 - 4.0 * e) / (1.0 + e)).abs() < 1e-12,
        "o {}",
        out.o[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Precision references.

#[test]
fn reduced_precision_is_close_to_f64_but_not_identical() {
    for act in ACTS {
        let case = Case::new(
            18,
            GQA,
            Layout::Dense {
                batch: 2,
                sq: 17,
                sk: 9,
            },
            CAUSAL,
            act,
        );
        let p = case.problem();
        let exact = forward(&p, Precision::F64);
        let exact_g = backward(&p, &case.dout, Precision::F64);
        for (prec, tol) in [(Precision::F16, 5e-3), (Precision::Bf16, 4e-2)] {
            let low = forward(&p, prec);
            assert_close(&format!("o {act:?} {prec:?}"), &low.o, &exact.o, tol);
            assert!(low.o != exact.o, "{prec:?} o is identical to f64");
            let low_g = backward(&p, &case.dout, prec);
            for (name, a, b) in [
                ("dq", &low_g.dq, &exact_g.dq),
                ("dk", &low_g.dk, &exact_g.dk),
                ("dv", &low_g.dv, &exact_g.dv),
            ] {
                assert_close(&format!("{name} {act:?} {prec:?}"), a, b, 2.0 * tol);
                assert!(a != b, "{prec:?} {name} is identical to f64");
            }
            // Outputs land on the dtype's grid.
            assert!(low.o.iter().chain(&low_g.dq).all(|&x| prec.round(x) == x));
        }
    }
}

#[test]
fn bf16_errs_more_than_f16() {
    let case = Case::new(
        19,
        GQA,
        Layout::Dense {
            batch: 2,
            sq: 17,
            sk: 9,
        },
        NO_MASK,
        Act::Softmax,
    );
    let p = case.problem();
    let exact = forward(&p, Precision::F64).o;
    let err = |prec| {
        let o = forward(&p, prec).o;
        o.iter()
            .zip(&exact)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
    };
    assert!(err(Precision::Bf16) > err(Precision::F16));
}

// ---------------------------------------------------------------------------------------------
// The sink metric.

#[test]
fn all_mass_on_the_first_token_gives_alpha_one() {
    let t = 5;
    let mut map = vec![0.0; t * t];
    (0..t).for_each(|i| map[i * t] = 1.0);
    assert_eq!(sink_alpha(&map, t, 1, false), 1.0);
    assert_eq!(sink_alpha(&map, t, 2, false), 0.0);
    assert_eq!(sink_alpha(&map, t, 1, true), 1.0);
}

#[test]
fn uniform_causal_map_gives_harmonic_means() {
    // A[i][j] = 1 / i (1-based) for j <= i: alpha_k = (1 / (T - k + 1)) * sum_{i = k..T} 1 / i.
    let t = 4;
    let mut map = vec![0.0; t * t];
    for i in 0..t {
        (0..=i).for_each(|j| map[i * t + j] = 1.0 / (i + 1) as f64);
    }
    let want = [
        25.0 / 48.0,
        (1.0 / 2.0 + 1.0 / 3.0 + 1.0 / 4.0) / 3.0,
        (1.0 / 3.0 + 1.0 / 4.0) / 2.0,
        1.0 / 4.0,
    ];
    for (k, want) in (1..=t).zip(want) {
        assert!(
            (sink_alpha(&map, t, k, false) - want).abs() < 1e-15,
            "alpha_{k}"
        );
    }
    // Scaling the rows changes nothing once they are normalized.
    let scaled: Vec<f64> = map.iter().map(|a| 7.0 * a).collect();
    assert!((sink_alpha(&scaled, t, 1, true) - 25.0 / 48.0).abs() < 1e-15);
}

#[test]
fn sink_rate_counts_maps_above_eps_in_percent() {
    let t = 4;
    let mut sink = vec![0.0; t * t];
    (0..t).for_each(|i| sink[i * t] = 1.0);
    let mut uniform = vec![0.0; t * t];
    for i in 0..t {
        (0..=i).for_each(|j| uniform[i * t + j] = 1.0 / (i + 1) as f64);
    }
    let maps: [(&[f64], usize); 4] = [(&sink, t), (&uniform, t), (&uniform, t), (&sink, t)];
    assert_eq!(sink_rate(&maps, 1, 0.3, false), 100.0); // alpha_1 = 25/48 > 0.3 for the uniform map too
    assert_eq!(sink_rate(&maps, 1, 0.6, false), 50.0);
    assert_eq!(sink_rate(&maps, 2, 0.3, false), 50.0); // (1/2 + 1/3 + 1/4) / 3 = 0.361 against 0
    assert_eq!(sink_rate(&[], 1, 0.3, false), 0.0);
}

#[test]
fn sigmoid_proxy_equals_the_normalized_sigmoid_map() {
    let case = Case::new(
        20,
        MHA,
        Layout::Dense {
            batch: 1,
            sq: 6,
            sk: 6,
        },
        CAUSAL,
        Act::Sigmoid(BiasKind::NegLog),
    );
    let p = case.problem();
    let normalized = Problem {
        activation: RefActivation::Sigmoid {
            bias: RefBias::NegLogSeqlenK,
            normalized: true,
        },
        ..p.clone()
    };
    for h in 0..2 {
        let raw = attention_probs(&p, 0, h, Precision::F64);
        let norm = attention_probs(&normalized, 0, h, Precision::F64);
        for k in 1..=6 {
            assert!((sink_alpha(&raw, 6, k, true) - sink_alpha(&norm, 6, k, false)).abs() < 1e-14);
        }
    }
}

#[test]
fn a_large_sink_logit_drains_attention_from_the_keys() {
    // With a strong sink, softmax rows give most of their mass to the sink, not to token 1.
    let mut case = Case::new(
        21,
        MHA,
        Layout::Dense {
            batch: 1,
            sq: 8,
            sk: 8,
        },
        CAUSAL,
        Act::SoftmaxSink,
    );
    let mut map_with_sink = |sink: f64| {
        case.sink = vec![sink; 2];
        attention_probs(&case.problem(), 0, 0, Precision::F64)
    };
    let (drained, plain) = (map_with_sink(10.0), map_with_sink(-10.0));
    assert!(sink_alpha(&drained, 8, 1, false) < 1e-3);
    assert!(sink_alpha(&plain, 8, 1, false) > 0.1);
    // Row normalization removes the sink's share, leaving the same map.
    let (a, b) = (
        sink_alpha(&drained, 8, 1, true),
        sink_alpha(&plain, 8, 1, true),
    );
    assert!((a - b).abs() < 1e-12, "{a} against {b}");
}

// ---------------------------------------------------------------------------------------------
// Properties over random shapes.

/// A small random case: sizes stay tiny so finite differences stay fast.
fn small_case() -> impl Strategy<Value = Case> {
    let window = prop_oneof![Just(None), (0usize..3).prop_map(Some)];
    (
        1usize..3,
        1usize..3,
        1usize..4,
        1usize..3,
        1usize..5,
        0usize..5,
        window.clone(),
        window,
        0usize..ACTS.len(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(heads_kv, group, head_dim, batch, sq, sk, left, right, act, seed, varlen)| {
                let shape = HeadShape {
                    heads_q: heads_kv * group,
                    heads_kv,
                    head_dim,
                };
                let layout = if varlen {
                    // Unequal lengths derived from the seed: sequence b has sq - b queries, sk + b keys.
                    let (mut cu_q, mut cu_k) = (vec![0], vec![0]);
                    for b in 0..batch {
                        cu_q.push(cu_q[b] + sq.saturating_sub(b));
                        cu_k.push(cu_k[b] + sk + b);
                    }
                    Layout::Varlen { cu_q, cu_k }
                } else {
                    Layout::Dense { batch, sq, sk }
                };
                Case::new(seed, shape, layout, (left, right), ACTS[act])
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn forward_invariants_hold(case in small_case()) {
        let p = case.problem();
        let out = forward(&p, Precision::F64);
        prop_assert!(out.o.iter().all(|x| x.is_finite()));
        prop_assert_eq!(out.lse.is_some(), matches!(case.act, Act::Softmax | Act::SoftmaxSink));
        for (b, seq) in p.seqs.iter().enumerate() {
            for h in 0..p.heads_q {
                let map = attention_probs(&p, b, h, Precision::F64);
                for i in 0..seq.q_len {
                    let keys = visible_keys(seq.q_len, seq.k_len, i, p.window);
                    let row = &map[i * seq.k_len..(i + 1) * seq.k_len];
                    let o_i = &out.o[p.q_row(seq.q_start + i, h)];
                    // Masked entries are exactly 0, visible ones positive.
                    for (j, &w) in row.iter().enumerate() {
                        prop_assert_eq!(keys.contains(&j), w > 0.0);
                    }
                    if keys.is_empty() {
                        prop_assert!(o_i.iter().all(|&x| x == 0.0));
                    }
                    let sum: f64 = row.iter().sum();
                    match case.act {
                        Act::Softmax if !keys.is_empty() => prop_assert!((sum - 1.0).abs() < 1e-12),
                        Act::SoftmaxSink => prop_assert!(sum < 1.0),
                        Act::NormalizedSigmoid(_) if !keys.is_empty() => prop_assert!((sum - 1.0).abs() < 1e-12),
                        _ => prop_assert!(row.iter().all(|&w| w < 1.0)),
                    }
                    if let Some(lse) = &out.lse {
                        let l = lse[p.lse_index(b, h, i)];
                        let has_sink = case.act == Act::SoftmaxSink;
                        prop_assert!(!l.is_nan() && l.is_finite() == (has_sink || !keys.is_empty()));
                    }
                    // o is the map times v.
                    for (e, &o) in o_i.iter().enumerate() {
                        let want: f64 = keys.clone().map(|j| row[j] * p.v[p.kv_row(seq.k_start + j, p.kv_head(h))][e]).sum();
                        prop_assert!((o - want).abs() < 1e-12);
                    }
                }
            }
        }
    }

    #[test]
    fn dense_equals_varlen_with_equal_lengths(case in small_case()) {
        let Layout::Dense { batch, sq, sk } = case.layout else { return Ok(()) };
        let p = case.problem();
        let cu_q: Vec<usize> = (0..=batch).map(|b| b * sq).collect();
        let cu_k: Vec<usize> = (0..=batch).map(|b| b * sk).collect();
        let varlen = Problem { seqs: Problem::varlen(&cu_q, &cu_k, case.shape, p.q, p.k, p.v).seqs, varlen: true, ..p.clone() };
        prop_assert_eq!(forward(&p, Precision::F64).o, forward(&varlen, Precision::F64).o);
        let (a, b) = (backward(&p, &case.dout, Precision::F64), backward(&varlen, &case.dout, Precision::F64));
        prop_assert_eq!(a.dq, b.dq);
        prop_assert_eq!(a.dk, b.dk);
        prop_assert_eq!(a.dsink, b.dsink);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gradients_match_finite_differences_on_random_shapes(case in small_case()) {
        case.check_gradients();
    }
}

#[test]
fn sigmoid_row_sums_normalize_the_map() {
    let (sq, sk, d) = (5, 7, 4);
    let mut rng = Rng(77);
    let q = rng.values(sq * 2 * d, 1.0);
    let k = rng.values(sk * d, 1.0);
    let v = rng.values(sk * d, 1.0);
    let shape = HeadShape {
        heads_q: 2,
        heads_kv: 1,
        head_dim: d,
    };
    let p = Problem {
        window: (Some(2), Some(0)),
        activation: RefActivation::Sigmoid {
            bias: RefBias::Constant(-1.0),
            normalized: false,
        },
        ..Problem::dense(1, sq, sk, shape, &q, &k, &v)
    };
    let sums = sigmoid_row_sums(&p);
    for h in 0..2 {
        let map = attention_probs(&p, 0, h, Precision::F64);
        for i in 0..sq {
            let want: f64 = map[i * sk..(i + 1) * sk].iter().sum();
            assert!((sums[p.lse_index(0, h, i)] - want).abs() < 1e-12);
        }
    }
}
