//! # sinkless
//!
//! Fused attention kernels for NVIDIA GPUs (sm_80 and newer): flash-style **softmax attention**,
//! with optional learnable per-head sink logits, and normalization-free **sigmoid attention**,
//! each forward and backward, behind one safe API over [`cudarc`].
//!
//! Why both: Gu et al. ("When Attention Sink Emerges in Language Models", ICLR 2025) show that
//! the attention sink comes from softmax's normalisation, and that sigmoid attention without it
//! trains to the same quality with no sink. Comparing the two needs fast kernels for both.
//!
//! ## Layers
//! - [`reference`](mod@crate::reference): the float64 forward and backward of everything, the executable spec.
//! - [`AttentionOptions`], [`Shape`], [`TensorRef`]: what to compute, on which tensors, checked
//!   before any launch; every failure is an [`Error`] variant carrying the offending values.
//! - Backends running the same launch plans: [`CudaBackend`] on a GPU, [`Emulator`] on the CPU
//!   (the kernels' own CUDA source compiled for the host against a SIMT emulator).
//!
//! ## Without a GPU
//! The crate builds and its tests pass with neither nvcc nor a GPU: [`CudaBackend::new`] then
//! returns [`Error::KernelsNotCompiled`], [`Error::DriverMissing`] or [`Error::NoDevice`], never a
//! panic, and the [`Emulator`] runs the kernels on the CPU.

#![warn(missing_docs)]

pub mod attention;
pub mod backend;
pub mod bench;
pub mod check;
pub mod config;
pub mod conformance;
pub mod error;
mod ffi;
mod kernels;
#[doc(hidden)]
pub mod output;
mod plan;
pub mod reference;
pub mod report;
pub mod sink;
pub mod tensor;
mod tma;

pub use attention::{
    backward_workspace_len, BackwardInputs, BackwardOutputs, CpuReference, ForwardInputs,
    ForwardOutputs,
};
pub use backend::cuda::CudaBackend;
pub use backend::emulator::{Emulator, HostBuffer, Target};
pub use config::{
    Activation, AttentionOptions, BlockOrder, DType, Element, KernelVariant, Mask, SigmoidBias,
};
pub use error::{Error, Result, TensorName};
pub use kernels::{built_kernels, BuiltKernels};
pub use tensor::{Seqlens, Shape, Strides, TensorMut, TensorRef};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
