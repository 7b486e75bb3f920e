//! The attention forward kernels against the float64 reference under the emulator, by
//! FlashAttention's tolerance rule: every activation, mask, GQA/MQA, varlen, sink and bias kind,
//! for f16 and bf16, on awkward sizes (the fixed suites of `sinkless::check`, which `tests/gpu.rs`
//! runs on a GPU), plus random problems.

use proptest::prelude::*;
use sinkless::check::{self, failures, AttnCase, Lengths};
use sinkless::{Activation, AttentionOptions, Emulator, Error, KernelVariant, Mask, SigmoidBias};

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

/// Every kernel variant's forward (bf16, and f16 where compiled) against the reference.
#[test]
fn kernel_variants_forward() {
    let emu = Emulator::new();
    let cases = check::variant_cases();
    for v in KernelVariant::ALTERNATIVES {
        assert!(
            cases.iter().filter(|c| c.opts.variant == v).count() >= 5,
            "{v:?} has too few cases"
        );
    }
    assert!(
        cases.iter().any(|c| c.variant_in_f16()),
        "the wgmma variants run in f16 too"
    );
    let mut bad = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let seed = 900 + i as u64;
        bad.extend(failures(
            &case.run_forward::<half::bf16, _>(&emu, seed).unwrap(),
        ));
        if case.variant_in_f16() {
            bad.extend(failures(
                &case.run_forward::<half::f16, _>(&emu, seed).unwrap(),
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Where each variant exists, as its documentation says; elsewhere the forward names it in an
/// `Unsupported` error instead of running the default kernel.
#[test]
fn kernel_variants_exist_where_documented() {
    use sinkless::DType::{BF16, F16};
    let sigmoid = Activation::Sigmoid {
        bias: SigmoidBias::PerHead,
    };
    let nsigmoid = Activation::NormalizedSigmoid {
        bias: SigmoidBias::PerHead,
    };
    let softmax = Activation::Softmax { sink: false };
    for v in [
        KernelVariant::SigmoidRcp,
        KernelVariant::SigmoidRcpHalf,
        KernelVariant::SigmoidRcpQuarter,
    ] {
        for d in [33, 64, 104, 128] {
            assert!(v.exists_for(BF16, sigmoid, d), "{v:?} {d}");
        }
        for (dt, a, d) in [
            (F16, sigmoid, 64),
            (BF16, softmax, 64),
            (BF16, nsigmoid, 128),
        ] {
            assert!(!v.exists_for(dt, a, d), "{v:?} {dt:?} {a:?} {d}");
        }
        for d in [32, 96, 192, 256, 264] {
            assert!(!v.exists_for(BF16, sigmoid, d), "{v:?} {d}");
        }
    }
    for v in [KernelVariant::KeyTile32, KernelVariant::DoubleBufferedKv] {
        for a in [sigmoid, softmax] {
            assert!(
                v.exists_for(BF16, a, 128) && v.exists_for(BF16, a, 104),
                "{v:?}"
            );
            assert!(
                !v.exists_for(BF16, a, 64) && !v.exists_for(F16, a, 128),
                "{v:?}"
            );
        }
        assert!(!v.exists_for(BF16, nsigmoid, 128), "{v:?}");
    }
    let v = KernelVariant::KeyTile128;
    assert!(v.exists_for(BF16, softmax, 64) && v.exists_for(BF16, softmax, 40));
    assert!(!v.exists_for(BF16, softmax, 128) && !v.exists_for(F16, softmax, 64));
    assert!(!v.exists_for(BF16, sigmoid, 64));
    for v in [
        KernelVariant::Wgmma,
        KernelVariant::WgmmaOverlap,
        KernelVariant::WgmmaWarpSpecialized,
        KernelVariant::WgmmaPingPong,
    ] {
        assert!(v.needs_wgmma());
        // the overlapped forwards at every bucket of whole 64-column blocks, `Wgmma` at two
        let wide = v != KernelVariant::Wgmma;
        for a in [sigmoid, softmax] {
            for d in [40, 64, 104, 128] {
                assert!(v.exists_for(BF16, a, d), "{v:?} {a:?} {d}");
            }
            for d in [136, 192, 200, 256] {
                assert_eq!(v.exists_for(BF16, a, d), wide, "{v:?} {a:?} {d}");
                assert_eq!(v.exists_for(F16, a, d), wide, "{v:?} {a:?} {d}");
            }
            for d in [32, 96] {
                assert!(!v.exists_for(BF16, a, d), "{v:?} {a:?} {d}");
            }
            assert!(v.exists_for(F16, a, 64) && v.exists_for(F16, a, 120));
        }
        assert!(!v.exists_for(BF16, nsigmoid, 128) && !v.exists_for(F16, nsigmoid, 64));
    }
    for v in KernelVariant::ALTERNATIVES {
        assert_eq!(KernelVariant::from_name(v.name()), Some(v));
        let case = AttnCase {
            lengths: Lengths::Dense {
                batch: 1,
                seqlen_q: 5,
                seqlen_k: 7,
            },
            heads_q: 1,
            heads_kv: 1,
            head_dim: 128,
            opts: AttentionOptions::new(sigmoid).with_variant(v),
            row_pad: 0,
            qk_std: 1.0,
        };
        if case.variant_in_f16() {
            // the wgmma variants: compiled for f16 too, so the case runs and passes
            let r = case
                .run_forward::<half::f16, _>(&Emulator::new(), 1)
                .unwrap();
            assert!(failures(&r).is_empty(), "{v:?} in f16: {r:?}");
            if v.has_backward() {
                let r = case
                    .run_backward::<half::f16, _>(&Emulator::new(), 1)
                    .unwrap();
                assert!(failures(&r).is_empty(), "{v:?} backward in f16: {r:?}");
            }
            continue;
        }
        match case.run_forward::<half::f16, _>(&Emulator::new(), 1) {
            Err(Error::Unsupported { feature }) => {
                assert!(
                    feature.contains(v.name()) && feature.contains("f16"),
                    "{feature}"
                )
            }
            other => panic!("{v:?} in f16: {other:?}"),
        }
        if v.has_backward() {
            match case.run_backward::<half::f16, _>(&Emulator::new(), 1) {
                Err(Error::Unsupported { feature }) => assert!(feature.contains(v.name())),
                other => panic!("{v:?} backward in f16: {other:?}"),
            }
        }
    }
}
