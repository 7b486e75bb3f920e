//! The build's kernel selection (`SINKLESS_HEAD_DIMS`, `SINKLESS_VARIANTS` at build time): what
//! `built_kernels` reports follows the environment the crate was built with, every kernel in
//! the build runs and passes, and a call that needs one left out is `Error::KernelNotBuilt`
//! naming it, while a kernel no build has stays `Error::Unsupported`. CI runs this file in the
//! default build and in one with `SINKLESS_HEAD_DIMS=64 SINKLESS_VARIANTS=0`.

use half::{bf16, f16};
use sinkless::check::{failures, AttnCase, Lengths};
use sinkless::{
    backward_workspace_len, built_kernels, Activation, AttentionOptions, Emulator, Error,
    KernelVariant, SigmoidBias,
};

const BUCKETS: [usize; 6] = [32, 64, 96, 128, 192, 256];

/// The selection the build environment asked for, parsed independently of build.rs.
fn expected_head_dims() -> Vec<usize> {
    match option_env!("SINKLESS_HEAD_DIMS").map(str::trim) {
        None | Some("") | Some("all") => BUCKETS.to_vec(),
        Some(v) => {
            let mut d: Vec<usize> = v
                .split([',', ';', ' '])
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().expect("build.rs accepted it"))
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        }
    }
}

#[test]
fn selection_follows_the_build_environment() {
    let b = built_kernels();
    assert_eq!(b.head_dims, &expected_head_dims()[..]);
    assert_eq!(b.variants, option_env!("SINKLESS_VARIANTS") != Some("0"));
    if b.head_dims.len() < BUCKETS.len() || !b.variants {
        sinkless::check::notice(&format!("a reduced build: {b:?}"));
    }
}

fn case(head_dim: usize, opts: AttentionOptions) -> AttnCase {
    AttnCase {
        lengths: Lengths::Dense {
            batch: 1,
            seqlen_q: 17,
            seqlen_k: 9,
        },
        heads_q: 2,
        heads_kv: 1,
        head_dim,
        opts,
        row_pad: 0,
        qk_std: 1.0,
    }
}

/// `result` is a kernel-not-built error naming a kernel whose name holds `part`, and its
/// message says how to rebuild.
fn assert_not_built<T: std::fmt::Debug>(result: Result<T, Error>, part: &str, what: &str) {
    match result {
        Err(e @ Error::KernelNotBuilt { .. }) => {
            let Error::KernelNotBuilt { kernel } = &e else {
                unreachable!()
            };
            assert!(kernel.contains(part), "{what}: {kernel} lacks {part}");
            let msg = e.to_string();
            assert!(
                msg.contains(kernel.as_str()) && msg.contains("SINKLESS_HEAD_DIMS"),
                "{what}: {msg}"
            );
        }
        other => panic!("{what}: expected KernelNotBuilt, got {other:?}"),
    }
}

#[test]
fn kernels_left_out_are_typed_errors_and_the_rest_pass() {
    let emu = Emulator::new();
    let built = built_kernels();
    let mut bad = Vec::new();
    for (i, hd) in BUCKETS.into_iter().enumerate() {
        for act in [
            Activation::Softmax { sink: true },
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead,
            },
        ] {
            let c = case(hd - 8 * (i % 2), AttentionOptions::new(act));
            let what = c.describe::<bf16>();
            let fwd = c.run_forward::<bf16, _>(&emu, hd as u64);
            let bwd = c.run_backward::<f16, _>(&emu, hd as u64 + 1);
            let len = backward_workspace_len::<f16>(&c.shape(), &c.opts);
            if built.head_dims.contains(&hd) {
                bad.extend(failures(&fwd.unwrap()));
                bad.extend(failures(&bwd.unwrap()));
                assert!(len.unwrap() > 0);
            } else {
                let part = format!("_hd{hd}");
                assert_not_built(fwd, &part, &what);
                assert_not_built(bwd, &part, &what);
                assert_not_built(len, &part, &what);
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    let softmax = AttentionOptions::new(Activation::Softmax { sink: false });
    let wgmma = case(64, softmax.with_variant(KernelVariant::Wgmma));
    let run = wgmma.run_forward::<bf16, _>(&emu, 7);
    if built.variants && built.head_dims.contains(&64) {
        assert!(failures(&run.unwrap()).is_empty());
    } else {
        assert_not_built(run, "_wgmma", "the wgmma forward");
    }
    // No build has the rcp sigmoid forward in f16: unsupported, not "left out".
    let rcp = case(
        64,
        AttentionOptions::new(Activation::Sigmoid {
            bias: SigmoidBias::PerHead,
        })
        .with_variant(KernelVariant::SigmoidRcp),
    );
    assert!(matches!(
        rcp.run_forward::<f16, _>(&emu, 8),
        Err(Error::Unsupported { .. })
    ));
}
