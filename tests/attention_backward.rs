//! The attention backward kernels against the float64 reference under the emulator, by
//! FlashAttention's tolerance rule (3x the input-precision reference's error), for every
//! activation, mask, GQA/MQA, varlen, sink and bias kind, f16 and bf16; and the deterministic
//! mode's bitwise reproducibility.

use sinkless::check::{self, failures, AttnCase};
use sinkless::{Activation, Emulator, KernelVariant, SigmoidBias};

/// Runs every case's backward in f16 and bf16 (every other case deterministic) and asserts
/// that all pass.
fn run_all(cases: Vec<AttnCase>, seed: u64) {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let case = AttnCase {
            opts: case.opts.with_deterministic(i % 2 == 1),
            ..case
        };
        let s = seed + i as u64;
        bad.extend(failures(
            &case.run_backward::<half::f16, _>(&emu, s).unwrap(),
        ));
        bad.extend(failures(
            &case
                .run_backward::<half::bf16, _>(&emu, s ^ 0x5eed)
                .unwrap(),
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
                bias: SigmoidBias::PerHead,
            },
            &[64, 136, 8],
        ),
        200,
    );
    run_all(
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            &[48],
        ),
        300,
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
fn head_dims_edges_and_extremes() {
    run_all(check::head_dim_cases(), 700);
    run_all(check::edge_cases(), 800);
    run_all(check::extreme_cases(), 900);
    run_all(check::long_key_cases(), 1000);
}

#[test]
fn deterministic_mode_is_bitwise_reproducible() {
    for (i, case) in [
        check::matrix(Activation::Softmax { sink: true }, &[64])[7].clone(),
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead,
            },
            &[128],
        )[20]
            .clone(),
        // the wgmma main pass (dK, dV) before the default's deterministic dQ pass
        check::variant_cases()
            .into_iter()
            .find(|c| c.opts.variant == KernelVariant::Wgmma && c.heads_q > c.heads_kv)
            .expect("a GQA case of the wgmma variant"),
    ]
    .into_iter()
    .enumerate()
    {
        let case = AttnCase {
            opts: case.opts.with_deterministic(true),
            ..case
        };
        let x = case.inputs::<half::bf16>(i as u64);
        // Different fiber schedules and worker counts: a different order of every race.
        let a = case
            .backward_on(&Emulator::new().with_seed(1).with_worker_threads(1), &x)
            .unwrap();
        let b = case
            .backward_on(&Emulator::new().with_seed(99).with_worker_threads(2), &x)
            .unwrap();
        let bits = |v: &[half::bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<u16>>();
        assert_eq!(
            bits(&a.dq),
            bits(&b.dq),
            "{}",
            case.describe::<half::bf16>()
        );
        assert_eq!(bits(&a.dk), bits(&b.dk));
        assert_eq!(bits(&a.dv), bits(&b.dv));
        let fbits = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
        };
        assert_eq!(fbits(&a.dsink), fbits(&b.dsink));
        assert_eq!(fbits(&a.dbias), fbits(&b.dbias));
    }
}

/// The variants with a backward of their own (bf16, and f16 where compiled) against the reference.
#[test]
fn kernel_variants_with_a_backward() {
    let emu = Emulator::new();
    let cases: Vec<_> = check::variant_cases()
        .into_iter()
        .filter(|c| c.opts.variant.has_backward())
        .collect();
    for v in KernelVariant::ALTERNATIVES {
        let n = cases.iter().filter(|c| c.opts.variant == v).count();
        assert!(
            n >= 5 || !v.has_backward(),
            "{v:?}: {n} backward cases, too few"
        );
    }
    let mut bad = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        bad.extend(failures(
            &case
                .run_backward::<half::bf16, _>(&emu, 700 + i as u64)
                .unwrap(),
        ));
        if case.variant_in_f16() {
            bad.extend(failures(
                &case
                    .run_backward::<half::f16, _>(&emu, 700 + i as u64)
                    .unwrap(),
            ));
        }
        // every third case also with the deterministic dQ pass (the default's kernel, after
        // the variant's main pass where it has only that)
        if i % 3 == 0 {
            let det = AttnCase {
                opts: case.opts.with_deterministic(true),
                ..case.clone()
            };
            bad.extend(failures(
                &det.run_backward::<half::bf16, _>(&emu, 700 + i as u64)
                    .unwrap(),
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
