//! The crate's error type: every failure names the values that caused it.

use std::fmt;

/// Which tensor an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TensorName {
    /// Queries.
    Q,
    /// Keys.
    K,
    /// Values.
    V,
    /// Attention output.
    O,
    /// Gradient of the output.
    DO,
    /// Gradient of the queries.
    DQ,
    /// Gradient of the keys.
    DK,
    /// Gradient of the values.
    DV,
    /// Per-row statistic: the log-sum-exp (softmax) or the row sum of sigmoids (normalized sigmoid).
    RowStat,
    /// Per-head sink logits.
    Sink,
    /// Gradient of the sink logits.
    DSink,
    /// Per-head sigmoid bias.
    Bias,
    /// Gradient of the per-head sigmoid bias.
    DBias,
    /// First operand of a row-wise dot product.
    X,
    /// Second operand of a row-wise dot product.
    Y,
    /// Output of a row-wise dot product.
    Out,
    /// Cumulative query sequence lengths.
    CuSeqlensQ,
    /// Cumulative key sequence lengths.
    CuSeqlensK,
    /// The backward's caller-provided scratch buffer.
    Workspace,
    /// The stream a backend is made for ([`CudaBackend::on_stream`](crate::CudaBackend::on_stream)).
    Stream,
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            TensorName::Q => "q",
            TensorName::K => "k",
            TensorName::V => "v",
            TensorName::O => "o",
            TensorName::DO => "do",
            TensorName::DQ => "dq",
            TensorName::DK => "dk",
            TensorName::DV => "dv",
            TensorName::RowStat => "row_stat",
            TensorName::Sink => "sink",
            TensorName::DSink => "dsink",
            TensorName::Bias => "bias",
            TensorName::DBias => "dbias",
            TensorName::X => "x",
            TensorName::Y => "y",
            TensorName::Out => "out",
            TensorName::CuSeqlensQ => "cu_seqlens_q",
            TensorName::CuSeqlensK => "cu_seqlens_k",
            TensorName::Workspace => "workspace",
            TensorName::Stream => "stream",
        };
        f.write_str(s)
    }
}

/// Everything that can go wrong, each variant carrying the offending values.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A size that must be positive is zero.
    ZeroSize {
        /// What was zero (`"batch"`, `"heads_q"`, ...).
        what: &'static str,
    },
    /// A buffer is too short for the shape and strides it was given.
    BufferTooSmall {
        /// The tensor.
        tensor: TensorName,
        /// Elements the shape and strides reach.
        needed: usize,
        /// Elements the buffer holds.
        len: usize,
    },
    /// The backward's workspace holds fewer f32 elements than
    /// [`backward_workspace_len`](crate::backward_workspace_len) asks for this call.
    WorkspaceTooSmall {
        /// Elements the call needs.
        needed: usize,
        /// Elements the buffer holds.
        len: usize,
    },
    /// The kernel a call needs exists but this build left it out (`SINKLESS_HEAD_DIMS`,
    /// `SINKLESS_VARIANTS` at build time; [`built_kernels`](crate::built_kernels) says what is in).
    KernelNotBuilt {
        /// The kernel's name.
        kernel: String,
    },
    /// A stride makes rows or heads overlap, or is not the contiguous one where required.
    BadStride {
        /// The tensor.
        tensor: TensorName,
        /// Which stride (`"row"`, `"head"`, `"batch"`).
        which: &'static str,
        /// The stride given, in elements.
        got: usize,
        /// The smallest stride that is valid.
        min: usize,
    },
    /// A tensor's data does not start on the 16-byte boundary the kernels load at.
    Misaligned {
        /// The tensor.
        tensor: TensorName,
        /// Its address.
        addr: u64,
    },
    /// A stride is not a multiple of 8 elements (16 bytes), which the vector loads need.
    StrideNotAligned {
        /// The tensor.
        tensor: TensorName,
        /// Which stride.
        which: &'static str,
        /// The stride given, in elements.
        got: usize,
    },
    /// `heads_q` is not a multiple of `heads_kv`.
    HeadsNotDivisible {
        /// Query heads.
        heads_q: usize,
        /// Key/value heads.
        heads_kv: usize,
    },
    /// The head dimension is not a multiple of 8 in `8..=256`.
    UnsupportedHeadDim {
        /// The head dimension given.
        head_dim: usize,
    },
    /// The element type is not supported by this operation.
    UnsupportedDType {
        /// The type's name.
        dtype: &'static str,
    },
    /// A feature combination has no kernel.
    Unsupported {
        /// What is missing.
        feature: String,
    },
    /// A per-head vector has the wrong length.
    WrongLength {
        /// The tensor.
        tensor: TensorName,
        /// Expected length.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A per-head vector is required by the options but was not given, or given but unused.
    PerHeadMismatch {
        /// The tensor.
        tensor: TensorName,
        /// Whether the options require it.
        required: bool,
    },
    /// `cu_seqlens` has fewer than two entries or the two arrays differ in length.
    CuSeqlensLength {
        /// The array.
        tensor: TensorName,
        /// Its length.
        len: usize,
        /// The expected length (`batch + 1`), when known.
        expected: Option<usize>,
    },
    /// `cu_seqlens` does not start at 0 or decreases.
    CuSeqlensNotMonotonic {
        /// The array.
        tensor: TensorName,
        /// First index where `cu[index] < cu[index - 1]` (or `cu[0] != 0` at index 0).
        index: usize,
        /// The value there.
        value: i32,
    },
    /// `cu_seqlens`' last entry exceeds the rows the tensor holds.
    CuSeqlensOutOfRange {
        /// The array.
        tensor: TensorName,
        /// Its last entry.
        total: usize,
        /// Rows available.
        rows: usize,
    },
    /// A size or offset exceeds the kernels' index types (`i32` sizes, `i64` offsets).
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// Its value.
        value: u128,
        /// The largest allowed.
        max: u128,
    },
    /// The scale is not finite and positive, or a window or bias value is invalid.
    BadOption {
        /// Which option.
        option: &'static str,
        /// Its value, printed.
        value: String,
    },
    /// Two buffers live on different devices.
    DeviceMismatch {
        /// The tensor on the other device.
        tensor: TensorName,
        /// The backend's device ordinal.
        expected: usize,
        /// The tensor's device ordinal.
        got: usize,
    },
    /// No CUDA driver library could be loaded on this machine.
    DriverMissing,
    /// The driver is present but there is no GPU (or the requested ordinal does not exist).
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices found.
        count: usize,
    },
    /// The crate was built without nvcc, so it has no GPU kernels.
    KernelsNotCompiled,
    /// The GPU's architecture has no code in the fatbin.
    UnsupportedGpu {
        /// Compute capability major.
        major: i32,
        /// Compute capability minor.
        minor: i32,
    },
    /// A CUDA driver call failed.
    Cuda {
        /// What the crate was doing.
        during: &'static str,
        /// The driver's message.
        message: String,
    },
    /// The GPU did not finish its queued work within the time a waiting call allowed
    /// ([`CudaBackend::synchronize_within`](crate::CudaBackend::synchronize_within)): most likely
    /// a kernel that hangs. The work stays queued, so every later call on this context waits
    /// behind it until the process exits.
    GpuTimeout {
        /// How long the call waited, in milliseconds.
        waited_ms: u64,
        /// The first launch that had not ended, the one the rest waited behind; known when the
        /// backend tracks its launches ([`CudaBackend::track_launches`](crate::CudaBackend::track_launches)).
        running: Option<String>,
        /// Every kernel launched on the stream since its last completed wait, each once, in
        /// launch order.
        kernels: Vec<String>,
    },
    /// The kernel a call needs is on this process's skip list (`SINKLESS_SKIP_KERNELS`, names
    /// separated by commas), which the GPU run sets for kernels that hung earlier.
    KernelSkipped {
        /// The kernel's name.
        kernel: String,
    },
    /// The emulator reported a failure (bad launch, deadlock, out-of-bounds access).
    Emulator {
        /// The kernel.
        kernel: String,
        /// The emulator's error code.
        code: i32,
        /// The emulator's message.
        message: String,
    },
    /// A launch asks for more shared memory than the target allows.
    SharedMemory {
        /// The kernel.
        kernel: String,
        /// Bytes requested.
        requested: usize,
        /// Bytes the target allows.
        limit: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroSize { what } => write!(f, "{what} must be positive, got 0"),
            Error::BufferTooSmall { tensor, needed, len } => {
                write!(f, "{tensor}: shape and strides reach {needed} elements, buffer holds {len}")
            }
            Error::WorkspaceTooSmall { needed, len } => {
                write!(f, "workspace: this backward needs {needed} f32 elements (backward_workspace_len), buffer holds {len}")
            }
            Error::KernelNotBuilt { kernel } => {
                let b = crate::built_kernels();
                write!(
                    f,
                    "kernel {kernel} is not in this build, which holds head-dim buckets {:?} and {} \
                     (rebuild with its bucket in SINKLESS_HEAD_DIMS{}, or with neither variable set)",
                    b.head_dims,
                    if b.variants { "the kernel variants" } else { "no kernel variant" },
                    if b.variants { "" } else { " and SINKLESS_VARIANTS=1" },
                )
            }
            Error::BadStride { tensor, which, got, min } => {
                write!(f, "{tensor}: {which} stride {got} is below the minimum {min} (rows or heads would overlap)")
            }
            Error::Misaligned { tensor, addr } => {
                write!(f, "{tensor}: data at {addr:#x} is not 16-byte aligned")
            }
            Error::StrideNotAligned { tensor, which, got } => {
                write!(f, "{tensor}: {which} stride {got} is not a multiple of 8 elements")
            }
            Error::HeadsNotDivisible { heads_q, heads_kv } => {
                write!(f, "heads_q ({heads_q}) is not a multiple of heads_kv ({heads_kv})")
            }
            Error::UnsupportedHeadDim { head_dim } => {
                write!(f, "head_dim {head_dim} is unsupported: it must be a multiple of 8 in 8..=256")
            }
            Error::UnsupportedDType { dtype } => write!(f, "element type {dtype} is unsupported here"),
            Error::Unsupported { feature } => write!(f, "unsupported: {feature}"),
            Error::WrongLength { tensor, expected, got } => {
                write!(f, "{tensor}: expected {expected} elements, got {got}")
            }
            Error::PerHeadMismatch { tensor, required: true } => {
                write!(f, "{tensor}: the options require this per-head tensor, but none was given")
            }
            Error::PerHeadMismatch { tensor, required: false } => {
                write!(f, "{tensor}: given, but the options do not use it")
            }
            Error::CuSeqlensLength { tensor, len, expected } => match expected {
                Some(e) => write!(f, "{tensor}: length {len}, expected {e} (batch + 1)"),
                None => write!(f, "{tensor}: length {len}, need at least 2 (batch + 1)"),
            },
            Error::CuSeqlensNotMonotonic { tensor, index, value } => {
                write!(f, "{tensor}: entry {index} = {value} breaks the rule cu[0] = 0, cu[i] >= cu[i-1]")
            }
            Error::CuSeqlensOutOfRange { tensor, total, rows } => {
                write!(f, "{tensor}: last entry {total} exceeds the {rows} rows of the tensor")
            }
            Error::TooLarge { what, value, max } => {
                write!(f, "{what} = {value} exceeds the kernels' limit {max}")
            }
            Error::BadOption { option, value } => write!(f, "invalid {option}: {value}"),
            Error::DeviceMismatch { tensor, expected, got } => {
                write!(f, "{tensor}: on device {got}, the backend runs on device {expected}")
            }
            Error::DriverMissing => f.write_str(
                "no CUDA driver library (libcuda) could be loaded: install the NVIDIA driver, or use the emulator backend",
            ),
            Error::NoDevice { ordinal, count } => {
                write!(f, "CUDA device {ordinal} requested, {count} found")
            }
            Error::KernelsNotCompiled => f.write_str(
                "this build has no GPU kernels (nvcc was not found at build time): run `bash scripts/install-toolchain.sh` and rebuild, or set NVCC/CUDA_HOME",
            ),
            Error::UnsupportedGpu { major, minor } => {
                write!(f, "GPU compute capability {major}.{minor} is unsupported: the kernels need sm_80 or newer")
            }
            Error::Cuda { during, message } => write!(f, "CUDA error while {during}: {message}"),
            Error::GpuTimeout { waited_ms, running, kernels } => {
                write!(f, "the GPU had not finished after {:.1} s", *waited_ms as f64 / 1e3)?;
                if let Some(k) = running {
                    write!(f, "; kernel {k} did not end")?;
                }
                write!(
                    f,
                    "; kernels queued since the last wait: {} (a hang? every later call on this \
                     context waits behind it)",
                    if kernels.is_empty() { "none".to_string() } else { kernels.join(", ") }
                )
            }
            Error::KernelSkipped { kernel } => {
                write!(f, "kernel {kernel} skipped: SINKLESS_SKIP_KERNELS names it (it hung in an earlier run)")
            }
            Error::Emulator { kernel, code, message } => {
                write!(f, "emulator error {code} in {kernel}: {message}")
            }
            Error::SharedMemory { kernel, requested, limit } => {
                write!(f, "{kernel}: needs {requested} bytes of shared memory, the target allows {limit}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Converts a size to `i32` for a kernel parameter, or names it in a [`Error::TooLarge`].
pub(crate) fn to_i32(what: &'static str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::TooLarge {
        what,
        value: value as u128,
        max: i32::MAX as u128,
    })
}

/// Converts a stride or offset to `i64`, or names it in a [`Error::TooLarge`].
pub(crate) fn to_i64(what: &'static str, value: usize) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::TooLarge {
        what,
        value: value as u128,
        max: i64::MAX as u128,
    })
}

/// Converts a grid dimension to `u32`, or names it in a [`Error::TooLarge`].
pub(crate) fn to_u32(what: &'static str, value: usize, max: u32) -> Result<u32> {
    match u32::try_from(value) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(Error::TooLarge {
            what,
            value: value as u128,
            max: max as u128,
        }),
    }
}
