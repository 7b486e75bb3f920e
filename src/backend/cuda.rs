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

use crate::config::Element;
use crate::error::{Error, Result, TensorName};
use crate::ffi;
use crate::plan::{self, Addr, Launch, Params};
use crate::tensor::{check_shape, Shape, TensorRef};
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr,
    DeviceSlice, DriverError, LaunchConfig, PushKernelArg,
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

/// Per kernel and target: registers, shared memory, spills and SASS instruction counts, as
/// tab-separated text (see `sinkless info`).
pub const KERNEL_REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/kernel_report.txt"));

// SAFETY: the params structs are plain C data (integers, floats, raw device pointers) that the
// kernels take by value; their layout is bindgen's twin of params.h.
unsafe impl DeviceRepr for ffi::sinkless_rowdot_params {}

fn cuda_err(during: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| Error::Cuda {
        during,
        message: format!("{e:?}"),
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

/// The CUDA backend: one device, one stream, the embedded kernels.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    compute_capability: (i32, i32),
    max_smem_optin: usize,
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
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(fatbin.to_vec()))
            .map_err(cuda_err("loading the embedded fatbin"))?;
        let optin = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .map_err(cuda_err("reading the shared-memory limit"))?;
        let stream = ctx.default_stream();
        Ok(CudaBackend {
            ctx,
            stream,
            module,
            functions: Mutex::new(HashMap::new()),
            compute_capability: (major, minor),
            max_smem_optin: usize::try_from(optin).unwrap_or(0),
        })
    }

    /// The stream every operation is queued on; allocate and copy buffers through it.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
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

    fn function(&self, name: &'static str) -> Result<CudaFunction> {
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(name) {
            return Ok(f.clone());
        }
        let f = self
            .module
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
        if l.smem > self.max_smem_optin {
            return Err(Error::SharedMemory {
                kernel: l.kernel.name.into(),
                requested: l.smem,
                limit: self.max_smem_optin,
            });
        }
        let f = self.function(l.kernel.name)?;
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
        let mut builder = self.stream.launch_builder(&f);
        match &l.params {
            Params::RowDot(p) => builder.arg(p),
        };
        // SAFETY: the plan checked every tensor's extent against its buffer's length, and the
        // caller holds the buffers (and their cudarc event guards) until this call returns.
        unsafe { builder.launch(cfg) }.map_err(cuda_err("launching a kernel"))?;
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
        let cu = match &dims.q.cu {
            Some(cu) => Some(
                self.stream
                    .clone_htod(cu)
                    .map_err(cuda_err("copying cu_seqlens"))?,
            ),
            None => None,
        };
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
}
