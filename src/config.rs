//! What to compute: element types and the one options type.
//!
//! ```
//! use sinkless::{Activation, AttentionOptions, Mask, SigmoidBias};
//! // Causal softmax attention with learnable per-head sink logits.
//! let softmax = AttentionOptions::new(Activation::Softmax { sink: true }).with_mask(Mask::CAUSAL);
//! // FlashSigmoid's recommended training setup: bias -ln(seqlen_k), sliding window of 256.
//! let sigmoid = AttentionOptions::new(Activation::Sigmoid { bias: SigmoidBias::NegLogSeqlenK })
//!     .with_mask(Mask::sliding_window(256));
//! assert_eq!(sigmoid.resolved_scale(64), 0.125);
//! # let _ = softmax;
//! ```

use crate::error::{Error, Result};

/// Element types the kernels read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl DType {
    /// Short name used in kernel names (`f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

/// A 16-bit floating-point element type: `half::f16` or `half::bf16`.
pub trait Element:
    Copy + Default + Send + Sync + std::fmt::Debug + 'static + private::Sealed
{
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Widens to f64 exactly.
    fn to_f64(self) -> f64;
    /// Rounds to nearest even.
    fn from_f64(x: f64) -> Self;
    /// Rounds an f64 to this type and back, for the input-precision reference.
    fn round_f64(x: f64) -> f64 {
        Self::from_f64(x).to_f64()
    }
}

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    fn from_f64(x: f64) -> Self {
        half::f16::from_f64(x)
    }
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        half::bf16::to_f64(self)
    }
    fn from_f64(x: f64) -> Self {
        half::bf16::from_f64(x)
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// The sigmoid bias `b` in `sigmoid(s + b)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SigmoidBias {
    /// One value for every head.
    Constant(f32),
    /// One learnable value per query head, passed as a tensor; the backward returns its gradient.
    PerHead,
    /// `-ln(seqlen_k)` of each sequence (FlashSigmoid's recommendation for training).
    NegLogSeqlenK,
}

/// The score activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `softmax(s)` over the visible keys; with `sink`, one learnable logit per query head joins
    /// the normalisation (`exp(sink[h])` added to the denominator, no value vector).
    Softmax {
        /// Whether per-head sink logits are passed (and their gradient returned).
        sink: bool,
    },
    /// `sigmoid(s + b)` without normalisation.
    Sigmoid {
        /// The bias.
        bias: SigmoidBias,
    },
    /// `sigmoid(s + b) / sum sigmoid(s + b)`: the research variant that brings the sink back.
    NormalizedSigmoid {
        /// The bias.
        bias: SigmoidBias,
    },
}

impl Activation {
    /// Whether a per-head sink tensor is passed.
    pub fn has_sink(self) -> bool {
        matches!(self, Activation::Softmax { sink: true })
    }

    /// Whether a per-head bias tensor is passed.
    pub fn has_bias_tensor(self) -> bool {
        matches!(
            self,
            Activation::Sigmoid {
                bias: SigmoidBias::PerHead
            } | Activation::NormalizedSigmoid {
                bias: SigmoidBias::PerHead
            }
        )
    }

    /// Whether the forward writes a per-row statistic that the backward reads: the log-sum-exp
    /// for softmax, the row sum of sigmoids for normalized sigmoid.
    pub fn has_row_stat(self) -> bool {
        matches!(
            self,
            Activation::Softmax { .. } | Activation::NormalizedSigmoid { .. }
        )
    }
}

/// Which keys each query sees: `i + sk - sq - left <= j <= i + sk - sq + right`, aligned to the
/// bottom-right corner per sequence; `None` is unbounded on that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mask {
    /// Keys visible before the diagonal; `None` = all.
    pub left: Option<usize>,
    /// Keys visible after the diagonal; `None` = all.
    pub right: Option<usize>,
}

impl Mask {
    /// Every key visible.
    pub const NONE: Mask = Mask {
        left: None,
        right: None,
    };
    /// Causal, bottom-right aligned.
    pub const CAUSAL: Mask = Mask {
        left: None,
        right: Some(0),
    };

    /// Causal sliding window: each query sees itself and `left` keys before it.
    pub fn sliding_window(left: usize) -> Mask {
        Mask {
            left: Some(left),
            right: Some(0),
        }
    }

    /// A general window.
    pub fn window(left: Option<usize>, right: Option<usize>) -> Mask {
        Mask { left, right }
    }
}

/// An alternative kernel, compiled beside the default one so that the benchmark can time the two
/// on the same GPU. Each exists for bf16 (the wgmma ones, the candidates for sm_90's default,
/// for f16 too) at the head-dim buckets and activations listed;
/// elsewhere the forward (and, for a variant with a backward of its own, the backward) returns
/// [`Error::Unsupported`] naming it. Every variant computes the same function to the same
/// tolerance (the emulator tests check each one); only speed differs. Variants without a
/// backward of their own leave the backward to the default kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelVariant {
    /// The tuned kernels.
    #[default]
    Default,
    /// Sigmoid by `rcp.approx` (two MUFU and two FP32 operations per score) instead of a
    /// polynomial (one MUFU and eight FP32, seven in the bf16 forward), forward and backward:
    /// sigmoid, head dims 64 and 128.
    SigmoidRcp,
    /// The `rcp.approx` sigmoid in every second score n-tile, the polynomial one elsewhere:
    /// sigmoid, head dims 64 and 128.
    SigmoidRcpHalf,
    /// The `rcp.approx` sigmoid in every fourth score n-tile: sigmoid, head dims 64 and 128.
    SigmoidRcpQuarter,
    /// 128 x 32 tiles with double-buffered K and V instead of 128 x 64 single-buffered: softmax
    /// and sigmoid, head dim 128.
    KeyTile32,
    /// 128 x 64 tiles with double-buffered K and V: softmax and sigmoid, head dim 128.
    DoubleBufferedKv,
    /// 128 x 128 tiles (double-buffered) instead of 128 x 64: softmax, head dim 64 (the
    /// sigmoid spills registers there).
    KeyTile128,
    /// Hopper's `wgmma.mma_async` instead of `mma.sync`: the forward's two products, 128 x 128
    /// tiles over two warpgroups; in the backward's main pass the four products of the key
    /// warps (`S^T`, `dV`, `dP^T`, `dK`), each warpgroup over 64 keys, and the atomic mode's
    /// `dQ` product too (each warpgroup half of dQ's columns at head dim 128, its own keys at
    /// 64, the two partial sums meeting in shared memory); the deterministic mode's dQ pass
    /// with its three products by wgmma, 128 queries over two warpgroups. Softmax and
    /// sigmoid, f16 and bf16, head dims 64 and 128, on sm_90 GPUs only (elsewhere the CUDA
    /// backend returns [`Error::Unsupported`]; the emulator runs it everywhere).
    Wgmma,
    /// [`KernelVariant::Wgmma`] with FlashAttention-3's intra-warpgroup overlap: each step
    /// issues the next key tile's scores and the previous tile's `P V` together and applies the
    /// activation while the second product runs. Forward only (the backward is the default's),
    /// for the same activations, element types and GPUs as `Wgmma`, and head dims 64, 128, 192
    /// and 256 (64-key tiles at the last two).
    WgmmaOverlap,
    /// [`KernelVariant::WgmmaOverlap`] with FlashAttention-3's warp specialisation: a third
    /// warpgroup loads Q, K and V with the tensor memory accelerator (`cp.async.bulk.tensor`)
    /// into a two-stage ring guarded by mbarriers, and the two computing warpgroups never wait
    /// at a block barrier; `setmaxnreg` moves registers from the loading warpgroup to them.
    /// Forward only, for the same activations, element types, head dims and GPUs as
    /// `WgmmaOverlap`.
    WgmmaWarpSpecialized,
    /// [`KernelVariant::WgmmaWarpSpecialized`] with FlashAttention-3's ping-pong: the two
    /// computing warpgroups take turns issuing their products (named barriers), so one's
    /// activation runs under the other's products. Forward only, for the same activations,
    /// element types, head dims and GPUs as `WgmmaOverlap`.
    WgmmaPingPong,
}

impl KernelVariant {
    /// Every variant but the default.
    pub const ALTERNATIVES: [KernelVariant; 10] = [
        KernelVariant::SigmoidRcp,
        KernelVariant::SigmoidRcpHalf,
        KernelVariant::SigmoidRcpQuarter,
        KernelVariant::KeyTile32,
        KernelVariant::DoubleBufferedKv,
        KernelVariant::KeyTile128,
        KernelVariant::Wgmma,
        KernelVariant::WgmmaOverlap,
        KernelVariant::WgmmaWarpSpecialized,
        KernelVariant::WgmmaPingPong,
    ];

    /// The short name: the kernel name's suffix, and the label in benchmark results.
    pub fn name(self) -> &'static str {
        match self {
            KernelVariant::Default => "default",
            KernelVariant::SigmoidRcp => "rcp",
            KernelVariant::SigmoidRcpHalf => "rcp2",
            KernelVariant::SigmoidRcpQuarter => "rcp4",
            KernelVariant::KeyTile32 => "n32",
            KernelVariant::DoubleBufferedKv => "kv2",
            KernelVariant::KeyTile128 => "n128",
            KernelVariant::Wgmma => "wgmma",
            KernelVariant::WgmmaOverlap => "wgmma_ov",
            KernelVariant::WgmmaWarpSpecialized => "wgmma_ws",
            KernelVariant::WgmmaPingPong => "wgmma_pp",
        }
    }

    /// The variant called `name` (see [`KernelVariant::name`]).
    pub fn from_name(name: &str) -> Option<KernelVariant> {
        std::iter::once(KernelVariant::Default)
            .chain(KernelVariant::ALTERNATIVES)
            .find(|v| v.name() == name)
    }

    /// Whether the variant's kernels use Hopper's `wgmma`, so run on sm_90 GPUs alone.
    pub fn needs_wgmma(self) -> bool {
        matches!(
            self,
            KernelVariant::Wgmma
                | KernelVariant::WgmmaOverlap
                | KernelVariant::WgmmaWarpSpecialized
                | KernelVariant::WgmmaPingPong
        )
    }

    /// Whether the variant has a backward of its own (else the backward runs the default).
    pub fn has_backward(self) -> bool {
        self.own_backward_pass("bwd")
    }

    /// Whether the variant has a deterministic-mode dQ pass of its own (else that pass runs
    /// the default's after the variant's main pass).
    pub fn has_dq_pass(self) -> bool {
        self.own_backward_pass("bwd_dq")
    }

    /// Whether the variant has its own kernel for the backward pass `kind`: `bwd` (the main
    /// pass) or `bwd_dq` (the deterministic dQ pass); the default's runs where it has not.
    pub(crate) fn own_backward_pass(self, kind: &str) -> bool {
        match self {
            KernelVariant::SigmoidRcp => true,
            KernelVariant::Wgmma => kind == "bwd" || kind == "bwd_dq",
            _ => false,
        }
    }

    /// Whether the variant is compiled for this element type, activation and head dim.
    pub fn exists_for(self, dtype: DType, activation: Activation, head_dim: usize) -> bool {
        crate::plan::forward_kernel(dtype, activation, head_dim, self).is_ok()
    }
}

/// The order in which a launch's thread blocks take their tiles. Only speed differs: every
/// order computes the same bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BlockOrder {
    /// The longest tiles first. A GPU starts thread blocks in about the order of their index,
    /// so under a mask whose tiles' work grows along the grid (a right bound without a left
    /// one: causal; the forward's query blocks, the deterministic dQ pass's query blocks) the
    /// kernels take that axis last to first, and the last blocks to start are the shortest;
    /// under a left bound alone the backward's key blocks run last to first. The sm_80
    /// forward at head dim 128 keeps grid order (it would spill registers).
    #[default]
    LongestFirst,
    /// Block index order whatever the mask: the order before longest-first, kept so that the
    /// benchmark can time the one against the other on the same GPU.
    Grid,
}

impl BlockOrder {
    /// The params' `block_order` (`sinkless_block_order` in `attn_params.h`).
    pub(crate) fn ffi(self) -> i32 {
        let v = match self {
            BlockOrder::LongestFirst => crate::ffi::SINKLESS_LONGEST_FIRST,
            BlockOrder::Grid => crate::ffi::SINKLESS_GRID_ORDER,
        };
        v as i32
    }
}

/// The one options type: activation, mask, scale, determinism, the kernel variant and the
/// block order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOptions {
    /// The activation and its parameters.
    pub activation: Activation,
    /// The mask.
    pub mask: Mask,
    /// Score scale; `None` means `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// Bitwise-identical gradients run to run (no floating-point atomics in the backward).
    pub deterministic: bool,
    /// Which kernels run: [`KernelVariant::Default`] unless timing an alternative.
    pub variant: KernelVariant,
    /// The order of the thread blocks: [`BlockOrder::LongestFirst`] unless timing it.
    pub block_order: BlockOrder,
}

impl AttentionOptions {
    /// Options with no mask, the default scale and the fast (atomic) backward.
    pub fn new(activation: Activation) -> Self {
        AttentionOptions {
            activation,
            mask: Mask::NONE,
            scale: None,
            deterministic: false,
            variant: KernelVariant::Default,
            block_order: BlockOrder::LongestFirst,
        }
    }

    /// Sets the mask.
    pub fn with_mask(mut self, mask: Mask) -> Self {
        self.mask = mask;
        self
    }

    /// Sets a custom score scale.
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Asks for a deterministic backward.
    pub fn with_deterministic(mut self, deterministic: bool) -> Self {
        self.deterministic = deterministic;
        self
    }

    /// Picks a kernel variant.
    pub fn with_variant(mut self, variant: KernelVariant) -> Self {
        self.variant = variant;
        self
    }

    /// Picks the order of the thread blocks.
    pub fn with_block_order(mut self, block_order: BlockOrder) -> Self {
        self.block_order = block_order;
        self
    }

    /// The scale in effect for `head_dim`.
    pub fn resolved_scale(&self, head_dim: usize) -> f32 {
        self.scale
            .unwrap_or_else(|| (1.0 / (head_dim as f64).sqrt()) as f32)
    }

    /// Checks the values that do not depend on shapes.
    ///
    /// # Errors
    /// [`Error::BadOption`] for a scale that is not finite and positive, a constant bias that is
    /// not finite, or a window wider than the kernels' `i32` index.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = self.scale {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::BadOption {
                    option: "scale",
                    value: s.to_string(),
                });
            }
        }
        if let Activation::Sigmoid {
            bias: SigmoidBias::Constant(b),
        }
        | Activation::NormalizedSigmoid {
            bias: SigmoidBias::Constant(b),
        } = self.activation
        {
            if !b.is_finite() {
                return Err(Error::BadOption {
                    option: "bias",
                    value: b.to_string(),
                });
            }
        }
        for (name, w) in [
            ("mask.left", self.mask.left),
            ("mask.right", self.mask.right),
        ] {
            if let Some(w) = w {
                if i32::try_from(w).is_err() {
                    return Err(Error::BadOption {
                        option: name,
                        value: w.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}
