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
    /// The head-dim bucket of an attention kernel; `None` for the kernels every build holds.
    pub head_dim: Option<usize>,
    /// A `KernelVariant`'s kernel (src/config.rs) rather than a default one.
    pub variant: bool,
}

impl Instance {
    /// Whether the params struct holds tensor maps (`tma_params.h`; those structs are the
    /// `_tma_` ones): the kernel takes it as a `__grid_constant__` (the copies read the maps in
    /// parameter space), is compiled with a register cap (`__launch_bounds__(threads, 1)`), which
    /// `setmaxnreg` needs, and goes into the whole-program fatbin.
    pub fn tensor_maps(&self) -> bool {
        self.params.contains("_tma_")
    }

    /// Whether the kernel runs on sm_90 alone: it must hold HGMMA (wgmma) or UTMALDG (tensor
    /// copies), which only sm_90a has of our targets. Its other targets hold a stub that traps,
    /// which the CUDA backend never launches, and `expect_sass` applies to sm_90a alone.
    pub fn hopper_only(&self) -> bool {
        self.expect_sass
            .iter()
            .any(|c| matches!(*c, "HGMMA" | "UTMALDG"))
    }
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

/// A forward variant: an alternative to the default choices that the benchmark times beside
/// them (src/config.rs, `KernelVariant`, whose names match `suffix`); bf16 only, except the
/// Hopper ones (wgmma), compiled for both element types as the candidates for sm_90's default.
struct FwdVariant {
    /// The kernel name's suffix.
    suffix: &'static str,
    /// The activation's part of the kernel name.
    act: &'static str,
    /// Its policy type.
    policy: &'static str,
    /// Head-dim buckets it is compiled for.
    head_dims: &'static [usize],
    /// Key tile and K/V stages (0: the default of `fwd_traits`).
    block_n: u32,
    stages: u32,
    /// Products by wgmma (sm_90a only): 0 no, 1 yes, 2 with the intra-warpgroup overlap, 3 and
    /// warp-specialised with tensor copies (its params hold tensor maps).
    wgmma: u32,
    /// SASS it must hold.
    expect_sass: &'static [&'static str],
}

const fn variant(
    suffix: &'static str,
    act: &'static str,
    policy: &'static str,
    head_dims: &'static [usize],
    (block_n, stages, wgmma): (u32, u32, u32),
    expect_sass: &'static [&'static str],
) -> FwdVariant {
    FwdVariant {
        suffix,
        act,
        policy,
        head_dims,
        block_n,
        stages,
        wgmma,
        expect_sass,
    }
}

const SOFTMAX: &str = "sinkless::softmax_policy";
const SIGMOID: &str = "sinkless::sigmoid_policy<false>";
const RCP1: &str = "sinkless::sigmoid_policy<false, 1>";
const RCP2: &str = "sinkless::sigmoid_policy<false, 2>";
const RCP4: &str = "sinkless::sigmoid_policy<false, 4>";
const MMA: &[&str] = &["HMMA"];
const MMA_RCP: &[&str] = &["HMMA", "MUFU.RCP"];
const WGMMA: &[&str] = &["HGMMA"];
const WGMMA_TMA: &[&str] = &["HGMMA", "UTMALDG"];

/// The head dims of the overlapped wgmma forwards: every bucket of whole 64-column blocks.
const WGMMA_HDS: &[usize] = &[64, 128, 192, 256];

const FWD_VARIANTS: [FwdVariant; 16] = [
    // the sigmoid through rcp.approx in every n-tile, every second, every fourth (default tiles)
    variant("rcp", "sigmoid", RCP1, &[64, 128], (0, 0, 0), MMA_RCP),
    variant("rcp2", "sigmoid", RCP2, &[64, 128], (0, 0, 0), MMA_RCP),
    variant("rcp4", "sigmoid", RCP4, &[64, 128], (0, 0, 0), MMA_RCP),
    // 128 x 32 tiles with double-buffered K/V at hd 128 (the shape before 128 x 64)
    variant("n32", "softmax", SOFTMAX, &[128], (32, 2, 0), MMA),
    variant("n32", "sigmoid", SIGMOID, &[128], (32, 2, 0), MMA),
    // 128 x 64 tiles with double-buffered K/V at hd 128 (96 KiB of shared memory)
    variant("kv2", "softmax", SOFTMAX, &[128], (0, 2, 0), MMA),
    variant("kv2", "sigmoid", SIGMOID, &[128], (0, 2, 0), MMA),
    // 128 x 128 tiles at hd 64 (FA2's forward shape there), double-buffered (80 KiB); the
    // sigmoid spills there (52 bytes)
    variant("n128", "softmax", SOFTMAX, &[64], (128, 2, 0), MMA),
    // both products by wgmma on sm_90a: 128 x 128 tiles, two warpgroups, double-buffered K/V
    variant("wgmma", "softmax", SOFTMAX, &[64, 128], (0, 0, 1), WGMMA),
    variant("wgmma", "sigmoid", SIGMOID, &[64, 128], (0, 0, 1), WGMMA),
    // the same with the activation of one step under the P V product of the step before
    variant("wgmma_ov", "softmax", SOFTMAX, WGMMA_HDS, (0, 0, 2), WGMMA),
    variant("wgmma_ov", "sigmoid", SIGMOID, WGMMA_HDS, (0, 0, 2), WGMMA),
    // and warp-specialised: a producer warpgroup feeding K and V by TMA through mbarriers
    variant(
        "wgmma_ws",
        "softmax",
        SOFTMAX,
        WGMMA_HDS,
        (0, 0, 3),
        WGMMA_TMA,
    ),
    variant(
        "wgmma_ws",
        "sigmoid",
        SIGMOID,
        WGMMA_HDS,
        (0, 0, 3),
        WGMMA_TMA,
    ),
    // and the two computing warpgroups taking turns at the tensor core (ping-pong)
    variant(
        "wgmma_pp",
        "softmax",
        SOFTMAX,
        WGMMA_HDS,
        (0, 0, 4),
        WGMMA_TMA,
    ),
    variant(
        "wgmma_pp",
        "sigmoid",
        SIGMOID,
        WGMMA_HDS,
        (0, 0, 4),
        WGMMA_TMA,
    ),
];

/// Head-dimension buckets (src/plan.rs picks the smallest that holds the head dim).
const HEAD_DIMS: [usize; 6] = [32, 64, 96, 128, 192, 256];

/// The conformance kernels: name, body, params type, threads per block, SASS they must hold.
#[allow(clippy::type_complexity)]
const CONFORMANCE: [(&str, &str, &str, u32, &[&str]); 14] = [
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
    (
        "wgmma_f16",
        "conf_wgmma<false>",
        "sinkless_conf_wgmma_params",
        128,
        WGMMA,
    ),
    (
        "wgmma_bf16",
        "conf_wgmma<true>",
        "sinkless_conf_wgmma_params",
        128,
        WGMMA,
    ),
    (
        "tma",
        "conf_tma",
        "sinkless_conf_tma_params",
        128,
        &["UTMALDG"],
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
    ("spin", "conf_spin", "sinkless_conf_spin_params", 32, &[]),
];

/// A forward instantiation: element type `ty`, activation `policy`, head-dim bucket `hd`, tiles
/// from the `fwd_traits` type `traits`.
fn forward(
    name: String,
    ty: &str,
    policy: &str,
    hd: usize,
    traits: String,
    expect_sass: &'static [&'static str],
    tensor_maps: bool,
) -> Instance {
    Instance {
        name,
        family: "attn_fwd.cu",
        body: format!("sinkless::attn_fwd<{ty}, {policy}, {hd}, {traits}>(p)"),
        params: if tensor_maps {
            "sinkless_attn_fwd_tma_params"
        } else {
            "sinkless_attn_fwd_params"
        },
        threads: 0,
        expect_sass,
        traits: Some(traits),
        head_dim: Some(hd),
        variant: false,
    }
}

/// The two backward instantiations (the main pass `bwd` and the deterministic dQ pass `bwd_dq`)
/// of element type `ty`, activation `policy` and head-dim bucket `hd`, named by `name(kind)`;
/// `wgmma`: the kernels' wgmma form (`kWgmma`). `expect_sass` of each, in that order.
fn backward(
    name: impl Fn(&str) -> String,
    ty: &str,
    policy: &str,
    hd: usize,
    wgmma: bool,
    expect_sass: [&'static [&'static str]; 2],
) -> [Instance; 2] {
    let form = if wgmma { ", true" } else { "" };
    [("bwd", expect_sass[0]), ("bwd_dq", expect_sass[1])].map(|(kind, expect_sass)| Instance {
        name: name(kind),
        family: "attn_bwd.cu",
        body: format!("sinkless::attn_{kind}<{ty}, {policy}, {hd}{form}>(p)"),
        params: "sinkless_attn_bwd_params",
        threads: 0,
        expect_sass,
        traits: Some(format!("sinkless::{kind}_traits<{hd}{form}>")),
        head_dim: Some(hd),
        variant: wgmma,
    })
}

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
            head_dim: None,
            variant: false,
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
            head_dim: None,
            variant: false,
        });
    }
    for (act, policy) in ACTIVATIONS {
        for (dt, ty) in DTYPES {
            for hd in HEAD_DIMS {
                v.push(forward(
                    format!("sinkless_attn_fwd_{act}_{dt}_hd{hd}"),
                    ty,
                    policy,
                    hd,
                    format!("sinkless::fwd_traits<{hd}, {policy}>"),
                    MMA,
                    false,
                ));
                v.extend(backward(
                    |kind| format!("sinkless_attn_{kind}_{act}_{dt}_hd{hd}"),
                    ty,
                    policy,
                    hd,
                    false,
                    [MMA; 2],
                ));
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
            head_dim: None,
            variant: false,
        });
    }
    for fv in &FWD_VARIANTS {
        let (act, policy, block_n, stages, wgmma) =
            (fv.act, fv.policy, fv.block_n, fv.stages, fv.wgmma);
        let dtypes = if wgmma > 0 { &DTYPES[..] } else { &DTYPES[1..] };
        for &(dt, ty) in dtypes {
            for &hd in fv.head_dims {
                v.push(Instance {
                    variant: true,
                    ..forward(
                        format!("sinkless_attn_fwd_{act}_{dt}_hd{hd}_{}", fv.suffix),
                        ty,
                        policy,
                        hd,
                        format!(
                            "sinkless::fwd_traits<{hd}, {policy}, {block_n}, {stages}, {wgmma}>"
                        ),
                        fv.expect_sass,
                        wgmma >= 3,
                    )
                });
            }
        }
    }
    // the sigmoid's backward through rcp.approx (KernelVariant::SigmoidRcp), bf16
    let (dt, ty) = DTYPES[1];
    for hd in [64, 128] {
        v.extend(
            backward(
                |kind| format!("sinkless_attn_{kind}_sigmoid_{dt}_hd{hd}_rcp"),
                ty,
                RCP1,
                hd,
                false,
                [MMA_RCP; 2],
            )
            .map(|i| Instance { variant: true, ..i }),
        );
    }
    // the backward by wgmma (KernelVariant::Wgmma), f16 and bf16: the main pass with all five
    // products by wgmma, and the deterministic dQ pass with its three (no mma.sync is left)
    for ((act, policy), (dt, ty)) in [("softmax", SOFTMAX), ("sigmoid", SIGMOID)]
        .into_iter()
        .flat_map(|a| DTYPES.map(|d| (a, d)))
    {
        for hd in [64, 128] {
            v.extend(backward(
                |kind| format!("sinkless_attn_{kind}_{act}_{dt}_hd{hd}_wgmma"),
                ty,
                policy,
                hd,
                true,
                [WGMMA; 2],
            ));
        }
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
            head_dim: None,
            variant: false,
        });
    }
    v
}

/// Which kernels a build compiles: `SINKLESS_HEAD_DIMS` (head-dim buckets, e.g. `64,128`; unset
/// or `all`: every bucket) and `SINKLESS_VARIANTS` (`0`: no kernel variant, only the default
/// kernels; unset or `1`: all). The kernels without a head dim (the row dot, the backward's
/// reductions, the conformance suite) are always built.
pub struct Selection {
    /// The buckets kept, ascending.
    pub head_dims: Vec<usize>,
    /// Whether the variants' kernels are kept.
    pub variants: bool,
}

impl Selection {
    /// The selection the environment asks for, or a message naming the bad value.
    pub fn from_env() -> Result<Selection, String> {
        let head_dims = match std::env::var("SINKLESS_HEAD_DIMS") {
            Err(_) => HEAD_DIMS.to_vec(),
            Ok(v) if v.trim().is_empty() || v.trim() == "all" => HEAD_DIMS.to_vec(),
            Ok(v) => {
                let mut dims = Vec::new();
                for part in v.split([',', ';', ' ']).filter(|p| !p.is_empty()) {
                    match part.parse::<usize>() {
                        Ok(d) if HEAD_DIMS.contains(&d) => dims.push(d),
                        _ => {
                            return Err(format!(
                                "SINKLESS_HEAD_DIMS={v:?}: {part:?} is not a head-dim bucket \
                                 (one of {HEAD_DIMS:?}, or `all`)"
                            ))
                        }
                    }
                }
                dims.sort_unstable();
                dims.dedup();
                dims
            }
        };
        let variants = match std::env::var("SINKLESS_VARIANTS").as_deref() {
            Err(_) | Ok("1") | Ok("") => true,
            Ok("0") => false,
            Ok(v) => return Err(format!("SINKLESS_VARIANTS={v:?}: `0` (none) or `1` (all)")),
        };
        Ok(Selection {
            head_dims,
            variants,
        })
    }

    /// Whether the build compiles `inst`.
    pub fn keeps(&self, inst: &Instance) -> bool {
        let head_dim = match inst.head_dim {
            Some(d) => self.head_dims.contains(&d),
            None => true,
        };
        head_dim && (self.variants || !inst.variant)
    }
}
