//! The attention forward kernels against the float64 reference under the emulator, by
//! FlashAttention's tolerance rule: every activation, mask, GQA/MQA, varlen, sink and bias kind,
//! for f16 and bf16, on awkward sizes. The same cases run on the GPU in `tests/gpu.rs`.

use proptest::prelude::*;
use sinkless::check::{AttnCase, CaseResult, Lengths};
use sinkless::{Activation, AttentionOptions, Emulator, Mask, SigmoidBias};

fn failures(results: &[CaseResult]) -> Vec<String> {
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

fn run_both(case: &AttnCase, emu: &Emulator, seed: u64) -> Vec<CaseResult> {
    let mut r = case.run_forward_emulator::<half::f16>(emu, seed).unwrap();
    r.extend(
        case.run_forward_emulator::<half::bf16>(emu, seed ^ 0x5eed)
            .unwrap(),
    );
    r
}

fn dense(b: usize, sq: usize, sk: usize) -> Lengths {
    Lengths::Dense {
        batch: b,
        seqlen_q: sq,
        seqlen_k: sk,
    }
}

/// Varlen with an empty sequence, a single row and lengths that are not tile multiples.
fn varlen() -> Lengths {
    Lengths::Varlen {
        cu_q: vec![0, 1, 18, 18, 131],
        cu_k: vec![0, 5, 22, 39, 116],
    }
}

const MASKS: [Mask; 5] = [
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
];

/// Every mask x (MHA, GQA, MQA) x (dense, varlen), for the given activation, both dtypes.
fn matrix(activation: Activation, head_dims: &[usize]) -> Vec<String> {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    let mut seed = 0;
    for (mi, mask) in MASKS.iter().enumerate() {
        for (hq, hk) in [(2, 2), (4, 2), (3, 1)] {
            for lengths in [dense(2, 113, 37), dense(1, 17, 140), varlen()] {
                seed += 1;
                let case = AttnCase {
                    lengths,
                    heads_q: hq,
                    heads_kv: hk,
                    head_dim: head_dims[(seed as usize + mi) % head_dims.len()],
                    opts: AttentionOptions::new(activation).with_mask(*mask),
                    row_pad: if seed % 3 == 0 { 8 } else { 0 },
                    qk_std: 1.0,
                };
                bad.extend(failures(&run_both(&case, &emu, seed)));
            }
        }
    }
    bad
}

#[test]
fn softmax_every_combination() {
    let bad = matrix(Activation::Softmax { sink: false }, &[40, 64, 128]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn softmax_with_sink_every_combination() {
    let bad = matrix(Activation::Softmax { sink: true }, &[72, 32, 96]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn sigmoid_every_combination() {
    let mut bad = matrix(
        Activation::Sigmoid {
            bias: SigmoidBias::NegLogSeqlenK,
        },
        &[64, 136, 8],
    );
    bad.extend(matrix(
        Activation::Sigmoid {
            bias: SigmoidBias::PerHead,
        },
        &[48, 128],
    ));
    bad.extend(matrix(
        Activation::Sigmoid {
            bias: SigmoidBias::Constant(-3.5),
        },
        &[192],
    ));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn normalized_sigmoid_every_combination() {
    let mut bad = matrix(
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::PerHead,
        },
        &[128, 40],
    );
    bad.extend(matrix(
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::Constant(1.0),
        },
        &[256],
    ));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_head_dim_bucket_and_off_bucket() {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    for (i, d) in [8, 32, 40, 64, 72, 96, 104, 128, 136, 192, 200, 256]
        .into_iter()
        .enumerate()
    {
        for activation in [
            Activation::Softmax { sink: true },
            Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
        ] {
            let case = AttnCase {
                lengths: dense(1, 65, 70),
                heads_q: 2,
                heads_kv: 1,
                head_dim: d,
                opts: AttentionOptions::new(activation).with_mask(Mask::CAUSAL),
                row_pad: 0,
                qk_std: 1.0,
            };
            bad.extend(failures(&run_both(&case, &emu, 100 + i as u64)));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn tiny_and_fully_masked_rows() {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    // sq = 1 and sk = 1; sq > sk causal (rows that see no key: o = 0, lse = -inf or the sink).
    for (i, lengths) in [
        dense(1, 1, 1),
        dense(3, 1, 9),
        dense(1, 9, 1),
        dense(2, 40, 3),
    ]
    .into_iter()
    .enumerate()
    {
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
            let case = AttnCase {
                lengths: lengths.clone(),
                heads_q: 2,
                heads_kv: 2,
                head_dim: 64,
                opts: AttentionOptions::new(activation).with_mask(Mask::CAUSAL),
                row_pad: 0,
                qk_std: 1.0,
            };
            bad.extend(failures(&run_both(&case, &emu, 200 + i as u64)));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn extreme_logits_and_custom_scale() {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    // q, k with standard deviation 60 at d = 64 and scale 1/8: |s| reaches about 1e4.
    for (i, activation) in [
        Activation::Softmax { sink: true },
        Activation::Softmax { sink: false },
        Activation::Sigmoid {
            bias: SigmoidBias::NegLogSeqlenK,
        },
        Activation::NormalizedSigmoid {
            bias: SigmoidBias::Constant(0.0),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let case = AttnCase {
            lengths: dense(1, 33, 47),
            heads_q: 2,
            heads_kv: 2,
            head_dim: 64,
            opts: AttentionOptions::new(activation).with_mask(Mask::sliding_window(11)),
            row_pad: 0,
            qk_std: 60.0,
        };
        bad.extend(failures(&run_both(&case, &emu, 300 + i as u64)));
        let scaled = AttnCase {
            opts: case.opts.with_scale(0.37),
            qk_std: 1.0,
            ..case
        };
        bad.extend(failures(&run_both(&scaled, &emu, 310 + i as u64)));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        any::<bool>().prop_map(|sink| Activation::Softmax { sink }),
        Just(Activation::Sigmoid {
            bias: SigmoidBias::NegLogSeqlenK
        }),
        Just(Activation::Sigmoid {
            bias: SigmoidBias::PerHead
        }),
        (-4.0f32..2.0).prop_map(|b| Activation::NormalizedSigmoid {
            bias: SigmoidBias::Constant(b)
        }),
    ]
}

fn lengths() -> impl Strategy<Value = Lengths> {
    prop_oneof![
        (1usize..3, 1usize..150, 1usize..150).prop_map(|(b, sq, sk)| dense(b, sq, sk)),
        prop::collection::vec((0i32..90, 0i32..90), 1..4).prop_map(|lens| {
            let (mut cu_q, mut cu_k) = (vec![0], vec![0]);
            for (q, k) in lens {
                cu_q.push(cu_q.last().unwrap() + q);
                cu_k.push(cu_k.last().unwrap() + k);
            }
            Lengths::Varlen { cu_q, cu_k }
        }),
    ]
}

fn mask() -> impl Strategy<Value = Mask> {
    (prop::option::of(0usize..64), prop::option::of(0usize..64))
        .prop_map(|(left, right)| Mask { left, right })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_problems(
        lengths in lengths(),
        kv in 1usize..3,
        group in 1usize..4,
        d8 in 1usize..=32,
        activation in activation(),
        mask in mask(),
        pad in 0usize..2,
        seed in any::<u64>(),
    ) {
        let case = AttnCase {
            lengths,
            heads_q: kv * group,
            heads_kv: kv,
            head_dim: d8 * 8,
            opts: AttentionOptions::new(activation).with_mask(mask),
            row_pad: pad * 8,
            qk_std: 1.0,
        };
        let bad = failures(&run_both(&case, &Emulator::new().with_seed(seed), seed));
        prop_assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
