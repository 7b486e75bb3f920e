//! The attention API: inputs and outputs of the forward and backward passes, the checks they go
//! through before any launch, and [`CpuReference`], the float64 reference behind the same API.
//!
//! Every backend takes the same argument structs over its own buffer type (`[T]` slices for
//! [`CpuReference`]); outputs are written into buffers the caller owns, so a test can poison them
//! and a training loop can reuse them.
//!
//! ```
//! use half::bf16;
//! use sinkless::attention::{CpuReference, ForwardInputs, ForwardOutputs};
//! use sinkless::{Activation, AttentionOptions, Mask, Shape, Strides, TensorMut, TensorRef};
//! let (b, s, h, d) = (1, 5, 2, 8);
//! let shape = Shape::dense(b, s, s, h, h, d);
//! let st = Strides::contiguous(s, h, d);
//! let x: Vec<bf16> = (0..b * s * h * d).map(|i| bf16::from_f32((i % 5) as f32 / 5.0)).collect();
//! let (sink, mut o, mut lse) = (vec![0.0f32; h], vec![bf16::NAN; x.len()], vec![f32::NAN; b * h * s]);
//! let opts = AttentionOptions::new(Activation::Softmax { sink: true }).with_mask(Mask::CAUSAL);
//! fn t(data: &[bf16], strides: Strides) -> TensorRef<'_, [bf16]> { TensorRef { data, strides } }
//! CpuReference.forward(
//!     &shape,
//!     &opts,
//!     ForwardInputs { q: t(&x, st), k: t(&x, st), v: t(&x, st), sink: Some(&sink[..]), bias: None },
//!     ForwardOutputs { o: TensorMut { data: &mut o[..], strides: st }, row_stat: Some(&mut lse[..]) },
//! )?;
//! assert!(o.iter().all(|v| v.is_finite()) && lse.iter().all(|v| v.is_finite()));
//! # Ok::<(), sinkless::Error>(())
//! ```

use crate::config::{Activation, AttentionOptions, Element, SigmoidBias};
use crate::error::{Error, Result, TensorName};
use crate::reference::{self, Precision, Problem, RefActivation, RefBias};
use crate::tensor::{
    check_shape, check_tensor, row_stat_len, Dims, Shape, Strides, TensorMut, TensorRef,
};

/// Inputs of the forward pass. `sink` (per query head, f32) is required exactly when the options
/// ask for softmax with sinks; `bias` (per query head, f32) exactly for a per-head sigmoid bias.
#[derive(Debug)]
pub struct ForwardInputs<'a, S: ?Sized, F: ?Sized> {
    /// Queries `[batch, seqlen_q, heads_q, head_dim]` (varlen: `[total_q, heads_q, head_dim]`).
    pub q: TensorRef<'a, S>,
    /// Keys `[batch, seqlen_k, heads_kv, head_dim]`.
    pub k: TensorRef<'a, S>,
    /// Values, shaped like the keys.
    pub v: TensorRef<'a, S>,
    /// Per-head sink logits.
    pub sink: Option<&'a F>,
    /// Per-head sigmoid bias.
    pub bias: Option<&'a F>,
}

/// Outputs of the forward pass. `row_stat` (f32, `[batch, heads_q, seqlen_q]` or
/// `[heads_q, total_q]`) is required for softmax (the log-sum-exp) and normalized sigmoid (the
/// row sum of sigmoids), and must be `None` for plain sigmoid.
#[derive(Debug)]
pub struct ForwardOutputs<'a, S: ?Sized, F: ?Sized> {
    /// Attention output, shaped like the queries.
    pub o: TensorMut<'a, S>,
    /// Per query row: the natural-log log-sum-exp (softmax; `-inf` for a row that sees no key and
    /// has no sink) or the sum of its sigmoids (normalized sigmoid). The backward reads it.
    pub row_stat: Option<&'a mut F>,
}

/// Inputs of the backward pass: the forward's inputs and outputs and the output gradient.
#[derive(Debug)]
pub struct BackwardInputs<'a, S: ?Sized, F: ?Sized> {
    /// Queries.
    pub q: TensorRef<'a, S>,
    /// Keys.
    pub k: TensorRef<'a, S>,
    /// Values.
    pub v: TensorRef<'a, S>,
    /// The forward's output.
    pub o: TensorRef<'a, S>,
    /// Gradient of the output, shaped like the queries.
    pub d_o: TensorRef<'a, S>,
    /// The forward's per-row statistic (softmax, normalized sigmoid).
    pub row_stat: Option<&'a F>,
    /// Per-head sink logits (softmax with sinks only).
    pub sink: Option<&'a F>,
    /// Per-head sigmoid bias (per-head bias only).
    pub bias: Option<&'a F>,
}

/// Outputs of the backward pass. `dsink` and `dbias` (f32, per query head) are required exactly
/// when the matching parameter is.
#[derive(Debug)]
pub struct BackwardOutputs<'a, S: ?Sized, F: ?Sized> {
    /// Gradient of the queries.
    pub dq: TensorMut<'a, S>,
    /// Gradient of the keys (summed over the query heads sharing each key head).
    pub dk: TensorMut<'a, S>,
    /// Gradient of the values.
    pub dv: TensorMut<'a, S>,
    /// Gradient of the sink logits.
    pub dsink: Option<&'a mut F>,
    /// Gradient of the per-head bias.
    pub dbias: Option<&'a mut F>,
}

fn per_head(name: TensorName, len: Option<usize>, required: bool, heads: usize) -> Result<()> {
    match (len, required) {
        (None, true) | (Some(_), false) => Err(Error::PerHeadMismatch {
            tensor: name,
            required,
        }),
        (Some(l), true) if l != heads => Err(Error::WrongLength {
            tensor: name,
            expected: heads,
            got: l,
        }),
        _ => Ok(()),
    }
}

fn check_row_stat(name: TensorName, len: Option<usize>, required: bool, dims: &Dims) -> Result<()> {
    match (len, required) {
        (None, true) | (Some(_), false) => Err(Error::PerHeadMismatch {
            tensor: name,
            required,
        }),
        (Some(l), true) if l < row_stat_len(dims) => Err(Error::BufferTooSmall {
            tensor: name,
            needed: row_stat_len(dims),
            len: l,
        }),
        _ => Ok(()),
    }
}

/// How the checks read element counts: one function per buffer type of a call (elements, element
/// outputs, f32 inputs, f32 outputs), so every backend shares the checks whatever its buffers.
pub(crate) struct Lens<S: ?Sized, O: ?Sized, F: ?Sized, G: ?Sized> {
    pub s: fn(&S) -> usize,
    pub o: fn(&O) -> usize,
    pub f: fn(&F) -> usize,
    pub g: fn(&G) -> usize,
}

/// The lengths of host slices.
pub(crate) fn slice_lens<T>() -> Lens<[T], [T], [f32], [f32]> {
    Lens {
        s: <[T]>::len,
        o: <[T]>::len,
        f: <[f32]>::len,
        g: <[f32]>::len,
    }
}

/// Checks one tensor against the query side (`key_side` false) or the key side of `dims`.
fn check_side(
    dims: &Dims,
    name: TensorName,
    strides: Strides,
    len: usize,
    key_side: bool,
    output: bool,
) -> Result<()> {
    let (rows, heads) = if key_side {
        (&dims.k, dims.heads_kv)
    } else {
        (&dims.q, dims.heads_q)
    };
    check_tensor(name, len, strides, dims, rows, heads, output)
}

/// Checks the options, the shape and a forward call's inputs.
pub(crate) fn check_forward_inputs<S: ?Sized, F: ?Sized>(
    shape: &Shape<'_>,
    opts: &AttentionOptions,
    inputs: &ForwardInputs<'_, S, F>,
    len_s: fn(&S) -> usize,
    len_f: fn(&F) -> usize,
) -> Result<Dims> {
    opts.validate()?;
    let dims = check_shape(shape)?;
    let a = opts.activation;
    for (name, t, key_side) in [
        (TensorName::Q, &inputs.q, false),
        (TensorName::K, &inputs.k, true),
        (TensorName::V, &inputs.v, true),
    ] {
        check_side(&dims, name, t.strides, len_s(t.data), key_side, false)?;
    }
    per_head(
        TensorName::Sink,
        inputs.sink.map(len_f),
        a.has_sink(),
        dims.heads_q,
    )?;
    per_head(
        TensorName::Bias,
        inputs.bias.map(len_f),
        a.has_bias_tensor(),
        dims.heads_q,
    )?;
    Ok(dims)
}

/// Checks everything about a forward call that does not need the buffers' addresses.
pub(crate) fn check_forward<S: ?Sized, O: ?Sized, F: ?Sized, G: ?Sized>(
    shape: &Shape<'_>,
    opts: &AttentionOptions,
    inputs: &ForwardInputs<'_, S, F>,
    outputs: &ForwardOutputs<'_, O, G>,
    len: Lens<S, O, F, G>,
) -> Result<Dims> {
    let dims = check_forward_inputs(shape, opts, inputs, len.s, len.f)?;
    let a = opts.activation;
    check_side(
        &dims,
        TensorName::O,
        outputs.o.strides,
        (len.o)(&*outputs.o.data),
        false,
        true,
    )?;
    let stat = outputs.row_stat.as_deref().map(len.g);
    check_row_stat(TensorName::RowStat, stat, a.has_row_stat(), &dims)?;
    Ok(dims)
}

/// Checks everything about a backward call that does not need the buffers' addresses.
pub(crate) fn check_backward<S: ?Sized, O: ?Sized, F: ?Sized, G: ?Sized>(
    shape: &Shape<'_>,
    opts: &AttentionOptions,
    inputs: &BackwardInputs<'_, S, F>,
    outputs: &BackwardOutputs<'_, O, G>,
    len: Lens<S, O, F, G>,
) -> Result<Dims> {
    fn t<'a, S: ?Sized>(t: &TensorRef<'a, S>) -> TensorRef<'a, S> {
        TensorRef {
            data: t.data,
            strides: t.strides,
        }
    }
    let forward = ForwardInputs {
        q: t(&inputs.q),
        k: t(&inputs.k),
        v: t(&inputs.v),
        sink: inputs.sink,
        bias: inputs.bias,
    };
    let dims = check_forward_inputs(shape, opts, &forward, len.s, len.f)?;
    let a = opts.activation;
    for (name, t) in [(TensorName::O, &inputs.o), (TensorName::DO, &inputs.d_o)] {
        check_side(&dims, name, t.strides, (len.s)(t.data), false, false)?;
    }
    for (name, t, key_side) in [
        (TensorName::DQ, &outputs.dq, false),
        (TensorName::DK, &outputs.dk, true),
        (TensorName::DV, &outputs.dv, true),
    ] {
        check_side(&dims, name, t.strides, (len.o)(&*t.data), key_side, true)?;
    }
    check_row_stat(
        TensorName::RowStat,
        inputs.row_stat.map(len.f),
        a.has_row_stat(),
        &dims,
    )?;
    for (name, grad, required) in [
        (TensorName::DSink, &outputs.dsink, a.has_sink()),
        (TensorName::DBias, &outputs.dbias, a.has_bias_tensor()),
    ] {
        per_head(name, grad.as_deref().map(len.g), required, dims.heads_q)?;
    }
    Ok(dims)
}

/// How many f32 elements the workspace of a backward call with this shape and these options
/// needs: the length to allocate for
/// [`CudaBackend::backward_with_workspace`](crate::CudaBackend::backward_with_workspace) or
/// [`Emulator::backward_with_workspace`](crate::Emulator::backward_with_workspace). It depends
/// only on the arguments (not on the device), so a training loop can size one buffer for its
/// largest call and reuse it. The buffer holds the dQ accumulator (atomic mode),
/// `D = rowsum(dO ∘ O)` (softmax, normalized sigmoid) and the per-block bias-gradient partials
/// (sigmoids); its contents on entry do not matter and are scratch on return.
///
/// ```
/// use half::bf16;
/// use sinkless::{backward_workspace_len, Activation, AttentionOptions, Shape};
/// let shape = Shape::dense(2, 1000, 1000, 8, 8, 128);
/// let atomic = AttentionOptions::new(Activation::Softmax { sink: false });
/// let n = backward_workspace_len::<bf16>(&shape, &atomic)?;
/// // The f32 dQ accumulator dominates: 2 * 1000 * 8 * 128 elements.
/// assert!(n >= 2 * 1000 * 8 * 128);
/// let det = backward_workspace_len::<bf16>(&shape, &atomic.with_deterministic(true))?;
/// assert!(det < n);
/// # Ok::<(), sinkless::Error>(())
/// ```
///
/// # Errors
/// The option and shape errors of [`Error`] that a backward call with these arguments reports;
/// [`Error::Unsupported`] for a kernel variant not compiled for this case.
pub fn backward_workspace_len<T: Element>(
    shape: &Shape<'_>,
    opts: &AttentionOptions,
) -> Result<usize> {
    opts.validate()?;
    let dims = check_shape(shape)?;
    Ok(crate::plan::backward_workspace(T::DTYPE, opts, &dims)?
        .layout()
        .len)
}

/// The workspace layout of a checked backward call, after checking that `len` elements hold it.
pub(crate) fn workspace_layout<T: Element>(
    opts: &AttentionOptions,
    dims: &Dims,
    len: usize,
) -> Result<crate::plan::WorkspaceLayout> {
    let layout = crate::plan::backward_workspace(T::DTYPE, opts, dims)?.layout();
    if len < layout.len {
        return Err(Error::WorkspaceTooSmall {
            needed: layout.len,
            len,
        });
    }
    Ok(layout)
}

/// Element offset of (token row, head) in a tensor: dense token `b * seqlen + i`, varlen token `t`.
fn offset(dims: &Dims, dense_seqlen: usize, strides: Strides, token: usize, head: usize) -> usize {
    if dims.varlen() {
        token * strides.row + head * strides.head
    } else {
        (token / dense_seqlen) * strides.batch
            + (token % dense_seqlen) * strides.row
            + head * strides.head
    }
}

/// Copies a strided tensor into the reference's contiguous `[tokens, heads, d]` f64 layout.
fn gather<T: Element>(
    dims: &Dims,
    rows: &crate::tensor::Rows,
    heads: usize,
    t: &TensorRef<'_, [T]>,
) -> Vec<f64> {
    let d = dims.head_dim;
    let mut out = Vec::with_capacity(rows.total * heads * d);
    for token in 0..rows.total {
        for h in 0..heads {
            let at = offset(dims, rows.max_len, t.strides, token, h);
            out.extend(t.data[at..at + d].iter().map(|x| x.to_f64()));
        }
    }
    out
}

/// Writes the reference's contiguous result into a strided tensor, rounding to `T`.
fn scatter<T: Element>(
    dims: &Dims,
    rows: &crate::tensor::Rows,
    heads: usize,
    src: &[f64],
    t: &mut TensorMut<'_, [T]>,
) {
    let d = dims.head_dim;
    for token in 0..rows.total {
        for h in 0..heads {
            let at = offset(dims, rows.max_len, t.strides, token, h);
            let from = (token * heads + h) * d;
            for (dst, &x) in t.data[at..at + d].iter_mut().zip(&src[from..from + d]) {
                *dst = T::from_f64(x);
            }
        }
    }
}

/// The float64 reference behind the attention API: host slices in, outputs rounded to the
/// element type (statistics and parameter gradients in f32). The executable spec that the
/// GPU and emulator backends are tested against, usable directly for numerical-equivalence work.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuReference;

impl CpuReference {
    pub(crate) fn problem<'a>(
        dims: &Dims,
        opts: &AttentionOptions,
        qkv: (&'a [f64], &'a [f64], &'a [f64]),
        sink: &'a Option<Vec<f64>>,
        bias: &'a Option<Vec<f64>>,
    ) -> Problem<'a> {
        let shape = reference::HeadShape {
            heads_q: dims.heads_q,
            heads_kv: dims.heads_kv,
            head_dim: dims.head_dim,
        };
        let base = match (&dims.q.cu, &dims.k.cu) {
            (Some(cq), Some(ck)) => {
                let cq: Vec<usize> = cq.iter().map(|&c| c as usize).collect();
                let ck: Vec<usize> = ck.iter().map(|&c| c as usize).collect();
                Problem::varlen(&cq, &ck, shape, qkv.0, qkv.1, qkv.2)
            }
            _ => Problem::dense(
                dims.batch,
                dims.q.max_len,
                dims.k.max_len,
                shape,
                qkv.0,
                qkv.1,
                qkv.2,
            ),
        };
        let ref_bias = |b: SigmoidBias| match b {
            SigmoidBias::Constant(c) => RefBias::Constant(c as f64),
            SigmoidBias::PerHead => RefBias::PerHead(bias.as_deref().unwrap_or(&[])),
            SigmoidBias::NegLogSeqlenK => RefBias::NegLogSeqlenK,
        };
        let activation = match opts.activation {
            Activation::Softmax { .. } => RefActivation::Softmax {
                sink: sink.as_deref(),
            },
            Activation::Sigmoid { bias } => RefActivation::Sigmoid {
                bias: ref_bias(bias),
                normalized: false,
            },
            Activation::NormalizedSigmoid { bias } => RefActivation::Sigmoid {
                bias: ref_bias(bias),
                normalized: true,
            },
        };
        Problem {
            scale: opts.resolved_scale(dims.head_dim) as f64,
            window: (opts.mask.left, opts.mask.right),
            activation,
            ..base
        }
    }

    /// The forward pass in float64; `o` rounded to `T`, `lse` in f32.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`], before anything is written.
    pub fn forward<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, [T], [f32]>,
        outputs: ForwardOutputs<'_, [T], [f32]>,
    ) -> Result<()> {
        let dims = check_forward(shape, opts, &inputs, &outputs, slice_lens::<T>())?;
        let ForwardOutputs { mut o, row_stat } = outputs;
        let q = gather(&dims, &dims.q, dims.heads_q, &inputs.q);
        let k = gather(&dims, &dims.k, dims.heads_kv, &inputs.k);
        let v = gather(&dims, &dims.k, dims.heads_kv, &inputs.v);
        let widen =
            |x: Option<&[f32]>| x.map(|s| s.iter().map(|&v| v as f64).collect::<Vec<f64>>());
        let (sink, bias) = (widen(inputs.sink), widen(inputs.bias));
        let p = Self::problem(&dims, opts, (&q, &k, &v), &sink, &bias);
        let f = reference::forward(&p, Precision::F64);
        scatter(&dims, &dims.q, dims.heads_q, &f.o, &mut o);
        let stat = match opts.activation {
            Activation::NormalizedSigmoid { .. } => Some(reference::sigmoid_row_sums(&p)),
            _ => f.lse,
        };
        if let (Some(dst), Some(src)) = (row_stat, stat) {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s as f32;
            }
        }
        Ok(())
    }

    /// The seed paper's sink score of every key of every query head (see [`sink`](crate::sink)),
    /// in float64 from the full attention maps ([`reference::attention_probs`]): the mean weight
    /// each key receives from the queries that see it, of the row-normalised map for plain
    /// sigmoid. Laid out `[batch, heads_q, seqlen_k]`, or `[heads_q, total_k]` under varlen; a
    /// key no query sees scores 0.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`] about the inputs.
    pub fn sink_scores<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, [T], [f32]>,
    ) -> Result<Vec<f32>> {
        let dims = check_forward_inputs(shape, opts, &inputs, <[T]>::len, <[f32]>::len)?;
        let q = gather(&dims, &dims.q, dims.heads_q, &inputs.q);
        let k = gather(&dims, &dims.k, dims.heads_kv, &inputs.k);
        let v = gather(&dims, &dims.k, dims.heads_kv, &inputs.v);
        let widen =
            |x: Option<&[f32]>| x.map(|s| s.iter().map(|&v| v as f64).collect::<Vec<f64>>());
        let (sink, bias) = (widen(inputs.sink), widen(inputs.bias));
        let p = Self::problem(&dims, opts, (&q, &k, &v), &sink, &bias);
        let normalize = matches!(opts.activation, Activation::Sigmoid { .. });
        let mut out = vec![f32::NAN; crate::sink::scores_len(&dims)]; // every slot is written below
        for (seq, s) in p.seqs.iter().enumerate() {
            for h in 0..dims.heads_q {
                let map = reference::attention_probs(&p, seq, h, Precision::F64);
                let mut sums = vec![0f64; s.k_len];
                for row in map.chunks(s.k_len.max(1)).take(s.q_len) {
                    let total: f64 = if normalize { row.iter().sum() } else { 1.0 };
                    if total == 0.0 {
                        continue;
                    }
                    for (sum, w) in sums.iter_mut().zip(row) {
                        *sum += w / total;
                    }
                }
                for (key, sum) in sums.into_iter().enumerate() {
                    let n = crate::sink::visible_queries(opts.mask, s.q_len, s.k_len, key);
                    let slot = if dims.varlen() {
                        h * dims.k.total + s.k_start + key
                    } else {
                        (seq * dims.heads_q + h) * dims.k.max_len + key
                    };
                    out[slot] = if n == 0 { 0.0 } else { (sum / n as f64) as f32 };
                }
            }
        }
        Ok(out)
    }

    /// The backward pass in float64; gradients rounded to `T`, `dsink`/`dbias` in f32.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`], before anything is written.
    pub fn backward<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, [T], [f32]>,
        outputs: BackwardOutputs<'_, [T], [f32]>,
    ) -> Result<()> {
        let dims = check_backward(shape, opts, &inputs, &outputs, slice_lens::<T>())?;
        let BackwardOutputs {
            mut dq,
            mut dk,
            mut dv,
            dsink,
            dbias,
        } = outputs;
        let q = gather(&dims, &dims.q, dims.heads_q, &inputs.q);
        let k = gather(&dims, &dims.k, dims.heads_kv, &inputs.k);
        let v = gather(&dims, &dims.k, dims.heads_kv, &inputs.v);
        let d_o = gather(&dims, &dims.q, dims.heads_q, &inputs.d_o);
        let widen =
            |x: Option<&[f32]>| x.map(|s| s.iter().map(|&v| v as f64).collect::<Vec<f64>>());
        let (sink, bias) = (widen(inputs.sink), widen(inputs.bias));
        let p = Self::problem(&dims, opts, (&q, &k, &v), &sink, &bias);
        let g = reference::backward(&p, &d_o, Precision::F64);
        scatter(&dims, &dims.q, dims.heads_q, &g.dq, &mut dq);
        scatter(&dims, &dims.k, dims.heads_kv, &g.dk, &mut dk);
        scatter(&dims, &dims.k, dims.heads_kv, &g.dv, &mut dv);
        for (dst, src) in [(dsink, g.dsink), (dbias, g.dbias)] {
            if let (Some(dst), Some(src)) = (dst, src) {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s as f32;
                }
            }
        }
        Ok(())
    }
}
