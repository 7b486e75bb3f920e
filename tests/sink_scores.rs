//! The seed paper's sink scores (`sinkless::sink`): the kernels' column sums on the emulator
//! against the float64 maps, and the float64 scores against the paper's definition.

use half::{bf16, f16};
use sinkless::check::{self, failures, AttnCase, Lengths};
use sinkless::reference::{self, Precision};
use sinkless::sink::visible_queries;
use sinkless::{Activation, AttentionOptions, Emulator, Mask};

/// Every sink case on the emulator, in f16 and bf16, against the float64 scores.
#[test]
fn emulator_sink_scores_match_the_reference() {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    for (i, case) in check::sink_cases().iter().enumerate() {
        let seed = 600 + i as u64;
        let results = [
            case.run_sink_scores::<f16, _>(&emu, seed).unwrap(),
            case.run_sink_scores::<bf16, _>(&emu, seed).unwrap(),
        ];
        for r in &results {
            eprintln!(
                "{} {}: max err {:.2e}, tol {:.2e}",
                r.backend, r.case, r.max_err, r.tol
            );
        }
        bad.extend(failures(&results));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// On a causal square map, the float64 scores are the paper's `alpha_k` of every key
/// (`reference::sink_alpha`), of the row-normalised map for plain sigmoid; the planted sink
/// shows (key 1 scores far above the mean of `1 / (t - k + 1)`-sized shares).
#[test]
fn reference_scores_are_the_papers_alpha() {
    for activation in [
        Activation::Softmax { sink: true },
        Activation::Sigmoid {
            bias: sinkless::SigmoidBias::NegLogSeqlenK,
        },
    ] {
        let t = 29;
        let case = AttnCase {
            lengths: Lengths::Dense {
                batch: 1,
                seqlen_q: t,
                seqlen_k: t,
            },
            heads_q: 2,
            heads_kv: 1,
            head_dim: 64,
            opts: AttentionOptions::new(activation).with_mask(Mask::CAUSAL),
            row_pad: 0,
            qk_std: 1.0,
        };
        let x = case.sink_inputs::<f16>(11);
        let scores = case.reference_sink_scores(&x).unwrap();
        assert_eq!(scores.len(), 2 * t);
        let normalize = matches!(activation, Activation::Sigmoid { .. });
        let to64 = |v: &[f16]| v.iter().map(|e| e.to_f64()).collect::<Vec<f64>>();
        let (q, k, v) = (to64(&x.q), to64(&x.k), to64(&x.v));
        let sink: Option<Vec<f64>> = x
            .sink
            .as_ref()
            .map(|s| s.iter().map(|&e| e as f64).collect());
        let p = reference::Problem {
            scale: 1.0 / 8.0,
            window: (None, Some(0)),
            activation: match activation {
                Activation::Softmax { .. } => reference::RefActivation::Softmax {
                    sink: sink.as_deref(),
                },
                _ => reference::RefActivation::Sigmoid {
                    bias: reference::RefBias::NegLogSeqlenK,
                    normalized: false,
                },
            },
            ..reference::Problem::dense(
                1,
                t,
                t,
                reference::HeadShape {
                    heads_q: 2,
                    heads_kv: 1,
                    head_dim: 64,
                },
                &q,
                &k,
                &v,
            )
        };
        for h in 0..2 {
            let map = reference::attention_probs(&p, 0, h, Precision::F64);
            for key in 1..=t {
                let want = reference::sink_alpha(&map, t, key, normalize);
                let got = scores[h * t + key - 1] as f64;
                assert!(
                    (got - want).abs() <= 1e-6 * want.max(1e-3),
                    "{activation:?} head {h} key {key}: {got} against alpha {want}"
                );
            }
            let mean = scores[h * t..(h + 1) * t].iter().sum::<f32>() / t as f32;
            assert!(
                scores[h * t] > 3.0 * mean,
                "{activation:?} head {h}: no sink at key 1 ({} against a mean of {mean})",
                scores[h * t]
            );
        }
    }
}

/// The denominators: a causal square map gives key `k` (0-based) `t - k` queries, a window
/// fewer, and keys past the end none.
#[test]
fn visible_query_counts() {
    let t = 10;
    for key in 0..t {
        assert_eq!(visible_queries(Mask::CAUSAL, t, t, key), t - key);
        assert_eq!(visible_queries(Mask::NONE, t, t, key), t);
        assert_eq!(
            visible_queries(Mask::sliding_window(2), t, t, key),
            (t - key).min(3)
        );
    }
    assert_eq!(visible_queries(Mask::CAUSAL, t, t, t), 0);
    // sq < sk: the queries sit at the bottom right, so the first keys of a causal map are seen
    // by every query
    assert_eq!(visible_queries(Mask::CAUSAL, 4, 10, 0), 4);
    assert_eq!(visible_queries(Mask::CAUSAL, 4, 10, 9), 1);
}
