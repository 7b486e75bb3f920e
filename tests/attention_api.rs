//! The attention API's checks and its float64 backend ([`CpuReference`]).

use half::f16;
use sinkless::check::Rng;
use sinkless::{
    Activation, AttentionOptions, BackwardInputs, BackwardOutputs, CpuReference, Error,
    ForwardInputs, ForwardOutputs, Mask, Shape, SigmoidBias, Strides, TensorMut, TensorName,
    TensorRef,
};

struct Case {
    shape_q: (usize, usize, usize), // batch, seqlen_q, heads_q
    seqlen_k: usize,
    heads_kv: usize,
    d: usize,
}

fn forward(
    case: &Case,
    opts: &AttentionOptions,
    sink: Option<&[f32]>,
    bias: Option<&[f32]>,
    lse_len: Option<usize>,
) -> Result<(Vec<f16>, Option<Vec<f32>>), Error> {
    let (b, sq, hq) = case.shape_q;
    let mut rng = Rng::new(3);
    let sq_st = Strides::contiguous(sq, hq, case.d);
    let sk_st = Strides::contiguous(case.seqlen_k, case.heads_kv, case.d);
    let q: Vec<f16> = rng.vec(b * sq * hq * case.d);
    let k: Vec<f16> = rng.vec(b * case.seqlen_k * case.heads_kv * case.d);
    let v: Vec<f16> = rng.vec(k.len());
    let mut o = vec![f16::NAN; q.len()];
    let mut lse = lse_len.map(|n| vec![f32::NAN; n]);
    let shape = Shape::dense(b, sq, case.seqlen_k, hq, case.heads_kv, case.d);
    CpuReference.forward(
        &shape,
        opts,
        ForwardInputs {
            q: TensorRef {
                data: &q,
                strides: sq_st,
            },
            k: TensorRef {
                data: &k,
                strides: sk_st,
            },
            v: TensorRef {
                data: &v,
                strides: sk_st,
            },
            sink,
            bias,
        },
        ForwardOutputs {
            o: TensorMut {
                data: &mut o,
                strides: sq_st,
            },
            row_stat: lse.as_deref_mut(),
        },
    )?;
    Ok((o, lse))
}

fn t(data: &[f16], strides: Strides) -> TensorRef<'_, [f16]> {
    TensorRef { data, strides }
}

const CASE: Case = Case {
    shape_q: (2, 17, 4),
    seqlen_k: 5,
    heads_kv: 2,
    d: 40,
};

#[test]
fn per_head_and_statistic_buffers_are_checked() {
    let softmax = AttentionOptions::new(Activation::Softmax { sink: true });
    let sink = [0.5f32; 4];
    assert_eq!(
        forward(&CASE, &softmax, None, None, Some(2 * 4 * 17)).unwrap_err(),
        Error::PerHeadMismatch {
            tensor: TensorName::Sink,
            required: true
        }
    );
    assert_eq!(
        forward(&CASE, &softmax, Some(&sink[..3]), None, Some(2 * 4 * 17)).unwrap_err(),
        Error::WrongLength {
            tensor: TensorName::Sink,
            expected: 4,
            got: 3
        }
    );
    assert_eq!(
        forward(&CASE, &softmax, Some(&sink), None, Some(2 * 4 * 17 - 1)).unwrap_err(),
        Error::BufferTooSmall {
            tensor: TensorName::RowStat,
            needed: 136,
            len: 135
        }
    );
    let sigmoid = AttentionOptions::new(Activation::Sigmoid {
        bias: SigmoidBias::Constant(-2.0),
    });
    assert_eq!(
        forward(&CASE, &sigmoid, None, None, Some(136)).unwrap_err(),
        Error::PerHeadMismatch {
            tensor: TensorName::RowStat,
            required: false
        }
    );
    assert_eq!(
        forward(&CASE, &sigmoid, None, Some(&sink), None).unwrap_err(),
        Error::PerHeadMismatch {
            tensor: TensorName::Bias,
            required: false
        }
    );
    assert_eq!(
        forward(
            &CASE,
            &softmax.with_scale(f32::NAN),
            Some(&sink),
            None,
            Some(136)
        )
        .unwrap_err(),
        Error::BadOption {
            option: "scale",
            value: "NaN".into()
        }
    );
}

#[test]
fn fully_masked_rows_are_zero_with_minus_infinity_lse() {
    // sq = 17 > sk = 5, causal bottom-right: the first 12 query rows see no key.
    let opts = AttentionOptions::new(Activation::Softmax { sink: false }).with_mask(Mask::CAUSAL);
    let (o, lse) = forward(&CASE, &opts, None, None, Some(136)).unwrap();
    let lse = lse.unwrap();
    let (hq, d) = (4, 40);
    for b in 0..2 {
        for i in 0..17 {
            for h in 0..hq {
                let row = &o[((b * 17 + i) * hq + h) * d..][..d];
                let l = lse[(b * hq + h) * 17 + i];
                if i < 12 {
                    assert!(row.iter().all(|x| x.to_f32() == 0.0), "row {i} not zero");
                    assert_eq!(l, f32::NEG_INFINITY);
                } else {
                    assert!(row.iter().all(|x| x.is_finite()) && l.is_finite());
                }
            }
        }
    }
}

#[test]
fn backward_runs_every_activation_and_checks_gradient_buffers() {
    let (b, sq, hq, sk, hk, d) = (1, 9, 2, 13, 1, 16);
    let mut rng = Rng::new(11);
    let qs = Strides::contiguous(sq, hq, d);
    let ks = Strides::contiguous(sk, hk, d);
    let q: Vec<f16> = rng.vec(b * sq * hq * d);
    let k: Vec<f16> = rng.vec(b * sk * hk * d);
    let v: Vec<f16> = rng.vec(k.len());
    let d_o: Vec<f16> = rng.vec(q.len());
    let shape = Shape::dense(b, sq, sk, hq, hk, d);
    let params = [0.3f32, -0.7];
    for act in [
        Activation::Softmax { sink: true },
        Activation::Sigmoid {
            bias: SigmoidBias::PerHead,
        },
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::NegLogSeqlenK,
        },
    ] {
        let opts = AttentionOptions::new(act).with_mask(Mask::sliding_window(4));
        let sink = act.has_sink().then_some(&params[..]);
        let bias = act.has_bias_tensor().then_some(&params[..]);
        let mut o = vec![f16::NAN; q.len()];
        let mut lse = act.has_row_stat().then(|| vec![f32::NAN; hq * sq]);
        CpuReference
            .forward(
                &shape,
                &opts,
                ForwardInputs {
                    q: t(&q, qs),
                    k: t(&k, ks),
                    v: t(&v, ks),
                    sink,
                    bias,
                },
                ForwardOutputs {
                    o: TensorMut {
                        data: &mut o,
                        strides: qs,
                    },
                    row_stat: lse.as_deref_mut(),
                },
            )
            .unwrap();
        let (mut dq, mut dk, mut dv) = (
            vec![f16::NAN; q.len()],
            vec![f16::NAN; k.len()],
            vec![f16::NAN; k.len()],
        );
        let (mut dsink, mut dbias) = (vec![f32::NAN; 2], vec![f32::NAN; 2]);
        let needs_param = act.has_sink() || act.has_bias_tensor();
        let result = CpuReference.backward(
            &shape,
            &opts,
            BackwardInputs {
                q: t(&q, qs),
                k: t(&k, ks),
                v: t(&v, ks),
                o: t(&o, qs),
                d_o: t(&d_o, qs),
                row_stat: lse.as_deref(),
                sink,
                bias,
            },
            BackwardOutputs {
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
                dsink: act.has_sink().then_some(&mut dsink[..]),
                dbias: act.has_bias_tensor().then_some(&mut dbias[..]),
            },
        );
        result.unwrap();
        for g in [&dq, &dk, &dv] {
            assert!(
                g.iter().all(|x| x.is_finite()),
                "{act:?}: unwritten or NaN gradient"
            );
        }
        if needs_param {
            let dparam = if act.has_sink() { &dsink } else { &dbias };
            assert!(
                dparam.iter().all(|x| x.is_finite() && *x != 0.0),
                "{act:?}: {dparam:?}"
            );
        }
    }
}
