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

/// The one options type: activation, mask, scale and determinism.
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
}

impl AttentionOptions {
    /// Options with no mask, the default scale and the fast (atomic) backward.
    pub fn new(activation: Activation) -> Self {
        AttentionOptions {
            activation,
            mask: Mask::NONE,
            scale: None,
            deterministic: false,
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
