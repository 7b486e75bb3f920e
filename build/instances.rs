//! The one table of kernel instantiations.
//!
//! Each row becomes a generated file in `OUT_DIR/instances/` that includes its
//! family (templates only) and defines one `extern "C"` kernel; nvcc compiles it
//! into the fatbin and the host compiler into the emulator library. The same
//! rows generate the Rust dispatch table (`OUT_DIR/kernels.rs`).

/// One kernel instantiation.
pub struct Instance {
    /// The `extern "C"` symbol: what the CUDA backend looks up and the emulator calls.
    pub name: String,
    /// Kernel family source file under `kernels/`.
    pub family: &'static str,
    /// Expression that runs the kernel body, with the params struct in scope as `p`.
    pub body: String,
    /// C type of the params struct, passed by value.
    pub params: &'static str,
    /// Threads per block the kernel is compiled for (`__launch_bounds__`); 0 where `traits`
    /// gives it.
    pub threads: u32,
    /// SASS instruction classes the kernel must contain (the kernel report checks).
    pub expect_sass: &'static [&'static str],
    /// C++ traits type whose `kBlockM`, `kBlockN`, `kThreads` and `kSmemBytes` size the launch.
    /// The build exports them from the host-compiled copy, so the Rust plan reads the tile
    /// sizes from the same `constexpr`s the device code uses instead of repeating them.
    pub traits: Option<String>,
}

const DTYPES: [(&str, &str); 2] = [
    ("f16", "sinkless::f16_traits"),
    ("bf16", "sinkless::bf16_traits"),
];

/// Activation policies: kernel-name part and C++ policy type.
const ACTIVATIONS: [(&str, &str); 3] = [
    ("softmax", "sinkless::softmax_policy"),
    ("sigmoid", "sinkless::sigmoid_policy<false>"),
    ("nsigmoid", "sinkless::sigmoid_policy<true>"),
];

/// Head-dimension buckets (src/plan.rs picks the smallest that holds the head dim).
const HEAD_DIMS: [usize; 6] = [32, 64, 96, 128, 192, 256];

/// The conformance kernels: name, body, params type, threads per block, SASS they must hold.
#[allow(clippy::type_complexity)]
const CONFORMANCE: [(&str, &str, &str, u32, &[&str]); 10] = [
    (
        "index",
        "conf_index",
        "sinkless_conf_index_params",
        1024,
        &[],
    ),
    (
        "reduce",
        "conf_reduce",
        "sinkless_conf_reduce_params",
        128,
        &[],
    ),
    (
        "cp_async",
        "conf_cp_async",
        "sinkless_conf_cp_async_params",
        128,
        &["LDGSTS"],
    ),
    (
        "ldmatrix",
        "conf_ldmatrix",
        "sinkless_conf_ldmatrix_params",
        32,
        &["LDSM"],
    ),
    (
        "mma_f16",
        "conf_mma<false>",
        "sinkless_conf_mma_params",
        32,
        &["HMMA", "LDSM"],
    ),
    (
        "mma_bf16",
        "conf_mma<true>",
        "sinkless_conf_mma_params",
        32,
        &["HMMA", "LDSM"],
    ),
    ("shfl", "conf_shfl", "sinkless_conf_shfl_params", 64, &[]),
    ("math", "conf_math", "sinkless_conf_math_params", 128, &[]),
    (
        "widen",
        "conf_widen",
        "sinkless_conf_widen_params",
        128,
        &[],
    ),
    (
        "atomic",
        "conf_atomic",
        "sinkless_conf_atomic_params",
        128,
        &[],
    ),
];

/// Every instantiation the crate ships.
pub fn all() -> Vec<Instance> {
    let mut v = Vec::new();
    for (dt, ty) in DTYPES {
        v.push(Instance {
            name: format!("sinkless_rowdot_{dt}"),
            family: "rowdot.cu",
            body: format!("sinkless::rowdot<{ty}>(p)"),
            params: "sinkless_rowdot_params",
            threads: 128,
            expect_sass: &[],
            traits: None,
        });
    }
    // The emulator's conformance suite: one or more kernels per PTX wrapper, run on the
    // emulator in CI and compared bit for bit with the GPU when one is lent.
    for (name, body, params, threads, expect_sass) in CONFORMANCE {
        v.push(Instance {
            name: format!("sinkless_conf_{name}"),
            family: "conformance.cu",
            body: format!("sinkless::{body}(p)"),
            params,
            threads,
            expect_sass,
            traits: None,
        });
    }
    for (act, policy) in ACTIVATIONS {
        for (dt, ty) in DTYPES {
            for hd in HEAD_DIMS {
                let traits = format!("sinkless::fwd_traits<{hd}, {policy}>");
                v.push(Instance {
                    name: format!("sinkless_attn_fwd_{act}_{dt}_hd{hd}"),
                    family: "attn_fwd.cu",
                    body: format!("sinkless::attn_fwd<{ty}, {policy}, {hd}>(p)"),
                    params: "sinkless_attn_fwd_params",
                    threads: 0,
                    expect_sass: &["HMMA"],
                    traits: Some(traits),
                });
                for (kind, traits) in [("bwd", "bwd_traits"), ("bwd_dq", "bwd_dq_traits")] {
                    v.push(Instance {
                        name: format!("sinkless_attn_{kind}_{act}_{dt}_hd{hd}"),
                        family: "attn_bwd.cu",
                        body: format!("sinkless::attn_{kind}<{ty}, {policy}, {hd}>(p)"),
                        params: "sinkless_attn_bwd_params",
                        threads: 0,
                        expect_sass: &["HMMA"],
                        traits: Some(format!("sinkless::{traits}<{hd}>")),
                    });
                }
            }
        }
        v.push(Instance {
            name: format!("sinkless_attn_bwd_head_reduce_{act}"),
            family: "attn_bwd.cu",
            body: format!("sinkless::attn_bwd_head_reduce<{policy}>(p)"),
            params: "sinkless_attn_bwd_params",
            threads: 0,
            expect_sass: &[],
            traits: Some("sinkless::bwd_head_reduce_traits".into()),
        });
    }
    for (dt, ty) in DTYPES {
        v.push(Instance {
            name: format!("sinkless_attn_bwd_dq_convert_{dt}"),
            family: "attn_bwd.cu",
            body: format!("sinkless::attn_bwd_dq_convert<{ty}>(p)"),
            params: "sinkless_attn_bwd_params",
            threads: 0,
            expect_sass: &[],
            traits: Some("sinkless::bwd_rows_traits".into()),
        });
    }
    v
}
