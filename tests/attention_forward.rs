//! The attention forward kernels against the float64 reference under the emulator, by
//! FlashAttention's tolerance rule: every activation, mask, GQA/MQA, varlen, sink and bias kind,
//! for f16 and bf16, on awkward sizes (the fixed suites of `sinkless::check`, which `tests/gpu.rs`
//! runs on a GPU), plus random problems.

use proptest::prelude::*;
use sinkless::check::{self, failures, AttnCase, Lengths};
use sinkless::{Activation, AttentionOptions, Emulator, Mask, SigmoidBias};

/// Runs every case in f16 and bf16 and asserts that all pass.
fn run_all(cases: Vec<AttnCase>, seed: u64) {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let s = seed + i as u64;
        bad.extend(failures(
            &case.run_forward::<half::f16, _>(&emu, s).unwrap(),
        ));
        bad.extend(failures(
            &case.run_forward::<half::bf16, _>(&emu, s ^ 0x5eed).unwrap(),
        ));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn softmax_every_combination() {
    run_all(
        check::matrix(Activation::Softmax { sink: false }, &[40, 64, 128]),
        0,
    );
}

#[test]
fn softmax_with_sink_every_combination() {
    run_all(
        check::matrix(Activation::Softmax { sink: true }, &[72, 32, 96]),
        100,
    );
}

#[test]
fn sigmoid_every_combination() {
    run_all(
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            &[64, 136, 8],
        ),
        200,
    );
    run_all(
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead,
            },
            &[48, 128],
        ),
        300,
    );
    run_all(
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::Constant(-3.5),
            },
            &[192],
        ),
        400,
    );
}

#[test]
fn normalized_sigmoid_every_combination() {
    run_all(
        check::matrix(
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::PerHead,
            },
            &[128, 40],
        ),
        500,
    );
    run_all(
        check::matrix(
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::Constant(1.0),
            },
            &[256],
        ),
        600,
    );
}

#[test]
fn every_head_dim_bucket_and_off_bucket() {
    run_all(check::head_dim_cases(), 700);
}

#[test]
fn tiny_and_fully_masked_rows() {
    run_all(check::edge_cases(), 800);
}

#[test]
fn extreme_logits_and_custom_scale() {
    run_all(check::extreme_cases(), 900);
}

#[test]
fn long_keys_with_small_weights_and_a_growing_max() {
    run_all(check::long_key_cases(), 1000);
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
        (1usize..3, 1usize..150, 1usize..150).prop_map(|(batch, seqlen_q, seqlen_k)| {
            Lengths::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            }
        }),
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
        let emu = Emulator::new().with_seed(seed);
        let mut r = case.run_forward::<half::f16, _>(&emu, seed).unwrap();
        r.extend(case.run_forward::<half::bf16, _>(&emu, seed ^ 1).unwrap());
        let bad = failures(&r);
        prop_assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
