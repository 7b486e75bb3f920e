//! The attention backward kernels against the float64 reference under the emulator, by
//! FlashAttention's tolerance rule (3x the input-precision reference's error), for every
//! activation, mask, GQA/MQA, varlen, sink and bias kind, f16 and bf16; and the deterministic
//! mode's bitwise reproducibility; the caller-provided workspace.

use sinkless::check::{self, failures, AttnCase, AttnGrads, Lengths};
use sinkless::{
    backward_workspace_len, Activation, AttentionOptions, BlockOrder, Emulator, HostBuffer,
    KernelVariant, Mask, SigmoidBias,
};

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
        // the wgmma backward: its main pass (dK, dV), then its own deterministic dQ pass
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
        // dq, dk, dv, dsink, dbias in turn
        assert_eq!(
            grad_bits(&a),
            grad_bits(&b),
            "{}",
            case.describe::<half::bf16>()
        );
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
        // in deterministic mode too: every case of a variant with a dQ pass of its own, in
        // each dtype it has; every third case of the others (the default's dQ pass after the
        // variant's main pass)
        let own_dq = case.opts.variant.has_dq_pass();
        if own_dq || i % 3 == 0 {
            let det = AttnCase {
                opts: case.opts.with_deterministic(true),
                ..case.clone()
            };
            bad.extend(failures(
                &det.run_backward::<half::bf16, _>(&emu, 700 + i as u64)
                    .unwrap(),
            ));
            if own_dq && case.variant_in_f16() {
                bad.extend(failures(
                    &det.run_backward::<half::f16, _>(&emu, 700 + i as u64)
                        .unwrap(),
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Grid order ([`BlockOrder::Grid`]) computes what longest-first, which every other test runs,
/// computes: under each mask that makes the kernels reverse a block axis by default (causal, a
/// right bound alone: the forward's and the dQ pass's query blocks; a left bound alone: the
/// backward's key blocks), the default kernels forward and backward, atomic and deterministic,
/// f16 and bf16, and the wgmma kernels with a forward or backward of their own, against the
/// reference. Shapes with several blocks on each axis run in both orders (the variant suite has
/// no left bound alone, under which the wgmma backward reverses its key blocks).
#[test]
fn both_block_orders_match_the_reference() {
    let reverses = |m: &Mask| m.left.is_some() != m.right.is_some();
    let grid = |c: AttnCase| AttnCase {
        opts: c.opts.with_block_order(BlockOrder::Grid),
        ..c
    };
    let mut cases: Vec<AttnCase> = [
        (Activation::Softmax { sink: true }, [64, 128]),
        (
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead,
            },
            [128, 40],
        ),
    ]
    .into_iter()
    .flat_map(|(a, dims)| check::matrix(a, &dims))
    .filter(|c| reverses(&c.opts.mask))
    .step_by(2)
    .map(grid)
    .collect();
    // several query and key blocks of every tile size, so that a reversed axis has more than one
    let many_blocks = |mask, head_dim, variant, block_order| AttnCase {
        lengths: Lengths::Dense {
            batch: 1,
            seqlen_q: 300,
            seqlen_k: 290,
        },
        heads_q: 2,
        heads_kv: 1,
        head_dim,
        opts: AttentionOptions::new(Activation::Softmax { sink: true })
            .with_mask(mask)
            .with_variant(variant)
            .with_block_order(block_order),
        row_pad: 0,
        qk_std: 1.0,
    };
    for (mask, hd) in [(Mask::CAUSAL, 64), (Mask::window(Some(70), None), 128)] {
        for order in [BlockOrder::Grid, BlockOrder::LongestFirst] {
            cases.push(many_blocks(mask, hd, KernelVariant::Default, order));
        }
    }
    let masks: Vec<Mask> = cases.iter().map(|c| c.opts.mask).collect();
    for m in check::MASKS.iter().filter(|m| reverses(m)) {
        assert!(masks.contains(m), "no grid-order case under {m:?}");
    }
    let emu = Emulator::new();
    let mut bad = Vec::new();
    for (i, case) in cases.drain(..).enumerate() {
        let case = AttnCase {
            opts: case.opts.with_deterministic(i % 2 == 1),
            ..case
        };
        let s = 1300 + i as u64;
        bad.extend(failures(
            &case.run_forward::<half::f16, _>(&emu, s).unwrap(),
        ));
        bad.extend(failures(
            &case.run_backward::<half::bf16, _>(&emu, s).unwrap(),
        ));
    }
    let wgmma: Vec<AttnCase> = check::variant_cases()
        .into_iter()
        .filter(|c| c.opts.variant.needs_wgmma() && reverses(&c.opts.mask) && c.head_dim <= 128)
        .filter(|c| c.heads_q > c.heads_kv)
        .map(grid)
        .chain(
            [BlockOrder::Grid, BlockOrder::LongestFirst]
                .into_iter()
                .flat_map(|order| {
                    [
                        many_blocks(Mask::CAUSAL, 128, KernelVariant::WgmmaPingPong, order),
                        many_blocks(
                            Mask::window(Some(70), None),
                            64,
                            KernelVariant::Wgmma,
                            order,
                        ),
                    ]
                }),
        )
        .collect();
    for v in [KernelVariant::Wgmma, KernelVariant::WgmmaPingPong] {
        assert!(wgmma.iter().any(|c| c.opts.variant == v), "no {v:?} case");
    }
    for (i, case) in wgmma.iter().enumerate() {
        for run in case.run_variant(&emu, 1400 + i as u64) {
            bad.extend(failures(&run.unwrap()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn grad_bits(g: &AttnGrads<half::bf16>) -> Vec<Vec<u32>> {
    let h = |v: &[half::bf16]| {
        v.iter()
            .map(|x| u32::from(x.to_bits()))
            .collect::<Vec<u32>>()
    };
    let f = |v: &Option<Vec<f32>>| {
        v.iter()
            .flatten()
            .map(|x| x.to_bits())
            .collect::<Vec<u32>>()
    };
    vec![h(&g.dq), h(&g.dk), h(&g.dv), f(&g.dsink), f(&g.dbias)]
}

/// `backward_with_workspace` against `backward`: bitwise equal in deterministic mode, with the
/// workspace NaN-poisoned, of exactly the advertised length (its last region flush against the
/// guard page) or longer, and reused dirty by a second call; in atomic mode (the dQ accumulator
/// lives in the workspace and must be zeroed by the call) judged against the reference, twice
/// on one workspace.
#[test]
fn caller_workspace_matches_own_scratch() {
    let cases = [
        check::matrix(Activation::Softmax { sink: true }, &[64])[8].clone(),
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead,
            },
            &[128],
        )[20]
            .clone(),
        check::matrix(
            Activation::NormalizedSigmoid {
                bias: SigmoidBias::PerHead,
            },
            &[40],
        )[16]
            .clone(),
        check::matrix(
            Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
            &[48],
        )[5]
        .clone(),
        // the wgmma variant's own main pass, with a bias gradient
        check::variant_cases()
            .into_iter()
            .find(|c| {
                c.opts.variant == KernelVariant::Wgmma
                    && c.opts.variant.has_backward()
                    && c.opts.activation.has_bias_tensor()
            })
            .expect("a wgmma backward case with a per-head bias"),
    ];
    let emu = Emulator::new();
    let mut bad = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let seed = 4000 + i as u64;
        let x = case.inputs::<half::bf16>(seed);
        let det = AttnCase {
            opts: case.opts.with_deterministic(true),
            ..case.clone()
        };
        let name = det.describe::<half::bf16>();
        let len = backward_workspace_len::<half::bf16>(&det.shape(), &det.opts).unwrap();
        let own = det.backward_on(&emu, &x).unwrap();
        let mut exact = HostBuffer::filled(len, f32::NAN);
        let first = det.backward_on_with(&emu, &x, Some(&mut exact)).unwrap();
        assert_eq!(
            grad_bits(&own),
            grad_bits(&first),
            "{name}: exact workspace"
        );
        let again = det.backward_on_with(&emu, &x, Some(&mut exact)).unwrap();
        assert_eq!(
            grad_bits(&own),
            grad_bits(&again),
            "{name}: reused workspace"
        );
        let mut roomy = HostBuffer::filled(len + 37, f32::NAN);
        let longer = det.backward_on_with(&emu, &x, Some(&mut roomy)).unwrap();
        assert_eq!(
            grad_bits(&own),
            grad_bits(&longer),
            "{name}: longer workspace"
        );

        let len = backward_workspace_len::<half::bf16>(&case.shape(), &case.opts).unwrap();
        let mut ws = HostBuffer::filled(len, f32::NAN);
        for _ in 0..2 {
            let g = case.backward_on_with(&emu, &x, Some(&mut ws)).unwrap();
            bad.extend(failures(&case.judge_backward("emulator", &x, &g)));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
