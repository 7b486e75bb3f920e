//! The CUDA backend: the embedded fatbin, loaded through cudarc, and the same launch plans as
//! the emulator.
//!
//! Creating a [`CudaBackend`] never panics on a machine without a driver or GPU: it probes for
//! the driver library and the device count first and returns [`Error::DriverMissing`] or
//! [`Error::NoDevice`]; a build without nvcc returns [`Error::KernelsNotCompiled`].
//!
//! ```no_run
//! use sinkless::{CudaBackend, Shape, Strides, TensorRef};
//! use half::bf16;
//! let gpu = CudaBackend::new(0)?;
//! let stream = gpu.stream();
//! let shape = Shape::dense(2, 128, 128, 8, 8, 64);
//! let x = stream.clone_htod(&vec![bf16::ONE; 2 * 128 * 8 * 64]).unwrap();
//! let mut out = stream.alloc_zeros::<f32>(2 * 8 * 128).unwrap();
//! let s = Strides::contiguous(128, 8, 64);
//! gpu.row_dot(&shape, TensorRef { data: &x, strides: s }, TensorRef { data: &x, strides: s }, &mut out)?;
//! # Ok::<(), sinkless::Error>(())
//! ```

use super::recent::Recent;
use super::watch;
use crate::attention::{
    check_backward, check_forward, check_forward_inputs, workspace_layout, BackwardInputs,
    BackwardOutputs, ForwardInputs, ForwardOutputs, Lens,
};
use crate::config::{AttentionOptions, Element, KernelVariant};
use crate::error::{Error, Result, TensorName};
use crate::kernels::KernelSpec;
use crate::plan::{self, Addr, BackwardAddrs, ForwardAddrs, Launch, WorkspaceLayout};
use crate::tensor::{check_shape, Dims, Shape, TensorRef};
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr,
    DevicePtrMut, DeviceRepr, DeviceSlice, DriverError, LaunchConfig,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The fatbin build.rs made, or `None` when nvcc was missing at build time.
#[cfg(sinkless_fatbin)]
pub(crate) const FATBIN: Option<&[u8]> =
    Some(include_bytes!(concat!(env!("OUT_DIR"), "/sinkless.fatbin")));
/// The fatbin build.rs made, or `None` when nvcc was missing at build time.
#[cfg(not(sinkless_fatbin))]
pub(crate) const FATBIN: Option<&[u8]> = None;

/// The second fatbin: the kernels compiled as one whole program (those whose params hold
/// tensor maps; `KernelSpec::tensor_maps`), since `setmaxnreg` needs that.
#[cfg(sinkless_fatbin)]
const WHOLE_FATBIN: Option<&[u8]> = Some(include_bytes!(concat!(
    env!("OUT_DIR"),
    "/sinkless_whole.fatbin"
)));
#[cfg(not(sinkless_fatbin))]
const WHOLE_FATBIN: Option<&[u8]> = None;

/// Per kernel and target: registers, shared memory, spills and SASS instruction counts, as
/// tab-separated text (see `sinkless info`).
pub const KERNEL_REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/kernel_report.txt"));

fn cuda_err(during: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| Error::Cuda {
        during,
        message: format!("{e:?}"),
    }
}

/// Element counts of cudarc slices and views, for the shared checks.
fn lens<T, S: DeviceSlice<T>, O: DeviceSlice<T>, F: DeviceSlice<f32>, G: DeviceSlice<f32>>(
) -> Lens<S, O, F, G> {
    Lens {
        s: |b: &S| b.len(),
        o: |b: &O| b.len(),
        f: |b: &F| b.len(),
        g: |b: &G| b.len(),
    }
}

/// Whether the driver library can be loaded, and how many GPUs it sees.
///
/// # Errors
/// [`Error::DriverMissing`] without a loadable libcuda; [`Error::Cuda`] if `cuInit` fails.
pub fn device_count() -> Result<usize> {
    // SAFETY: only tries to dlopen the driver library; no CUDA call is made when it is absent.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::DriverMissing);
    }
    cudarc::driver::result::init().map_err(cuda_err("initialising the driver (cuInit)"))?;
    let n = CudaContext::device_count().map_err(cuda_err("counting devices"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Device copies of `cu_seqlens` a backend keeps (see `recent.rs`).
const CU_SEQLENS_KEPT: usize = 16;

/// The CUDA backend: one device, one stream, the embedded kernels.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    whole_module: Arc<CudaModule>,
    functions: Arc<Mutex<HashMap<&'static str, CudaFunction>>>,
    compute_capability: (i32, i32),
    max_smem_optin: usize,
    /// Device copies of recent `cu_seqlens`, uploaded on `stream` and never written again.
    cu_seqlens: Mutex<Recent<Arc<CudaSlice<i32>>>>,
    /// The launches on `stream` since the last completed [`synchronize_within`]
    /// (Self::synchronize_within): what a timeout names.
    queued: Mutex<watch::Launches<CudaEvent>>,
    /// Kernels this process does not launch (`SINKLESS_SKIP_KERNELS`, read at [`new`](Self::new)).
    skip: Arc<Vec<String>>,
    /// The first [`Error::GpuTimeout`] of this context, if any: every later launch and wait fails
    /// with it at once rather than queue behind the hung work.
    hung: Arc<Mutex<Option<Error>>>,
    /// Whether each launch records an event ([`track_launches`](Self::track_launches)).
    track: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("ordinal", &self.ctx.ordinal())
            .field("compute_capability", &self.compute_capability)
            .finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// Opens device `ordinal` and loads the kernels.
    ///
    /// # Errors
    /// [`Error::KernelsNotCompiled`], [`Error::DriverMissing`], [`Error::NoDevice`],
    /// [`Error::UnsupportedGpu`] (older than sm_80), or [`Error::Cuda`].
    pub fn new(ordinal: usize) -> Result<Self> {
        let fatbin = FATBIN.ok_or(Error::KernelsNotCompiled)?;
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("creating the context"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(cuda_err("reading the compute capability"))?;
        if major < 8 {
            return Err(Error::UnsupportedGpu { major, minor });
        }
        let load = |bin: &[u8]| ctx.load_module(cudarc::nvrtc::Ptx::from_binary(bin.to_vec()));
        let module = load(fatbin).map_err(cuda_err("loading the embedded fatbin"))?;
        let whole_module = load(WHOLE_FATBIN.ok_or(Error::KernelsNotCompiled)?)
            .map_err(cuda_err("loading the embedded whole-program fatbin"))?;
        let optin = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .map_err(cuda_err("reading the shared-memory limit"))?;
        let stream = ctx.default_stream();
        Ok(CudaBackend {
            ctx,
            stream,
            module,
            whole_module,
            functions: Arc::new(Mutex::new(HashMap::new())),
            compute_capability: (major, minor),
            max_smem_optin: usize::try_from(optin).unwrap_or(0),
            cu_seqlens: Mutex::new(Recent::new(CU_SEQLENS_KEPT)),
            queued: Mutex::new(watch::Launches::default()),
            skip: Arc::new(watch::skip_list_from_env()),
            hung: Arc::new(Mutex::new(None)),
            track: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The same device and kernels, queueing its work on `stream` instead: one backend per
    /// stream of the caller's (a framework's stream, one being captured into a CUDA graph;
    /// [`new`](Self::new)'s is the context's default stream, which cannot be captured). The
    /// loaded modules are shared, so this costs no load.
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`] naming [`TensorName::Stream`] for a stream of another device.
    pub fn on_stream(&self, stream: Arc<CudaStream>) -> Result<CudaBackend> {
        let got = stream.context().ordinal();
        if got != self.ctx.ordinal() {
            return Err(Error::DeviceMismatch {
                tensor: TensorName::Stream,
                expected: self.ctx.ordinal(),
                got,
            });
        }
        Ok(CudaBackend {
            ctx: self.ctx.clone(),
            stream,
            module: self.module.clone(),
            whole_module: self.whole_module.clone(),
            functions: self.functions.clone(),
            compute_capability: self.compute_capability,
            max_smem_optin: self.max_smem_optin,
            cu_seqlens: Mutex::new(Recent::new(CU_SEQLENS_KEPT)),
            queued: Mutex::new(watch::Launches::default()),
            skip: self.skip.clone(),
            hung: self.hung.clone(),
            track: std::sync::atomic::AtomicBool::new(
                self.track.load(std::sync::atomic::Ordering::Relaxed),
            ),
        })
    }

    /// The stream every operation is queued on; allocate and copy buffers through it.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until the work queued on [`stream`](Self::stream) so far has finished, for at most
    /// `limit`: what the checks and benchmarks call instead of a plain synchronize, so that a
    /// kernel that hangs ends them with its name. [`sync_limit`](crate::backend::watch::sync_limit)
    /// is their limit (`SINKLESS_SYNC_TIMEOUT_S`, 30 s by default).
    ///
    /// # Errors
    /// [`Error::GpuTimeout`] naming the kernels launched since the last wait that returned `Ok`,
    /// and, with [`track_launches`](Self::track_launches) on, the one that did not end (the work
    /// stays queued: the context is of no further use to this process, and every
    /// later launch or wait of this backend and those made from it by
    /// [`on_stream`](Self::on_stream) returns the same error at once);
    /// [`Error::Cuda`] for an error of the queued work or of the event.
    pub fn synchronize_within(&self, limit: std::time::Duration) -> Result<()> {
        self.check_not_hung()?;
        let start = std::time::Instant::now();
        let event = self
            .stream
            .record_event(None)
            .map_err(cuda_err("recording an event to wait for"))?;
        let done = watch::poll_until(limit, || {
            event
                .try_is_complete()
                .map_err(cuda_err("waiting for the queued work"))
        })?;
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if done {
            queued.clear();
            return Ok(());
        }
        let running = queued.first_unfinished(|e| e.try_is_complete().unwrap_or(false));
        let e = Error::GpuTimeout {
            waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            running: running.map(str::to_string),
            kernels: queued.names().iter().map(|k| k.to_string()).collect(),
        };
        *self.hung.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
        Err(e)
    }

    /// With `on`, records an event after each launch, so that a timeout of
    /// [`synchronize_within`](Self::synchronize_within) names the kernel that did not end, not
    /// only every kernel queued since the last wait. An event costs a few microseconds of host
    /// time a launch: for checks and benchmarks (the `sinkless` command and the GPU tests turn it
    /// on), not for a training loop. Off by default; [`on_stream`](Self::on_stream) copies it.
    pub fn track_launches(&self, on: bool) {
        self.track.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The [`Error::GpuTimeout`] that this backend's context met, if any (see
    /// [`synchronize_within`](Self::synchronize_within)).
    pub fn timed_out(&self) -> Option<Error> {
        self.hung.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Err` with [`timed_out`](Self::timed_out)'s error, if any: for every call that would
    /// queue work or copy behind hung work.
    pub(crate) fn check_not_hung(&self) -> Result<()> {
        self.timed_out().map_or(Ok(()), Err)
    }

    /// The device's name.
    ///
    /// # Errors
    /// [`Error::Cuda`] if the driver cannot say.
    pub fn device_name(&self) -> Result<String> {
        self.ctx.name().map_err(cuda_err("reading the device name"))
    }

    /// The device's compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Whether this device runs `variant`'s kernels: the wgmma variants
    /// ([`KernelVariant::needs_wgmma`]) need sm_90 (their kernels are compiled for sm_90a
    /// alone), every other variant runs on sm_80 and up.
    pub fn runs_variant(&self, variant: KernelVariant) -> bool {
        !variant.needs_wgmma() || self.has_wgmma()
    }

    /// Whether the device runs the kernels compiled for sm_90a alone (`wgmma`): compute
    /// capability 9.0.
    pub fn has_wgmma(&self) -> bool {
        self.compute_capability == (9, 0)
    }

    fn function(&self, kernel: &'static KernelSpec) -> Result<CudaFunction> {
        let name = kernel.name;
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(name) {
            return Ok(f.clone());
        }
        let module = if kernel.tensor_maps {
            &self.whole_module
        } else {
            &self.module
        };
        let f = module
            .load_function(name)
            .map_err(cuda_err("looking up a kernel"))?;
        cache.insert(name, f.clone());
        Ok(f)
    }

    fn check_device<T, S: DeviceSlice<T>>(&self, tensor: TensorName, s: &S) -> Result<()> {
        let got = s.stream().context().ordinal();
        if got != self.ctx.ordinal() {
            return Err(Error::DeviceMismatch {
                tensor,
                expected: self.ctx.ordinal(),
                got,
            });
        }
        Ok(())
    }

    /// Queues one planned launch.
    pub(crate) fn launch(&self, l: &Launch) -> Result<()> {
        self.check_not_hung()?;
        if self.skip.iter().any(|k| k == l.kernel.name) {
            return Err(Error::KernelSkipped {
                kernel: l.kernel.name.into(),
            });
        }
        if l.smem > self.max_smem_optin {
            return Err(Error::SharedMemory {
                kernel: l.kernel.name.into(),
                requested: l.smem,
                limit: self.max_smem_optin,
            });
        }
        if l.kernel.hopper_only && self.compute_capability != (9, 0) {
            let (major, minor) = self.compute_capability;
            return Err(Error::Unsupported {
                feature: format!(
                    "kernel {} on this GPU (sm_{major}{minor}): it is compiled for sm_90a (Hopper) alone",
                    l.kernel.name
                ),
            });
        }
        let f = self.function(l.kernel)?;
        let smem = u32::try_from(l.smem).expect("bounded by max_smem_optin");
        if l.smem > 48 * 1024 {
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                i32::try_from(smem).expect("bounded by max_smem_optin"),
            )
            .map_err(cuda_err("raising the kernel's shared-memory limit"))?;
        }
        let cfg = LaunchConfig {
            grid_dim: (l.grid[0], l.grid[1], l.grid[2]),
            block_dim: (l.block[0], l.block[1], l.block[2]),
            shared_mem_bytes: smem,
        };
        let mut params = l.params;
        for map in params.tensor_maps_mut() {
            crate::tma::encode_for_driver(map)?;
        }
        let mut builder = self.stream.launch_builder(&f);
        params.push_arg(&mut builder);
        // SAFETY: the plan checked every tensor's extent against its buffer's length, and the
        // caller holds the buffers (and their cudarc event guards) until this call returns.
        unsafe { builder.launch(cfg) }.map_err(cuda_err("launching a kernel"))?;
        let event = if self.track.load(std::sync::atomic::Ordering::Relaxed) {
            Some(
                self.stream
                    .record_event(None)
                    .map_err(cuda_err("recording a launch's event"))?,
            )
        } else {
            None
        };
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(l.kernel.name, event);
        Ok(())
    }

    /// Row-wise dot product over the query side of `shape`:
    /// `out[b, h, i] = sum_d x[b, i, h, d] * y[b, i, h, d]` in f32, the softmax backward's
    /// `D = rowsum(dO * O)`. `out` is `[batch, heads_q, seqlen_q]`, or `[heads_q, total_q]`
    /// for varlen. Queued on [`stream`](Self::stream).
    ///
    /// # Errors
    /// Shape, stride, alignment and length errors as described on [`Error`];
    /// [`Error::DeviceMismatch`] for buffers of another device; [`Error::Cuda`].
    pub fn row_dot<T, X, Y, O>(
        &self,
        shape: &Shape<'_>,
        x: TensorRef<'_, X>,
        y: TensorRef<'_, Y>,
        out: &mut O,
    ) -> Result<()>
    where
        T: Element + DeviceRepr,
        X: DevicePtr<T>,
        Y: DevicePtr<T>,
        O: DevicePtrMut<f32>,
    {
        let dims = check_shape(shape)?;
        plan::check_row_dot(
            &dims,
            (x.data.len(), x.strides),
            (y.data.len(), y.strides),
            out.len(),
        )?;
        self.check_device(TensorName::X, x.data)?;
        self.check_device(TensorName::Y, y.data)?;
        self.check_device(TensorName::Out, out)?;
        let cu = self.upload_cu(&dims.q.cu)?;
        let stream = self.stream.clone();
        let (xp, _xg) = x.data.device_ptr(&stream);
        let (yp, _yg) = y.data.device_ptr(&stream);
        let (op, _og) = out.device_ptr_mut(&stream);
        let cu_ptr = cu.as_ref().map(|c| c.device_ptr(&stream));
        let launch = plan::row_dot(
            T::DTYPE,
            &dims,
            Addr {
                addr: xp,
                strides: x.strides,
            },
            Addr {
                addr: yp,
                strides: y.strides,
            },
            op,
            cu_ptr.as_ref().map(|(p, _)| *p),
        )?;
        self.launch(&launch)
    }

    /// The device copy of `cu_seqlens`, when the problem is varlen: the one kept from an
    /// earlier call with the same contents, else a new upload (then kept).
    fn upload_cu(&self, cu: &Option<Vec<i32>>) -> Result<Option<Arc<CudaSlice<i32>>>> {
        // a copy on a stream behind hung work may never return
        self.check_not_hung()?;
        let Some(c) = cu else { return Ok(None) };
        let mut kept = self.cu_seqlens.lock().unwrap_or_else(|e| e.into_inner());
        kept.get_or_try_insert(c, || {
            self.stream
                .clone_htod(c)
                .map(Arc::new)
                .map_err(cuda_err("copying cu_seqlens"))
        })
        .map(Some)
    }

    /// The attention forward: writes `o` and, for softmax and normalized sigmoid, the per-row
    /// statistic (see [`ForwardOutputs`]). Queued on [`stream`](Self::stream).
    ///
    /// # Errors
    /// Every shape, stride, alignment, length and option error of [`Error`], before any launch;
    /// [`Error::DeviceMismatch`] for buffers of another device; [`Error::Cuda`].
    pub fn forward<T, S, O, F, G>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, S, F>,
        outputs: ForwardOutputs<'_, O, G>,
    ) -> Result<()>
    where
        T: Element + DeviceRepr,
        S: DevicePtr<T>,
        O: DevicePtrMut<T>,
        F: DevicePtr<f32>,
        G: DevicePtrMut<f32>,
    {
        let dims = check_forward(shape, opts, &inputs, &outputs, lens::<T, S, O, F, G>())?;
        let ForwardOutputs { o, row_stat } = outputs;
        for (name, t) in [
            (TensorName::Q, &inputs.q),
            (TensorName::K, &inputs.k),
            (TensorName::V, &inputs.v),
        ] {
            self.check_device(name, t.data)?;
        }
        self.check_device(TensorName::O, &*o.data)?;
        if let Some(s) = inputs.sink {
            self.check_device(TensorName::Sink, s)?;
        }
        if let Some(b) = inputs.bias {
            self.check_device(TensorName::Bias, b)?;
        }
        if let Some(r) = &row_stat {
            self.check_device(TensorName::RowStat, &**r)?;
        }
        let (cu_q, cu_k) = (self.upload_cu(&dims.q.cu)?, self.upload_cu(&dims.k.cu)?);
        let stream = self.stream.clone();
        let (qp, _qg) = inputs.q.data.device_ptr(&stream);
        let (kp, _kg) = inputs.k.data.device_ptr(&stream);
        let (vp, _vg) = inputs.v.data.device_ptr(&stream);
        let o_strides = o.strides;
        let (op, _og) = o.data.device_ptr_mut(&stream);
        let row_stat = row_stat.map(|r| r.device_ptr_mut(&stream));
        let sink = inputs.sink.map(|s| s.device_ptr(&stream));
        let bias = inputs.bias.map(|b| b.device_ptr(&stream));
        let cu_q = cu_q.as_ref().map(|c| c.device_ptr(&stream));
        let cu_k = cu_k.as_ref().map(|c| c.device_ptr(&stream));
        let addrs = ForwardAddrs {
            q: Addr {
                addr: qp,
                strides: inputs.q.strides,
            },
            k: Addr {
                addr: kp,
                strides: inputs.k.strides,
            },
            v: Addr {
                addr: vp,
                strides: inputs.v.strides,
            },
            o: Addr {
                addr: op,
                strides: o_strides,
            },
            row_stat: row_stat.as_ref().map(|(p, _)| *p),
            cu_seqlens_q: cu_q.as_ref().map(|(p, _)| *p),
            cu_seqlens_k: cu_k.as_ref().map(|(p, _)| *p),
            sink: sink.as_ref().map(|(p, _)| *p),
            bias: bias.as_ref().map(|(p, _)| *p),
        };
        self.launch(&plan::attn_forward(T::DTYPE, opts, &dims, &addrs)?)
    }

    /// The seed paper's sink score of every key of every query head, by the attention kernels
    /// themselves ([`sink`](crate::sink) says how; no attention map is built): the mean weight
    /// each key receives from the queries that see it, of the row-normalised map for plain
    /// sigmoid. Laid out `[batch, heads_q, seqlen_k]`, or `[heads_q, total_k]` under varlen; a
    /// key no query sees scores 0. Runs `heads_q / heads_kv` forward and backward passes on
    /// [`stream`](Self::stream) with scratch of its own, and waits for them.
    ///
    /// # Errors
    /// Every shape, stride, length and option error of [`Error`] about the inputs, before any
    /// launch; [`Error::DeviceMismatch`] for buffers of another device; [`Error::Cuda`].
    pub fn sink_scores<T, S, F>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: ForwardInputs<'_, S, F>,
    ) -> Result<Vec<f32>>
    where
        T: Element + DeviceRepr,
        S: DevicePtr<T>,
        F: DevicePtr<f32>,
    {
        let dims = check_forward_inputs(shape, opts, &inputs, S::len, F::len)?;
        // the per-head values are read back below: a copy behind hung work would never return
        self.check_not_hung()?;
        for (name, t) in [
            (TensorName::Q, &inputs.q),
            (TensorName::K, &inputs.k),
            (TensorName::V, &inputs.v),
        ] {
            self.check_device(name, t.data)?;
        }
        let host = |name, x: Option<&F>| -> Result<Option<Vec<f32>>> {
            let Some(x) = x else { return Ok(None) };
            self.check_device(name, x)?;
            self.stream
                .clone_dtoh(x)
                .map(Some)
                .map_err(cuda_err("reading per-head values"))
        };
        let (sink, bias) = (
            host(TensorName::Sink, inputs.sink)?,
            host(TensorName::Bias, inputs.bias)?,
        );
        let stream = self.stream.clone();
        let (qp, _qg) = inputs.q.data.device_ptr(&stream);
        let (kp, _kg) = inputs.k.data.device_ptr(&stream);
        let (vp, _vg) = inputs.v.data.device_ptr(&stream);
        let addr = |addr, t: &TensorRef<'_, S>| Addr {
            addr,
            strides: t.strides,
        };
        crate::sink::scores::<T, _>(
            self,
            &dims,
            opts,
            (
                addr(qp, &inputs.q),
                addr(kp, &inputs.k),
                addr(vp, &inputs.v),
            ),
            sink.as_deref(),
            bias.as_deref(),
        )
    }

    /// The attention backward: dQ, dK, dV (summed over the query heads sharing a key head) and
    /// the sink or per-head bias gradient (see [`BackwardOutputs`]). With
    /// [`AttentionOptions::deterministic`] the gradients are bitwise identical run to run.
    /// Its scratch (D, the dQ accumulator, bias partials) is one buffer allocated on the stream;
    /// [`backward_with_workspace`](Self::backward_with_workspace) takes the caller's instead.
    /// Queued on [`stream`](Self::stream).
    ///
    /// # Errors
    /// Every shape, stride, alignment, length and option error of [`Error`], before any launch;
    /// [`Error::DeviceMismatch`] for buffers of another device; [`Error::Cuda`].
    pub fn backward<T, S, O, F, G>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, S, F>,
        outputs: BackwardOutputs<'_, O, G>,
    ) -> Result<()>
    where
        T: Element + DeviceRepr,
        S: DevicePtr<T>,
        O: DevicePtrMut<T>,
        F: DevicePtr<f32>,
        G: DevicePtrMut<f32>,
    {
        let dims = self.check_backward_call(shape, opts, &inputs, &outputs)?;
        let layout = plan::backward_workspace(T::DTYPE, opts, &dims)?.layout();
        // SAFETY: f32 has no invalid bit patterns; backward_in zeroes the dq_accum region before
        // any kernel reads it, and the kernels write every element of the other regions before
        // they read it (the emulator backend starts them as NaN to prove it).
        let mut ws = unsafe { self.stream.alloc::<f32>(layout.len) }
            .map_err(cuda_err("allocating the backward workspace"))?;
        self.backward_in(&dims, opts, &layout, inputs, outputs, &mut ws)
    }

    /// [`backward`](Self::backward) with its scratch in `workspace`, an f32 buffer of at least
    /// [`backward_workspace_len`](crate::backward_workspace_len) elements on this device, 16-byte
    /// aligned (any `cudaMalloc`ed buffer is). Its contents on entry do not matter: the part that
    /// must start at zero is zeroed on the stream. Reusing one workspace across calls saves an
    /// allocation per call and keeps the backward's memory in the caller's hands (a memory pool,
    /// a CUDA graph).
    ///
    /// # Errors
    /// Those of [`backward`](Self::backward); [`Error::WorkspaceTooSmall`],
    /// [`Error::Misaligned`] or [`Error::DeviceMismatch`] naming [`TensorName::Workspace`].
    pub fn backward_with_workspace<T, S, O, F, G, W>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: BackwardInputs<'_, S, F>,
        outputs: BackwardOutputs<'_, O, G>,
        workspace: &mut W,
    ) -> Result<()>
    where
        T: Element + DeviceRepr,
        S: DevicePtr<T>,
        O: DevicePtrMut<T>,
        F: DevicePtr<f32>,
        G: DevicePtrMut<f32>,
        W: DevicePtrMut<f32>,
    {
        let dims = self.check_backward_call(shape, opts, &inputs, &outputs)?;
        self.check_device(TensorName::Workspace, &*workspace)?;
        let layout = workspace_layout::<T>(opts, &dims, workspace.len())?;
        self.backward_in(&dims, opts, &layout, inputs, outputs, workspace)
    }

    /// The checks of a backward call: arguments, then every buffer's device.
    fn check_backward_call<T, S, O, F, G>(
        &self,
        shape: &Shape<'_>,
        opts: &AttentionOptions,
        inputs: &BackwardInputs<'_, S, F>,
        outputs: &BackwardOutputs<'_, O, G>,
    ) -> Result<Dims>
    where
        T: Element + DeviceRepr,
        S: DevicePtr<T>,
        O: DevicePtrMut<T>,
        F: DevicePtr<f32>,
        G: DevicePtrMut<f32>,
    {
        let dims = check_backward(shape, opts, inputs, outputs, lens::<T, S, O, F, G>())?;
        for (name, t) in [
            (TensorName::Q, &inputs.q),
            (TensorName::K, &inputs.k),
            (TensorName::V, &inputs.v),
            (TensorName::O, &inputs.o),
            (TensorName::DO, &inputs.d_o),
        ] {
            self.check_device(name, t.data)?;
        }
        self.check_device(TensorName::DQ, &*outputs.dq.data)?;
        self.check_device(TensorName::DK, &*outputs.dk.data)?;
        self.check_device(TensorName::DV, &*outputs.dv.data)?;
        for (name, t) in [
            (TensorName::RowStat, inputs.row_stat),
            (TensorName::Sink, inputs.sink),
            (TensorName::Bias, inputs.bias),
        ] {
            if let Some(t) = t {
                self.check_device(name, t)?;
            }
        }
        if let Some(d) = &outputs.dsink {
            self.check_device(TensorName::DSink, &**d)?;
        }
        if let Some(d) = &outputs.dbias {
            self.check_device(TensorName::DBias, &**d)?;
        }
        Ok(dims)
    }

    /// The backward's launches on checked arguments, with its scratch laid out in `workspace`
    /// as `layout` says: every error comes before the dQ accumulator's memset and the launches.
    fn backward_in<T, S, O, F, G, W>(
        &self,
        dims: &Dims,
        opts: &AttentionOptions,
        layout: &WorkspaceLayout,
        inputs: BackwardInputs<'_, S, F>,
        outputs: BackwardOutputs<'_, O, G>,
        workspace: &mut W,
    ) -> Result<()>
    where
        T: Element + DeviceRepr,
        S: DevicePtr<T>,
        O: DevicePtrMut<T>,
        F: DevicePtr<f32>,
        G: DevicePtrMut<f32>,
        W: DevicePtrMut<f32>,
    {
        let BackwardOutputs {
            dq,
            dk,
            dv,
            dsink,
            dbias,
        } = outputs;
        let (cu_q, cu_k) = (self.upload_cu(&dims.q.cu)?, self.upload_cu(&dims.k.cu)?);
        let stream = self.stream.clone();
        let (qp, _qg) = inputs.q.data.device_ptr(&stream);
        let (kp, _kg) = inputs.k.data.device_ptr(&stream);
        let (vp, _vg) = inputs.v.data.device_ptr(&stream);
        let (opp, _og) = inputs.o.data.device_ptr(&stream);
        let (dop, _dog) = inputs.d_o.data.device_ptr(&stream);
        let (dq_strides, dk_strides, dv_strides) = (dq.strides, dk.strides, dv.strides);
        let (dqp, _dqg) = dq.data.device_ptr_mut(&stream);
        let (dkp, _dkg) = dk.data.device_ptr_mut(&stream);
        let (dvp, _dvg) = dv.data.device_ptr_mut(&stream);
        let row_stat = inputs.row_stat.map(|r| r.device_ptr(&stream));
        let sink = inputs.sink.map(|s| s.device_ptr(&stream));
        let bias = inputs.bias.map(|b| b.device_ptr(&stream));
        let dsink = dsink.map(|d| d.device_ptr_mut(&stream));
        let dbias = dbias.map(|d| d.device_ptr_mut(&stream));
        let cu_q = cu_q.as_ref().map(|c| c.device_ptr(&stream));
        let cu_k = cu_k.as_ref().map(|c| c.device_ptr(&stream));
        let (wp, _wg) = workspace.device_ptr_mut(&stream);
        let addrs = BackwardAddrs {
            q: Addr {
                addr: qp,
                strides: inputs.q.strides,
            },
            k: Addr {
                addr: kp,
                strides: inputs.k.strides,
            },
            v: Addr {
                addr: vp,
                strides: inputs.v.strides,
            },
            o: Addr {
                addr: opp,
                strides: inputs.o.strides,
            },
            d_o: Addr {
                addr: dop,
                strides: inputs.d_o.strides,
            },
            dq: Addr {
                addr: dqp,
                strides: dq_strides,
            },
            dk: Addr {
                addr: dkp,
                strides: dk_strides,
            },
            dv: Addr {
                addr: dvp,
                strides: dv_strides,
            },
            row_stat: row_stat.as_ref().map(|(p, _)| *p),
            sink: sink.as_ref().map(|(p, _)| *p),
            bias: bias.as_ref().map(|(p, _)| *p),
            dsink: dsink.as_ref().map(|(p, _)| *p),
            dbias: dbias.as_ref().map(|(p, _)| *p),
            cu_seqlens_q: cu_q.as_ref().map(|(p, _)| *p),
            cu_seqlens_k: cu_k.as_ref().map(|(p, _)| *p),
            ws: layout.addrs(wp),
        };
        let launches = plan::attn_backward(T::DTYPE, opts, dims, &addrs)?;
        if !layout.dq_accum.is_empty() {
            let bytes = layout.dq_accum.len() * std::mem::size_of::<f32>();
            self.ctx
                .bind_to_thread()
                .map_err(cuda_err("binding the context"))?;
            // SAFETY: the range lies inside `workspace` (workspace_layout checked its length, or
            // backward allocated exactly layout.len elements), which stays borrowed until the
            // memset is queued; the memset is ordered before the launches on the same stream.
            unsafe {
                cudarc::driver::result::memset_d8_async(
                    addrs.ws.dq_accum,
                    0,
                    bytes,
                    stream.cu_stream(),
                )
            }
            .map_err(cuda_err("zeroing the dQ accumulator"))?;
        }
        launches.iter().try_for_each(|l| self.launch(l))
    }
}

impl crate::sink::ScoreDevice for CudaBackend {
    type Mem = CudaSlice<u8>;
    fn zeroed(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.stream
            .alloc_zeros(bytes.max(1))
            .map_err(cuda_err("allocating sink-score scratch"))
    }
    fn upload(&self, bytes: &[u8]) -> Result<CudaSlice<u8>> {
        self.stream
            .clone_htod(bytes)
            .map_err(cuda_err("copying sink-score inputs"))
    }
    fn addr(&self, m: &CudaSlice<u8>) -> u64 {
        m.device_ptr(&self.stream).0
    }
    fn download(&self, m: &CudaSlice<u8>) -> Result<Vec<u8>> {
        // the copy itself would wait without a limit
        self.synchronize_within(watch::sync_limit())?;
        self.stream
            .clone_dtoh(m)
            .map_err(cuda_err("reading sink scores"))
    }
    fn run(&self, launches: &[Launch]) -> Result<()> {
        launches.iter().try_for_each(|l| self.launch(l))
    }
}
