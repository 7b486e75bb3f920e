//! What `sinkless bench` times: the registration lists of attention entry points, the buffers
//! they run on, and the runners that turn them into [`Record`]s.
//!
//! # Registering an entry point
//!
//! Adding a kernel to the benchmark is one row in [`cuda_entries`] (and, to time it under the
//! emulator in the dry run, one in [`host_entries`]): the activation, the pass, and a plain
//! function that queues one call on the backend's stream. The forward of each activation is
//! registered as
//!
//! ```ignore
//! CudaEntry {
//!     activation: BenchActivation::Softmax,
//!     pass: Pass::Forward,
//!     setup: None,
//!     run: cuda_forward,
//! }
//! // where
//! fn cuda_forward(gpu: &CudaBackend, p: &AttnProblem, b: &mut DeviceAttn) -> Result<()> {
//!     let (inputs, outputs) = b.forward_args::<CudaSlice<bf16>, CudaSlice<f32>>(p);
//!     gpu.forward(&p.shape(), &p.opts, inputs, outputs)
//! }
//! ```
//!
//! A backward entry sets `setup` to the forward, so that `o` and the row statistic it reads are
//! real (setup runs once per shape, untimed). Errors are recorded, not fatal:
//! [`Error::Unsupported`] and the unsupported head-dim and dtype
//! errors become "unsupported" cells of the table, anything else "failed".

use super::timer::{time_wall, CudaTimer, Timing};
use super::{AttnResult, AttnShape, BenchError, Pass, Record, Stats, Status, Throughput};
use crate::attention::{BackwardInputs, BackwardOutputs, ForwardInputs, ForwardOutputs};
use crate::check::Rng;
use crate::config::{
    Activation, AttentionOptions, BlockOrder, DType, KernelVariant, Mask, SigmoidBias,
};
use crate::tensor::{Shape, Strides, TensorMut, TensorRef};
use crate::{backward_workspace_len, CpuReference, CudaBackend, Emulator, Error, HostBuffer};
use cudarc::driver::CudaSlice;
use half::bf16;

/// The two activations the benchmark compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BenchActivation {
    /// Softmax with per-head sink logits: the crate's softmax path. The sink adds one term to
    /// each row's normaliser, so it is timed against FlashAttention without one.
    Softmax,
    /// Sigmoid with the `-ln(seqlen_k)` bias, no normalisation (FlashSigmoid's recipe); the
    /// eager PyTorch baseline computes the same function.
    Sigmoid,
}

impl BenchActivation {
    /// `"softmax"` or `"sigmoid"`, as in the records.
    pub fn name(self) -> &'static str {
        match self {
            BenchActivation::Softmax => "softmax",
            BenchActivation::Sigmoid => "sigmoid",
        }
    }

    /// The options of one benchmark problem.
    pub fn options(self, causal: bool) -> AttentionOptions {
        let activation = match self {
            BenchActivation::Softmax => Activation::Softmax { sink: true },
            BenchActivation::Sigmoid => Activation::Sigmoid {
                bias: SigmoidBias::NegLogSeqlenK,
            },
        };
        let mask = if causal { Mask::CAUSAL } else { Mask::NONE };
        AttentionOptions::new(activation).with_mask(mask)
    }
}

/// One benchmark problem: a shape and the options it runs with.
#[derive(Clone, Copy, Debug)]
pub struct AttnProblem {
    /// The shape.
    pub shape: AttnShape,
    /// Activation and mask.
    pub opts: AttentionOptions,
}

impl AttnProblem {
    /// The problem of `activation` on `shape`.
    pub fn new(shape: AttnShape, activation: BenchActivation) -> AttnProblem {
        AttnProblem {
            shape,
            opts: activation.options(shape.causal),
        }
    }

    /// The shape in the crate's API terms.
    pub fn shape(&self) -> Shape<'static> {
        let s = &self.shape;
        Shape::dense(s.batch, s.seqlen, s.seqlen, s.heads, s.heads, s.head_dim)
    }

    /// Strides of every (contiguous) tensor.
    pub fn strides(&self) -> Strides {
        Strides::contiguous(self.shape.seqlen, self.shape.heads, self.shape.head_dim)
    }
}

/// Borrowing a buffer as the storage type an API takes: a device slice as itself, an emulator
/// buffer as a slice.
pub trait Storage<S: ?Sized> {
    /// Shared access.
    fn storage(&self) -> &S;
    /// Unique access.
    fn storage_mut(&mut self) -> &mut S;
}

impl<T> Storage<CudaSlice<T>> for CudaSlice<T> {
    fn storage(&self) -> &CudaSlice<T> {
        self
    }
    fn storage_mut(&mut self) -> &mut CudaSlice<T> {
        self
    }
}

impl<T> Storage<HostBuffer<T>> for HostBuffer<T> {
    fn storage(&self) -> &HostBuffer<T> {
        self
    }
    fn storage_mut(&mut self) -> &mut HostBuffer<T> {
        self
    }
}

impl<T> Storage<[T]> for HostBuffer<T> {
    fn storage(&self) -> &[T] {
        self
    }
    fn storage_mut(&mut self) -> &mut [T] {
        self
    }
}

fn view<S: ?Sized, B: Storage<S>>(b: &B, strides: Strides) -> TensorRef<'_, S> {
    TensorRef {
        data: b.storage(),
        strides,
    }
}

fn view_mut<S: ?Sized, B: Storage<S>>(b: &mut B, strides: Strides) -> TensorMut<'_, S> {
    TensorMut {
        data: b.storage_mut(),
        strides,
    }
}

/// Every tensor of a forward and a backward call, contiguous, inputs random.
///
/// `B` holds bf16 elements, `F` f32 ones: [`CudaSlice`]s on a GPU ([`DeviceAttn`]), emulator
/// [`HostBuffer`]s on the CPU ([`HostAttn`]).
pub struct AttnBuffers<B, F> {
    /// Queries.
    pub q: B,
    /// Keys.
    pub k: B,
    /// Values.
    pub v: B,
    /// Output (the backward's input).
    pub o: B,
    /// Output gradient.
    pub d_o: B,
    /// Query gradient.
    pub dq: B,
    /// Key gradient.
    pub dk: B,
    /// Value gradient.
    pub dv: B,
    /// Per-row statistic, `[batch, heads, seqlen]`.
    pub row_stat: F,
    /// Per-head sink logits.
    pub sink: F,
    /// Per-head sigmoid bias.
    pub bias: F,
    /// Sink gradient.
    pub dsink: F,
    /// Bias gradient.
    pub dbias: F,
    /// The backward's workspace, grown to what the largest call so far needed.
    pub workspace: F,
}

/// Buffers on a GPU.
pub type DeviceAttn = AttnBuffers<CudaSlice<bf16>, CudaSlice<f32>>;
/// Buffers for the emulator and the float64 reference.
pub type HostAttn = AttnBuffers<HostBuffer<bf16>, HostBuffer<f32>>;

impl<B, F> AttnBuffers<B, F> {
    /// The forward's arguments for problem `p`: the per-head and per-row tensors are passed
    /// exactly when `p`'s activation asks for them.
    pub fn forward_args<S: ?Sized, G: ?Sized>(
        &mut self,
        p: &AttnProblem,
    ) -> (ForwardInputs<'_, S, G>, ForwardOutputs<'_, S, G>)
    where
        B: Storage<S>,
        F: Storage<G>,
    {
        let st = p.strides();
        let a = p.opts.activation;
        let t = |b| view(b, st);
        (
            ForwardInputs {
                q: t(&self.q),
                k: t(&self.k),
                v: t(&self.v),
                sink: a.has_sink().then(|| self.sink.storage()),
                bias: a.has_bias_tensor().then(|| self.bias.storage()),
            },
            ForwardOutputs {
                o: TensorMut {
                    data: self.o.storage_mut(),
                    strides: st,
                },
                row_stat: a.has_row_stat().then(|| self.row_stat.storage_mut()),
            },
        )
    }

    /// The backward's arguments for problem `p`, and the workspace.
    pub fn backward_args<S: ?Sized, G: ?Sized>(
        &mut self,
        p: &AttnProblem,
    ) -> (BackwardInputs<'_, S, G>, BackwardOutputs<'_, S, G>, &mut F)
    where
        B: Storage<S>,
        F: Storage<G>,
    {
        let st = p.strides();
        let a = p.opts.activation;
        let t = |b| view(b, st);
        let m = |b| view_mut(b, st);
        (
            BackwardInputs {
                q: t(&self.q),
                k: t(&self.k),
                v: t(&self.v),
                o: t(&self.o),
                d_o: t(&self.d_o),
                row_stat: a.has_row_stat().then(|| self.row_stat.storage()),
                sink: a.has_sink().then(|| self.sink.storage()),
                bias: a.has_bias_tensor().then(|| self.bias.storage()),
            },
            BackwardOutputs {
                dq: m(&mut self.dq),
                dk: m(&mut self.dk),
                dv: m(&mut self.dv),
                dsink: a.has_sink().then(|| self.dsink.storage_mut()),
                dbias: a.has_bias_tensor().then(|| self.dbias.storage_mut()),
            },
            &mut self.workspace,
        )
    }
}

/// Random bf16 values, shared by every tensor of every shape: q, k, v and dO are windows of it
/// at different offsets. Drawing 32M normals takes about a second; doing it once per tensor and
/// shape would take a minute of the GPU lease.
pub struct RandomPool(Vec<bf16>);

impl RandomPool {
    /// A pool for tensors of up to `max_elements` elements.
    pub fn new(max_elements: usize, seed: u64) -> RandomPool {
        RandomPool(Rng::new(seed).vec(max_elements + max_elements / 2 + 64))
    }

    /// The `i`-th of the tensors (0 to 3) of `n` elements.
    fn window(&self, i: usize, n: usize) -> &[bf16] {
        let shift = (self.0.len() - n) / 4 * i;
        &self.0[shift..shift + n]
    }
}

fn cuda(during: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Cuda {
        during,
        message: format!("{e:?}"),
    }
}

impl DeviceAttn {
    /// Allocates every tensor of `shape` on `gpu`, inputs from `pool`, outputs zeroed, sinks and
    /// biases small.
    ///
    /// # Errors
    /// [`Error::Cuda`] (out of memory, most likely).
    pub fn new(gpu: &CudaBackend, shape: &AttnShape, pool: &RandomPool) -> crate::Result<Self> {
        let s = gpu.stream();
        let n = shape.elements();
        let rows = shape.batch * shape.heads * shape.seqlen;
        let input = |i| {
            s.clone_htod(pool.window(i, n))
                .map_err(cuda("copying inputs"))
        };
        let zeros = || s.alloc_zeros::<bf16>(n).map_err(cuda("allocating outputs"));
        let per_head = || {
            s.clone_htod(&vec![0.25f32; shape.heads])
                .map_err(cuda("copying per-head tensors"))
        };
        Ok(AttnBuffers {
            q: input(0)?,
            k: input(1)?,
            v: input(2)?,
            d_o: input(3)?,
            o: zeros()?,
            dq: zeros()?,
            dk: zeros()?,
            dv: zeros()?,
            row_stat: s
                .alloc_zeros::<f32>(rows)
                .map_err(cuda("allocating the row statistic"))?,
            sink: per_head()?,
            bias: per_head()?,
            dsink: per_head()?,
            dbias: per_head()?,
            workspace: s
                .alloc_zeros::<f32>(1)
                .map_err(cuda("allocating the workspace"))?,
        })
    }
}

impl HostAttn {
    /// Every tensor of `shape` in emulator buffers, inputs from `pool`.
    pub fn new(shape: &AttnShape, pool: &RandomPool) -> Self {
        let n = shape.elements();
        let rows = shape.batch * shape.heads * shape.seqlen;
        let input = |i| HostBuffer::from_slice(pool.window(i, n));
        let zeros = || HostBuffer::filled(n, bf16::ZERO);
        let per_head = || HostBuffer::filled(shape.heads, 0.25f32);
        AttnBuffers {
            q: input(0),
            k: input(1),
            v: input(2),
            d_o: input(3),
            o: zeros(),
            dq: zeros(),
            dk: zeros(),
            dv: zeros(),
            row_stat: HostBuffer::filled(rows, 0.0),
            sink: per_head(),
            bias: per_head(),
            dsink: per_head(),
            dbias: per_head(),
            workspace: HostBuffer::filled(1, f32::NAN),
        }
    }
}

/// Queues one call on the GPU.
pub type CudaRun = fn(&CudaBackend, &AttnProblem, &mut DeviceAttn) -> crate::Result<()>;

/// One GPU entry point to time.
#[derive(Clone, Copy, Debug)]
pub struct CudaEntry {
    /// `None` for the crate's registered entry points (labelled `sinkless`); a kernel variant
    /// (labelled `sinkless/NAME`, [`KernelVariant::Default`] as `sinkless/default`) for the
    /// comparison of forward kernels, which skips the shapes a variant is not compiled for.
    pub variant: Option<KernelVariant>,
    /// The order of the thread blocks; [`BlockOrder::Grid`] adds `+grid` to the label and
    /// runs on the causal shapes alone, where the default order differs from it.
    pub block_order: BlockOrder,
    /// Activation.
    pub activation: BenchActivation,
    /// Pass.
    pub pass: Pass,
    /// Runs once per shape before timing, untimed (a backward entry's forward).
    pub setup: Option<CudaRun>,
    /// The timed call.
    pub run: CudaRun,
}

fn cuda_forward(gpu: &CudaBackend, p: &AttnProblem, b: &mut DeviceAttn) -> crate::Result<()> {
    let (inputs, outputs) = b.forward_args::<CudaSlice<bf16>, CudaSlice<f32>>(p);
    gpu.forward(&p.shape(), &p.opts, inputs, outputs)
}

/// The backward in the buffers' workspace (grown on a warm-up run), so the timed runs hold no
/// allocation, as a training loop that keeps one would.
fn cuda_backward(gpu: &CudaBackend, p: &AttnProblem, b: &mut DeviceAttn) -> crate::Result<()> {
    let need = backward_workspace_len::<bf16>(&p.shape(), &p.opts)?;
    if b.workspace.len() < need {
        b.workspace = gpu
            .stream()
            .alloc_zeros::<f32>(need)
            .map_err(cuda("allocating the workspace"))?;
    }
    let (inputs, outputs, ws) = b.backward_args::<CudaSlice<bf16>, CudaSlice<f32>>(p);
    gpu.backward_with_workspace(&p.shape(), &p.opts, inputs, outputs, ws)
}

/// The GPU entry points `sinkless bench` times, labelled `sinkless` in the results: the
/// forward and the backward (after an untimed forward) of each activation.
pub fn cuda_entries() -> Vec<CudaEntry> {
    let mut v = Vec::new();
    for activation in [BenchActivation::Softmax, BenchActivation::Sigmoid] {
        v.push(CudaEntry {
            variant: None,
            block_order: BlockOrder::LongestFirst,
            activation,
            pass: Pass::Forward,
            setup: None,
            run: cuda_forward,
        });
        v.push(CudaEntry {
            variant: None,
            block_order: BlockOrder::LongestFirst,
            activation,
            pass: Pass::Backward,
            setup: Some(cuda_forward),
            run: cuda_backward,
        });
    }
    v
}

/// The passes whose kernels `sinkless bench --variants` also times in grid order
/// ([`BlockOrder::Grid`], on the causal shapes), beside the same kernels taking the longest
/// tiles first: those that reverse their blocks under a causal mask (the forward, the
/// deterministic dQ pass), of the default kernels and of the candidate for sm_90's default
/// forward.
const GRID_ORDER_TIMED: [(KernelVariant, Pass); 3] = [
    (KernelVariant::Default, Pass::Forward),
    (KernelVariant::Default, Pass::BackwardDeterministic),
    (KernelVariant::WgmmaPingPong, Pass::Forward),
];

/// The variants `sinkless bench --variants` times, with the passes and block orders: the
/// default kernels and every [`KernelVariant`], forward, backward where the variant has its
/// own, and the deterministic backward where it has its own dQ pass, each taking the longest
/// tiles first; then [`GRID_ORDER_TIMED`] in grid order.
fn variant_passes() -> impl Iterator<Item = (KernelVariant, Pass, BlockOrder)> {
    std::iter::once(KernelVariant::Default)
        .chain(KernelVariant::ALTERNATIVES)
        .flat_map(|v| {
            let default = v == KernelVariant::Default;
            let backward = default || v.has_backward();
            let deterministic = default || v.has_dq_pass();
            std::iter::once((v, Pass::Forward))
                .chain(backward.then_some((v, Pass::Backward)))
                .chain(deterministic.then_some((v, Pass::BackwardDeterministic)))
        })
        .map(|(v, pass)| (v, pass, BlockOrder::LongestFirst))
        .chain(
            GRID_ORDER_TIMED
                .into_iter()
                .map(|(v, pass)| (v, pass, BlockOrder::Grid)),
        )
}

/// The comparison of kernel variants (`sinkless bench --variants`): the default kernels and every
/// [`KernelVariant`] of each activation, timed side by side (each only on the shapes it is
/// compiled for).
pub fn cuda_variant_entries() -> Vec<CudaEntry> {
    let mut v = Vec::new();
    for activation in [BenchActivation::Softmax, BenchActivation::Sigmoid] {
        for (variant, pass, block_order) in variant_passes() {
            let backward = pass != Pass::Forward;
            v.push(CudaEntry {
                variant: Some(variant),
                block_order,
                activation,
                pass,
                setup: backward.then_some(cuda_forward as CudaRun),
                run: if backward {
                    cuda_backward
                } else {
                    cuda_forward
                },
            });
        }
    }
    v
}

/// The label of an entry's records: the implementation, `/NAME` for a kernel variant, and
/// `+grid` for [`BlockOrder::Grid`].
fn variant_label(
    implementation: &str,
    variant: Option<KernelVariant>,
    block_order: BlockOrder,
) -> String {
    let mut label = variant.map_or(implementation.into(), |v| {
        format!("{implementation}/{}", v.name())
    });
    if block_order == BlockOrder::Grid {
        label.push_str("+grid");
    }
    label
}

/// The problem an entry with `variant` and `block_order` runs on `shape` for `pass`
/// (deterministic for [`Pass::BackwardDeterministic`]), or `None` where the variant is not
/// compiled or, in grid order, where the shape is not causal (there every order is grid order).
fn variant_problem(
    shape: AttnShape,
    activation: BenchActivation,
    (variant, block_order): (Option<KernelVariant>, BlockOrder),
    pass: Pass,
) -> Option<AttnProblem> {
    if block_order == BlockOrder::Grid && !shape.causal {
        return None;
    }
    let mut p = AttnProblem::new(shape, activation);
    p.opts = p
        .opts
        .with_deterministic(pass == Pass::BackwardDeterministic)
        .with_block_order(block_order);
    if let Some(v) = variant {
        if !v.exists_for(DType::BF16, p.opts.activation, shape.head_dim) {
            return None;
        }
        p.opts = p.opts.with_variant(v);
    }
    Some(p)
}

/// Runs one call on the CPU.
pub type HostRun = fn(&AttnProblem, &mut HostAttn) -> crate::Result<()>;

/// One CPU entry point to time (the dry run).
#[derive(Clone, Copy, Debug)]
pub struct HostEntry {
    /// The implementation's name in the results.
    pub implementation: &'static str,
    /// A kernel variant, as in [`CudaEntry::variant`] (labelled `IMPLEMENTATION/NAME`).
    pub variant: Option<KernelVariant>,
    /// The order of the thread blocks, as in [`CudaEntry::block_order`].
    pub block_order: BlockOrder,
    /// Activation.
    pub activation: BenchActivation,
    /// Pass.
    pub pass: Pass,
    /// Runs once per shape before timing, untimed.
    pub setup: Option<HostRun>,
    /// The timed call.
    pub run: HostRun,
}

fn reference_forward(p: &AttnProblem, b: &mut HostAttn) -> crate::Result<()> {
    let (inputs, outputs) = b.forward_args(p);
    CpuReference.forward(&p.shape(), &p.opts, inputs, outputs)
}

fn reference_backward(p: &AttnProblem, b: &mut HostAttn) -> crate::Result<()> {
    let (inputs, outputs, _) = b.backward_args(p);
    CpuReference.backward(&p.shape(), &p.opts, inputs, outputs)
}

fn emulator_forward(p: &AttnProblem, b: &mut HostAttn) -> crate::Result<()> {
    let (inputs, outputs) = b.forward_args::<HostBuffer<bf16>, HostBuffer<f32>>(p);
    Emulator::new().forward(&p.shape(), &p.opts, inputs, outputs)
}

fn emulator_backward(p: &AttnProblem, b: &mut HostAttn) -> crate::Result<()> {
    let need = backward_workspace_len::<bf16>(&p.shape(), &p.opts)?;
    if b.workspace.len() < need {
        b.workspace = HostBuffer::filled(need, f32::NAN);
    }
    let (inputs, outputs, ws) = b.backward_args::<HostBuffer<bf16>, HostBuffer<f32>>(p);
    Emulator::new().backward_with_workspace(&p.shape(), &p.opts, inputs, outputs, ws)
}

/// The CPU entry points of the dry run: the kernels under the emulator (`emulator`) and the
/// float64 reference (`reference-f64`), forward and backward of each activation, so the dry run
/// goes through the same kernels and fills every row of the table.
pub fn host_entries() -> Vec<HostEntry> {
    let mut v = Vec::new();
    for activation in [BenchActivation::Softmax, BenchActivation::Sigmoid] {
        v.push(HostEntry {
            variant: None,
            block_order: BlockOrder::LongestFirst,
            implementation: "emulator",
            activation,
            pass: Pass::Forward,
            setup: None,
            run: emulator_forward,
        });
        v.push(HostEntry {
            variant: None,
            block_order: BlockOrder::LongestFirst,
            implementation: "emulator",
            activation,
            pass: Pass::Backward,
            setup: Some(emulator_forward),
            run: emulator_backward,
        });
        v.push(HostEntry {
            variant: None,
            block_order: BlockOrder::LongestFirst,
            implementation: "reference-f64",
            activation,
            pass: Pass::Forward,
            setup: None,
            run: reference_forward,
        });
        v.push(HostEntry {
            variant: None,
            block_order: BlockOrder::LongestFirst,
            implementation: "reference-f64",
            activation,
            pass: Pass::Backward,
            setup: Some(reference_forward),
            run: reference_backward,
        });
    }
    v
}

/// The dry run's comparison of kernel variants (`sinkless bench --emulator --variants`): as
/// [`cuda_variant_entries`], under the emulator.
pub fn host_variant_entries() -> Vec<HostEntry> {
    let mut v = Vec::new();
    for activation in [BenchActivation::Softmax, BenchActivation::Sigmoid] {
        for (variant, pass, block_order) in variant_passes() {
            let backward = pass != Pass::Forward;
            v.push(HostEntry {
                implementation: "emulator",
                variant: Some(variant),
                block_order,
                activation,
                pass,
                setup: backward.then_some(emulator_forward as HostRun),
                run: if backward {
                    emulator_backward
                } else {
                    emulator_forward
                },
            });
        }
    }
    v
}

/// How an error shows in the table.
fn status_of(e: &Error) -> Status {
    match e {
        Error::Unsupported { .. }
        | Error::UnsupportedHeadDim { .. }
        | Error::KernelNotBuilt { .. } => Status::Unsupported(e.to_string()),
        _ => Status::Failed(e.to_string()),
    }
}

fn attention_record(
    implementation: &str,
    activation: BenchActivation,
    pass: Pass,
    shape: AttnShape,
    outcome: Result<Stats, Status>,
) -> Record {
    let (stats, status) = match outcome {
        Ok(s) => (Some(s), Status::Ok),
        Err(status) => (None, status),
    };
    Record::Attention(AttnResult {
        implementation: implementation.to_owned(),
        activation: activation.name().to_owned(),
        pass,
        dtype: "bf16".to_owned(),
        shape,
        stats,
        status,
    })
}

/// Times every entry on every shape on the GPU; `each` sees every record as it is made. After
/// a wait that timed out ([`Error::GpuTimeout`], a kernel that hangs: its record says so) nothing
/// more runs, and [`CudaBackend::timed_out`] says why the records stop there.
///
/// # Errors
/// Only a failure to set up the timer; a failing entry becomes a record with its status.
pub fn bench_cuda(
    gpu: &CudaBackend,
    shapes: &[AttnShape],
    entries: &[CudaEntry],
    timing: &Timing,
    flush: bool,
    each: &mut dyn FnMut(&Record),
) -> Result<Vec<Record>, BenchError> {
    let mut timer = CudaTimer::new(gpu, flush)?;
    let mut out = Vec::new();
    if entries.is_empty() {
        return Ok(out);
    }
    let max = shapes.iter().map(AttnShape::elements).max().unwrap_or(0);
    let pool = RandomPool::new(max, 42);
    for shape in shapes {
        // after a timeout the stream is behind hung work, where even a copy may never return
        if gpu.timed_out().is_some() {
            break;
        }
        let mut buffers = DeviceAttn::new(gpu, shape, &pool);
        for e in entries {
            if gpu.timed_out().is_some() {
                break;
            }
            let Some(p) = variant_problem(*shape, e.activation, (e.variant, e.block_order), e.pass)
            else {
                continue;
            };
            let outcome = match buffers.as_mut() {
                Err(err) => Err(status_of(err)),
                Ok(b) => e
                    .setup
                    .map_or(Ok(()), |setup| setup(gpu, &p, b))
                    .map_err(BenchError::Kernel)
                    .and_then(|()| timer.time(timing, &mut || (e.run)(gpu, &p, b)))
                    .map_err(|err| match err {
                        BenchError::Kernel(k) => status_of(&k),
                        other => Status::Failed(other.to_string()),
                    }),
            };
            let r = attention_record(
                &variant_label("sinkless", e.variant, e.block_order),
                e.activation,
                e.pass,
                *shape,
                outcome,
            );
            each(&r);
            out.push(r);
        }
    }
    Ok(out)
}

/// Times every entry on every shape on the CPU; `each` sees every record as it is made.
pub fn bench_host(
    shapes: &[AttnShape],
    entries: &[HostEntry],
    timing: &Timing,
    each: &mut dyn FnMut(&Record),
) -> Vec<Record> {
    let mut out = Vec::new();
    let max = shapes.iter().map(AttnShape::elements).max().unwrap_or(0);
    let pool = RandomPool::new(max, 42);
    for shape in shapes {
        let mut b = HostAttn::new(shape, &pool);
        for e in entries {
            let Some(p) = variant_problem(*shape, e.activation, (e.variant, e.block_order), e.pass)
            else {
                continue;
            };
            let outcome = e
                .setup
                .map_or(Ok(()), |setup| setup(&p, &mut b))
                .and_then(|()| time_wall(timing, &mut || (e.run)(&p, &mut b)))
                .map_err(|err| status_of(&err));
            let label = variant_label(e.implementation, e.variant, e.block_order);
            let r = attention_record(&label, e.activation, e.pass, *shape, outcome);
            each(&r);
            out.push(r);
        }
    }
    out
}

fn throughput(
    name: &str,
    implementation: &str,
    detail: String,
    bytes_or_flops: f64,
    unit: &str,
    outcome: Result<Stats, Status>,
) -> Record {
    let scale = if unit == "TFLOP/s" { 1e12 } else { 1e9 };
    let (stats, value, status) = match outcome {
        Ok(s) => (
            Some(s),
            Some(bytes_or_flops / (s.median_ms * 1e-3) / scale),
            Status::Ok,
        ),
        Err(st) => (None, None, st),
    };
    Record::Throughput(Throughput {
        name: name.to_owned(),
        implementation: implementation.to_owned(),
        detail,
        stats,
        value,
        unit: unit.to_owned(),
        status,
    })
}

/// The row-dot shape of the throughput runs: `tokens` rows of `heads` heads of 128.
fn row_dot_shape(tokens: usize, heads: usize) -> (Shape<'static>, Strides, usize) {
    let d = 128;
    (
        Shape::dense(1, tokens, tokens, heads, heads, d),
        Strides::contiguous(tokens, heads, d),
        tokens * heads * d,
    )
}

/// Bytes a row-dot moves: both bf16 inputs read once, the f32 statistic written once.
fn row_dot_bytes(n: usize, rows: usize) -> f64 {
    (2 * n * 2 + rows * 4) as f64
}

/// The GPU's memory-bound numbers: a 1 GiB device-to-device copy (bytes read plus written, the
/// bandwidth ceiling as this crate's own API sees it) and `row_dot` on 16k tokens × 16 heads ×
/// 128 in bf16 (the softmax backward's pre-pass, a pure streaming kernel).
///
/// # Errors
/// Only a failure to set up the timer; failures of a measurement become records.
pub fn bench_cuda_throughput(
    gpu: &CudaBackend,
    timing: &Timing,
    flush: bool,
) -> Result<Vec<Record>, BenchError> {
    let mut timer = CudaTimer::new(gpu, flush)?;
    let s = gpu.stream();
    let mut out = Vec::new();

    let bytes = 1usize << 30;
    // Random bytes, not zeros: Ampere and Hopper compress zero-filled lines, which would
    // overstate the bandwidth.
    let mut rng = Rng::new(3);
    let noise: Vec<u64> = (0..bytes / 8).map(|_| rng.next_u64()).collect();
    let copy = (|| {
        let src = s.clone_htod(&noise).map_err(cuda("copying"))?;
        let dst = s
            .alloc_zeros::<u64>(bytes / 8)
            .map_err(cuda("allocating"))?;
        Ok::<_, Error>((src, dst))
    })();
    drop(noise);
    let outcome = match copy {
        Err(e) => Err(status_of(&e)),
        Ok((src, mut dst)) => timer
            .time(timing, &mut || {
                s.memcpy_dtod(&src, &mut dst).map_err(cuda("copying"))
            })
            .map_err(|e| Status::Failed(e.to_string())),
    };
    out.push(throughput(
        "copy",
        "cudarc",
        "1 GiB device to device".into(),
        2.0 * bytes as f64,
        "GB/s",
        outcome,
    ));

    if gpu.timed_out().is_some() {
        return Ok(out);
    }
    let (tokens, heads) = (16_384, 16);
    let (shape, st, n) = row_dot_shape(tokens, heads);
    let pool = RandomPool::new(n, 7);
    let buffers = (|| {
        let x = s.clone_htod(pool.window(0, n)).map_err(cuda("copying"))?;
        let y = s.clone_htod(pool.window(1, n)).map_err(cuda("copying"))?;
        let o = s
            .alloc_zeros::<f32>(tokens * heads)
            .map_err(cuda("allocating"))?;
        Ok::<_, Error>((x, y, o))
    })();
    let outcome = match buffers {
        Err(e) => Err(status_of(&e)),
        Ok((x, y, mut o)) => timer
            .time(timing, &mut || {
                gpu.row_dot(
                    &shape,
                    TensorRef {
                        data: &x,
                        strides: st,
                    },
                    TensorRef {
                        data: &y,
                        strides: st,
                    },
                    &mut o,
                )
            })
            .map_err(|e| match e {
                BenchError::Kernel(k) => status_of(&k),
                other => Status::Failed(other.to_string()),
            }),
    };
    out.push(throughput(
        "row_dot",
        "sinkless",
        format!("{tokens} tokens x {heads} heads x 128 bf16"),
        row_dot_bytes(n, tokens * heads),
        "GB/s",
        outcome,
    ));
    Ok(out)
}

/// The emulator's `row_dot` on a tiny shape: proves the throughput path of the dry run.
pub fn bench_emulator_throughput(timing: &Timing) -> Vec<Record> {
    let (tokens, heads) = (64, 2);
    let (shape, st, n) = row_dot_shape(tokens, heads);
    let pool = RandomPool::new(n, 7);
    let x = HostBuffer::from_slice(pool.window(0, n));
    let y = HostBuffer::from_slice(pool.window(1, n));
    let mut o = HostBuffer::filled(tokens * heads, f32::NAN);
    let emu = Emulator::new();
    let outcome = time_wall(timing, &mut || {
        emu.row_dot(
            &shape,
            TensorRef {
                data: &x,
                strides: st,
            },
            TensorRef {
                data: &y,
                strides: st,
            },
            &mut o,
        )
    })
    .map_err(|e| status_of(&e));
    vec![throughput(
        "row_dot",
        "emulator",
        format!("{tokens} tokens x {heads} heads x 128 bf16"),
        row_dot_bytes(n, tokens * heads),
        "GB/s",
        outcome,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Grid;

    #[test]
    fn host_entries_fill_every_row_of_the_tiny_grid() {
        let shapes = &Grid::tiny().shapes()[..2];
        let mut seen = 0;
        let records = bench_host(shapes, &host_entries(), &Timing::ONCE, &mut |_| seen += 1);
        assert_eq!(records.len(), shapes.len() * host_entries().len());
        assert_eq!(seen, records.len());
        for r in &records {
            let Record::Attention(a) = r else {
                panic!("not an attention record")
            };
            // The reference runs everything; an emulator kernel not written yet is "unsupported".
            if a.implementation == "reference-f64" {
                assert_eq!(a.status, Status::Ok, "{a:?}");
            } else {
                assert!(!matches!(a.status, Status::Failed(_)), "{a:?}");
            }
            assert!(a.status != Status::Ok || a.tflops().unwrap() > 0.0);
        }
    }

    #[test]
    fn variant_passes_time_each_kernel_of_a_variant() {
        let passes: Vec<_> = variant_passes().collect();
        for v in std::iter::once(KernelVariant::Default).chain(KernelVariant::ALTERNATIVES) {
            let default = v == KernelVariant::Default;
            let has = |pass| passes.contains(&(v, pass, BlockOrder::LongestFirst));
            assert!(has(Pass::Forward), "{v:?}");
            assert_eq!(has(Pass::Backward), default || v.has_backward(), "{v:?}");
            assert_eq!(
                has(Pass::BackwardDeterministic),
                default || v.has_dq_pass(),
                "{v:?}"
            );
        }
        assert!(passes.contains(&(
            KernelVariant::Wgmma,
            Pass::BackwardDeterministic,
            BlockOrder::LongestFirst
        )));
        for (v, pass) in GRID_ORDER_TIMED {
            assert!(
                passes.contains(&(v, pass, BlockOrder::Grid)),
                "{v:?} {pass:?}"
            );
        }
        let shape = Grid::tiny().shapes()[0];
        let p = |pass| {
            variant_problem(
                shape,
                BenchActivation::Softmax,
                (None, BlockOrder::LongestFirst),
                pass,
            )
            .unwrap()
        };
        assert!(p(Pass::BackwardDeterministic).opts.deterministic);
        assert!(!p(Pass::Backward).opts.deterministic);
    }

    #[test]
    fn grid_order_runs_on_causal_shapes_with_its_own_label() {
        let shapes = Grid::tiny().shapes();
        let (causal, full) = (
            shapes.iter().find(|s| s.causal).expect("a causal shape"),
            shapes
                .iter()
                .find(|s| !s.causal)
                .expect("a non-causal shape"),
        );
        let grid = (Some(KernelVariant::Default), BlockOrder::Grid);
        let p = variant_problem(*causal, BenchActivation::Sigmoid, grid, Pass::Forward)
            .expect("grid order on a causal shape");
        assert_eq!(p.opts.block_order, BlockOrder::Grid);
        assert!(variant_problem(*full, BenchActivation::Sigmoid, grid, Pass::Forward).is_none());
        assert_eq!(
            variant_label("sinkless", grid.0, grid.1),
            "sinkless/default+grid"
        );
        assert_eq!(
            variant_label("sinkless", None, BlockOrder::LongestFirst),
            "sinkless"
        );
    }

    #[test]
    fn arguments_follow_the_activation() {
        let shape = Grid::tiny().shapes()[0];
        let pool = RandomPool::new(shape.elements(), 1);
        let mut b = HostAttn::new(&shape, &pool);
        let soft = AttnProblem::new(shape, BenchActivation::Softmax);
        let (i, o) = b.forward_args::<[bf16], [f32]>(&soft);
        assert!(i.sink.is_some() && i.bias.is_none() && o.row_stat.is_some());
        let sig = AttnProblem::new(shape, BenchActivation::Sigmoid);
        let (i, o, _) = b.backward_args::<[bf16], [f32]>(&sig);
        assert!(i.sink.is_none() && i.row_stat.is_none() && o.dsink.is_none());
        // Different windows of the pool: q and k differ.
        assert_ne!(&b.q[..], &b.k[..]);
    }

    #[test]
    fn emulator_row_dot_reports_a_bandwidth() {
        let r = bench_emulator_throughput(&Timing::ONCE);
        let Record::Throughput(t) = &r[0] else {
            panic!()
        };
        assert_eq!(t.status, Status::Ok);
        assert!(t.value.unwrap() > 0.0);
    }
}
