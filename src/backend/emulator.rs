//! The emulator backend: runs the kernels' own CUDA source on the CPU.
//!
//! The kernels are compiled a second time by the host C++ compiler against a small SIMT runtime
//! (`kernels/sim`): every CUDA thread is a fiber, warp-collective instructions (`mma.sync`,
//! `ldmatrix`, shuffles) meet in a warp rendezvous, `cp.async` data lands only at its wait, and
//! fibers run in a seeded, shuffled order at every barrier, so a missing `__syncthreads` or wait
//! shows up as a wrong answer. Buffers sit flush against a guard page, so an out-of-bounds access
//! is an error rather than a silent read. It is the way to run and debug the kernels without a
//! GPU, and what CI tests them with.
//!
//! ```
//! use sinkless::{Emulator, HostBuffer, Shape, Strides, TensorRef};
//! use half::f16;
//! // D = rowsum(dO * O) for 2 heads, 3 rows, head_dim 8.
//! let shape = Shape::dense(1, 3, 3, 2, 2, 8);
//! let x = HostBuffer::from_slice(&vec![f16::from_f32(0.5); 48]);
//! let y = HostBuffer::from_slice(&vec![f16::from_f32(2.0); 48]);
//! let mut out = HostBuffer::filled(6, f32::NAN);
//! let s = Strides::contiguous(3, 2, 8);
//! Emulator::new()
//!     .row_dot(&shape, TensorRef { data: &x, strides: s }, TensorRef { data: &y, strides: s }, &mut out)
//!     .unwrap();
//! assert!(out.iter().all(|&d| d == 8.0));
//! ```

use crate::attention::{
    check_backward, check_forward, check_forward_inputs, workspace_layout, BackwardInputs,
    BackwardOutputs, ForwardInputs, ForwardOutputs, Lens,
};
use crate::config::{AttentionOptions, Element};
use crate::error::{Error, Result};
use crate::kernels::KernelSpec;
use crate::plan::{self, Addr, BackwardAddrs, ForwardAddrs, Launch, WorkspaceAddrs};
use crate::tensor::{check_shape, Shape, TensorRef};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

#[repr(C)]
struct SimLaunch {
    grid: [u32; 3],
    block: [u32; 3],
    dynamic_smem_bytes: u64,
    max_smem_bytes: u64,
    seed: u64,
    worker_threads: u32,
}

extern "C" {
    fn sinkless_sim_run(
        cfg: *const SimLaunch,
        entry: unsafe extern "C" fn(*const c_void),
        params: *const c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn sinkless_sim_alloc(bytes: usize) -> *mut c_void;
    fn sinkless_sim_free(p: *mut c_void);
}

/// A host buffer placed flush against a guard page, for the emulator.
///
/// Reading or writing one element past its end faults inside the emulator instead of reading
/// a neighbour's memory.
pub struct HostBuffer<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a HostBuffer owns its allocation like a Vec does.
unsafe impl<T: Send> Send for HostBuffer<T> {}
// SAFETY: shared access only reads.
unsafe impl<T: Sync> Sync for HostBuffer<T> {}

impl<T: Copy> HostBuffer<T> {
    /// A buffer of `len` copies of `value` (use NaN to poison outputs).
    pub fn filled(len: usize, value: T) -> Self {
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len.max(1))
            .expect("buffer size overflows usize");
        // SAFETY: FFI allocation; null is handled below.
        let raw = unsafe { sinkless_sim_alloc(bytes) }.cast::<T>();
        let ptr = NonNull::new(raw).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(std::alloc::Layout::array::<T>(len.max(1)).unwrap())
        });
        // SAFETY: the allocation holds at least `len` elements and is 16-byte aligned.
        unsafe {
            for i in 0..len {
                ptr.as_ptr().add(i).write(value);
            }
        }
        HostBuffer { ptr, len }
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[T]) -> Self
    where
        T: Default,
    {
        let mut b = Self::filled(data.len(), T::default());
        b.copy_from_slice(data);
        b
    }
}

impl<T> HostBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address the kernels see.
    pub(crate) fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
}

impl<T> Deref for HostBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr holds len initialised elements.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HostBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: ptr holds len initialised elements and we have unique access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HostBuffer<T> {
    fn drop(&mut self) {
        // SAFETY: allocated by sinkless_sim_alloc; T is Copy-like data without drop glue in use.
        unsafe { sinkless_sim_free(self.ptr.as_ptr().cast()) }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HostBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Element counts of the emulator's buffers, for the shared checks.
fn lens<T>() -> Lens<HostBuffer<T>, HostBuffer<T>, HostBuffer<f32>, HostBuffer<f32>> {
    Lens {
        s: HostBuffer::len,
        o: HostBuffer::len,
        f: HostBuffer::len,
        g: HostBuffer::len,
    }
}

/// Which GPU's limits the emulator enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Ampere: at most 163 KiB (166,912 bytes) of shared memory per block.
    Sm80,
    /// Hopper: at most 227 KiB (232,448 bytes) of shared memory per block.
    Sm90,
}

impl Target {
    /// Largest dynamic shared memory a block may ask for.
    pub fn max_smem(self) -> usize {
        match self {
            Target::Sm80 => 166_912,
            Target::Sm90 => 232_448,
        }
    }
}

/// The emulator backend.
#[derive(Clone, Debug)]
pub struct Emulator {
    seed: u64,
    worker_threads: u32,
    target: Target,
}

impl Default for Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Emulator {
    /// An emulator with sm_80 limits, seed 0 and one worker thread per core.
    pub fn new() -> Self {
        Emulator {
            seed: 0,
            worker_threads: 0,
            target: Target::Sm80,
        }
    }

    /// Sets the seed of the fiber schedule (each seed is another legal interleaving).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the number of OS threads blocks are spread over (0 = one per core).
    pub fn with_worker_threads(mut self, n: u32) -> Self {
        self.worker_threads = n;
        self
    }

    /// Sets the GPU whose limits are enforced (a kernel compiled for sm_90a alone, such as the
    /// wgmma variants, runs under sm_90's whatever the target: no other GPU runs it).
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// The limits a launch of `kernel` runs under: the target's, except for a kernel compiled
    /// for sm_90a alone, which only a Hopper GPU can run and so gets Hopper's.
    fn target_for(&self, kernel: &KernelSpec) -> Target {
        if kernel.hopper_only {
            Target::Sm90
        } else {
            self.target
        }
    }

    /// Runs one planned launch.
    pub(crate) fn launch(&self, l: &Launch) -> Result<()> {
        let limit = self.target_for(l.kernel).max_smem();
        if l.smem > limit {
            return Err(Error::SharedMemory {
                kernel: l.kernel.name.into(),
                requested: l.smem,
                limit,
            });
        }
        let cfg = SimLaunch {
            grid: l.grid,
            block: l.block,
            dynamic_smem_bytes: l.smem as u64,
            max_smem_bytes: limit as u64,
            seed: self.seed,
            worker_threads: self.worker_threads,
        };
        let mut err = [0 as c_char; 1024];
        // SAFETY: the plan's params hold addresses of live buffers the caller borrowed for the
        // whole call, sized by the same checks the CUDA backend uses.
        let code = unsafe {
            sinkless_sim_run(
                &cfg,
                l.kernel.sim_entry,
                l.params.as_ptr(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if code != 0 {
            // SAFETY: the runtime writes a NUL-terminated message into err.
            let message = unsafe { CStr::from_ptr(err.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            return Err(Error::Emulator {
                kernel: l.kernel.name.into(),
                code,
                message,
            });
        }
        Ok(())
    }

    /// Row-wise dot product over the query side of `shape`:
    /// `out[b, h, i] = sum_d x[b, i, h, d] * y[b, i, h, d]` in f32, the softmax backward's
    /// `D = rowsum(dO * O)`. `out` is `[batch, heads_q, seqlen_q]`, or `[heads_q, total_q]`
    /// for varlen.
    ///
    /// # Errors
    /// Shape, stride and length errors as described on [`Error`]; [`Error::Emulator`] if the
    /// emulator reports a fault.
    pub fn row_dot<T: Element>(
        &self,
        shape: &Shape<'_>,
        x: TensorRef<'_, HostBuffer<T>>,
        y: TensorRef<'_, HostBuffer<T>>,
        out: &mut HostBuffer<f32>,
    ) -> Result<()> {
        let dims = check_shape(shape)?;
        plan::check_row_dot(
            &dims,
            (x.data.len(), x.strides),
            (y.data.len(), y.strides),
            out.len(),
        )?;
        let cu = dims.q.cu.as_deref().map(HostBuffer::from_slice);
        let launch = plan::row_dot(
            T::DTYPE,
            &dims,
            Addr {
                addr: x.data.addr(),
                strides: x.strides,
            },
            Addr {
                addr: y.data.addr(),
                strides: y.strides,
            },
            out.addr(),
            cu.as_ref().map(HostBuffer::addr),
        )?;
        self.launch(&launch)
    }

    /// The attention forward on the emulator: `o` and, for softmax and normalized sigmoid, the
    /// per-row statistic, exactly as [`CudaBackend::forward`](crate::CudaBackend::forward)
    /// computes them.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`], before any launch;
    /// [`Error::Emulator`] if the emulator reports a fault.
    pub fn forward<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, HostBuffer<T>, HostBuffer<f32>>,
        outputs: ForwardOutputs<'_, HostBuffer<T>, HostBuffer<f32>>,
    ) -> Result<()> {
        let dims = check_forward(shape, opts, &inputs, &outputs, lens::<T>())?;
        let ForwardOutputs { o, row_stat } = outputs;
        let cu_q = dims.q.cu.as_deref().map(HostBuffer::from_slice);
        let cu_k = dims.k.cu.as_deref().map(HostBuffer::from_slice);
        let at = |t: &TensorRef<'_, HostBuffer<T>>| Addr {
            addr: t.data.addr(),
            strides: t.strides,
        };
        let addrs = ForwardAddrs {
            q: at(&inputs.q),
            k: at(&inputs.k),
            v: at(&inputs.v),
            o: Addr {
                addr: o.data.addr(),
                strides: o.strides,
            },
            row_stat: row_stat.map(|r| r.addr()),
            cu_seqlens_q: cu_q.as_ref().map(HostBuffer::addr),
            cu_seqlens_k: cu_k.as_ref().map(HostBuffer::addr),
            sink: inputs.sink.map(HostBuffer::addr),
            bias: inputs.bias.map(HostBuffer::addr),
        };
        self.launch(&plan::attn_forward(T::DTYPE, opts, &dims, &addrs)?)
    }

    /// The attention backward on the emulator: dQ, dK, dV and the sink or per-head bias gradient,
    /// exactly as [`CudaBackend::backward`](crate::CudaBackend::backward) computes them. Its
    /// scratch buffers are separate allocations, each against its own guard page.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`], before any launch;
    /// [`Error::Emulator`] if the emulator reports a fault.
    pub fn backward<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, HostBuffer<T>, HostBuffer<f32>>,
        outputs: BackwardOutputs<'_, HostBuffer<T>, HostBuffer<f32>>,
    ) -> Result<()> {
        let dims = check_backward(shape, opts, &inputs, &outputs, lens::<T>())?;
        let sizes = plan::backward_workspace(T::DTYPE, opts, &dims)?;
        // Only dq_accum must start at zero; the kernels write every element of the others, which
        // start as NaN here so that one they miss shows in the gradients.
        let scratch = |n: usize, fill: f32| HostBuffer::filled(n.max(1), fill);
        let (row_dot, dq_accum, dbias_partial) = (
            scratch(sizes.row_dot, f32::NAN),
            scratch(sizes.dq_accum, 0.0),
            scratch(sizes.dbias_partial, f32::NAN),
        );
        let ws = WorkspaceAddrs {
            row_dot: row_dot.addr(),
            dq_accum: dq_accum.addr(),
            dbias_partial: dbias_partial.addr(),
        };
        self.backward_at(opts, &dims, inputs, outputs, ws)
    }

    /// The seed paper's sink score of every key of every query head, by the kernels themselves
    /// ([`sink`](crate::sink) says how), exactly as
    /// [`CudaBackend::sink_scores`](crate::CudaBackend::sink_scores) computes them. Laid out
    /// `[batch, heads_q, seqlen_k]`, or `[heads_q, total_k]` under varlen; a key no query sees
    /// scores 0.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`] about the inputs, before any
    /// launch; [`Error::Emulator`] if the emulator reports a fault.
    pub fn sink_scores<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, HostBuffer<T>, HostBuffer<f32>>,
    ) -> Result<Vec<f32>> {
        let dims = check_forward_inputs(shape, opts, &inputs, HostBuffer::len, HostBuffer::len)?;
        let at = |t: &TensorRef<'_, HostBuffer<T>>| Addr {
            addr: t.data.addr(),
            strides: t.strides,
        };
        crate::sink::scores::<T, _>(
            self,
            &dims,
            opts,
            (at(&inputs.q), at(&inputs.k), at(&inputs.v)),
            inputs.sink.map(|s| &s[..]),
            inputs.bias.map(|b| &b[..]),
        )
    }

    /// [`Emulator::backward`] with its scratch in `workspace`, which must hold
    /// [`backward_workspace_len`](crate::backward_workspace_len) elements; its contents on entry
    /// do not matter (the part that must start at zero is zeroed here).
    ///
    /// # Errors
    /// Those of [`Emulator::backward`], and [`Error::WorkspaceTooSmall`].
    pub fn backward_with_workspace<T: Element>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, HostBuffer<T>, HostBuffer<f32>>,
        outputs: BackwardOutputs<'_, HostBuffer<T>, HostBuffer<f32>>,
        workspace: &mut HostBuffer<f32>,
    ) -> Result<()> {
        let dims = check_backward(shape, opts, &inputs, &outputs, lens::<T>())?;
        let layout = workspace_layout::<T>(opts, &dims, workspace.len())?;
        workspace[layout.dq_accum.clone()].fill(0.0);
        let ws = layout.addrs(workspace.addr());
        self.backward_at(opts, &dims, inputs, outputs, ws)
    }

    /// The backward's launches on checked arguments, with scratch at `ws`.
    fn backward_at<T: Element>(
        &self,
        opts: &AttentionOptions,
        dims: &crate::tensor::Dims,
        inputs: BackwardInputs<'_, HostBuffer<T>, HostBuffer<f32>>,
        outputs: BackwardOutputs<'_, HostBuffer<T>, HostBuffer<f32>>,
        ws: WorkspaceAddrs,
    ) -> Result<()> {
        let BackwardOutputs {
            dq,
            dk,
            dv,
            dsink,
            dbias,
        } = outputs;
        let cu_q = dims.q.cu.as_deref().map(HostBuffer::from_slice);
        let cu_k = dims.k.cu.as_deref().map(HostBuffer::from_slice);
        let at = |t: &TensorRef<'_, HostBuffer<T>>| Addr {
            addr: t.data.addr(),
            strides: t.strides,
        };
        let addrs = BackwardAddrs {
            q: at(&inputs.q),
            k: at(&inputs.k),
            v: at(&inputs.v),
            o: at(&inputs.o),
            d_o: at(&inputs.d_o),
            dq: Addr {
                addr: dq.data.addr(),
                strides: dq.strides,
            },
            dk: Addr {
                addr: dk.data.addr(),
                strides: dk.strides,
            },
            dv: Addr {
                addr: dv.data.addr(),
                strides: dv.strides,
            },
            row_stat: inputs.row_stat.map(HostBuffer::addr),
            sink: inputs.sink.map(HostBuffer::addr),
            bias: inputs.bias.map(HostBuffer::addr),
            dsink: dsink.map(|d| d.addr()),
            dbias: dbias.map(|d| d.addr()),
            cu_seqlens_q: cu_q.as_ref().map(HostBuffer::addr),
            cu_seqlens_k: cu_k.as_ref().map(HostBuffer::addr),
            ws,
        };
        plan::attn_backward(T::DTYPE, opts, dims, &addrs)?
            .iter()
            .try_for_each(|l| self.launch(l))
    }
}

impl crate::sink::ScoreDevice for Emulator {
    type Mem = HostBuffer<u8>;
    fn zeroed(&self, bytes: usize) -> Result<HostBuffer<u8>> {
        Ok(HostBuffer::filled(bytes, 0))
    }
    fn upload(&self, bytes: &[u8]) -> Result<HostBuffer<u8>> {
        Ok(HostBuffer::from_slice(bytes))
    }
    fn addr(&self, m: &HostBuffer<u8>) -> u64 {
        m.addr()
    }
    fn download(&self, m: &HostBuffer<u8>) -> Result<Vec<u8>> {
        Ok(m.to_vec())
    }
    fn run(&self, launches: &[Launch]) -> Result<()> {
        launches.iter().try_for_each(|l| self.launch(l))
    }
}
