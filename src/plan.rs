//! From a validated problem to launches: kernel choice, grid, block, shared memory and params.
//!
//! The one piece of launch logic every backend shares. The CUDA backend and the emulator differ
//! only in where the addresses point and how a [`Launch`] is issued, so everything here runs on
//! every CI machine through the emulator.

use crate::config::{Activation, AttentionOptions, DType, KernelVariant, SigmoidBias};
use crate::error::{to_i32, to_i64, to_u32, Error, Result, TensorName};
use crate::ffi;
use crate::kernels::{self, KernelSpec};
use crate::tensor::{check_tensor, row_stat_len, Dims, Strides};
use crate::tma;
use std::ffi::c_void;

/// Largest grid y and z dimension.
const GRID_YZ_MAX: u32 = 65_535;
/// Largest grid x dimension.
const GRID_X_MAX: u32 = i32::MAX as u32;

/// Declares [`Params`], one variant per params struct of `params.h`, with the address the
/// emulator reads and the cudarc marker the CUDA backend needs: adding a kernel family's
/// struct is one line here.
macro_rules! params {
    ($($variant:ident => $ty:ident),* $(,)?) => {
        /// The params struct of one launch. The variants with tensor maps are several times the
        /// size of the rest (three 128-byte maps); one lives per launch, by value, as the
        /// kernel takes it, so the size difference costs nothing worth a box.
        #[derive(Clone, Copy, Debug)]
        #[allow(clippy::large_enum_variant)]
        pub(crate) enum Params {
            $(
                #[doc = concat!("`", stringify!($ty), "`.")]
                $variant(ffi::$ty),
            )*
        }

        impl Params {
            /// Address of the struct, for the emulator (which copies it by value into the kernel).
            pub fn as_ptr(&self) -> *const c_void {
                match self {
                    $(Params::$variant(p) => (p as *const ffi::$ty).cast(),)*
                }
            }

            /// Pushes the struct as the kernel's one argument.
            pub fn push_arg<'a>(&'a self, b: &mut cudarc::driver::LaunchArgs<'a>) {
                use cudarc::driver::PushKernelArg;
                match self {
                    $(Params::$variant(p) => { b.arg(p); })*
                }
            }
        }

        $(
            // SAFETY: plain C data (integers, floats, raw device pointers) that the kernel takes
            // by value; the layout is bindgen's twin of params.h.
            unsafe impl cudarc::driver::DeviceRepr for ffi::$ty {}
        )*
    };
}

params! {
    RowDot => sinkless_rowdot_params,
    AttnFwd => sinkless_attn_fwd_params,
    AttnFwdTma => sinkless_attn_fwd_tma_params,
    AttnBwd => sinkless_attn_bwd_params,
    ConfIndex => sinkless_conf_index_params,
    ConfReduce => sinkless_conf_reduce_params,
    ConfCpAsync => sinkless_conf_cp_async_params,
    ConfLdmatrix => sinkless_conf_ldmatrix_params,
    ConfMma => sinkless_conf_mma_params,
    ConfWgmma => sinkless_conf_wgmma_params,
    ConfTma => sinkless_conf_tma_params,
    ConfShfl => sinkless_conf_shfl_params,
    ConfMath => sinkless_conf_math_params,
    ConfWiden => sinkless_conf_widen_params,
    ConfAtomic => sinkless_conf_atomic_params,
    ConfSpin => sinkless_conf_spin_params,
}

impl Params {
    /// The tensor maps the struct holds (`tma_params.h`), which the CUDA backend re-encodes for
    /// the driver before a launch; none for most kernels.
    pub fn tensor_maps_mut(&mut self) -> Vec<&mut ffi::sinkless_tma_map> {
        match self {
            Params::AttnFwdTma(p) => vec![&mut p.q, &mut p.k, &mut p.v],
            Params::ConfTma(p) => vec![&mut p.map],
            _ => Vec::new(),
        }
    }
}

/// One kernel launch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Launch {
    pub kernel: &'static KernelSpec,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub smem: usize,
    pub params: Params,
}

pub(crate) fn kernel(name: String) -> Result<&'static KernelSpec> {
    kernels::find(&name).ok_or_else(|| not_found(name))
}

/// The error for a kernel this binary lacks: left out of this build, or not one that exists.
fn not_found(name: String) -> Error {
    if kernels::in_full_table(&name) {
        Error::KernelNotBuilt { kernel: name }
    } else {
        Error::Unsupported {
            feature: format!("kernel {name} is not in the instance table"),
        }
    }
}

/// A tensor as the plan sees it: an address and strides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Addr {
    pub addr: u64,
    pub strides: Strides,
}

/// Checks a tensor's base address for the kernels' 16-byte vector loads.
pub(crate) fn check_aligned(tensor: TensorName, addr: u64) -> Result<()> {
    if addr % 16 != 0 {
        return Err(Error::Misaligned { tensor, addr });
    }
    Ok(())
}

/// Checks the operands of [`row_dot`]: two query-shaped tensors and the f32 output.
pub(crate) fn check_row_dot(
    dims: &Dims,
    x: (usize, Strides),
    y: (usize, Strides),
    out_len: usize,
) -> Result<()> {
    check_tensor(TensorName::X, x.0, x.1, dims, &dims.q, dims.heads_q, false)?;
    check_tensor(TensorName::Y, y.0, y.1, dims, &dims.q, dims.heads_q, false)?;
    let needed = row_stat_len(dims);
    if out_len < needed {
        return Err(Error::BufferTooSmall {
            tensor: TensorName::Out,
            needed,
            len: out_len,
        });
    }
    Ok(())
}

/// `out[b, h, i] = sum_d x[b, i, h, d] * y[b, i, h, d]` over the query side of `dims`.
pub(crate) fn row_dot(
    dtype: DType,
    dims: &Dims,
    x: Addr,
    y: Addr,
    out: u64,
    cu_seqlens: Option<u64>,
) -> Result<Launch> {
    check_aligned(TensorName::X, x.addr)?;
    check_aligned(TensorName::Y, y.addr)?;
    let spec = kernel(format!("sinkless_rowdot_{}", dtype.name()))?;
    // Four warps per block, one (row, head) per warp: matches kRowdotWarps in rowdot.cu.
    let warps = (spec.threads / 32) as usize;
    let p = ffi::sinkless_rowdot_params {
        x: x.addr as *const c_void,
        y: y.addr as *const c_void,
        out: out as *mut f32,
        cu_seqlens: cu_seqlens.map_or(std::ptr::null(), |a| a as *const i32),
        x_batch_stride: to_i64("x batch stride", x.strides.batch)?,
        x_row_stride: to_i64("x row stride", x.strides.row)?,
        x_head_stride: to_i64("x head stride", x.strides.head)?,
        y_batch_stride: to_i64("y batch stride", y.strides.batch)?,
        y_row_stride: to_i64("y row stride", y.strides.row)?,
        y_head_stride: to_i64("y head stride", y.strides.head)?,
        batch: to_i32("batch", dims.batch)?,
        seqlen: to_i32("seqlen", dims.q.max_len)?,
        total_rows: to_i32("total rows", dims.q.total)?,
        heads: to_i32("heads", dims.heads_q)?,
        head_dim: to_i32("head_dim", dims.head_dim)?,
    };
    Ok(Launch {
        kernel: spec,
        grid: [
            to_u32(
                "row blocks",
                dims.q.total.div_ceil(warps).max(1),
                GRID_X_MAX,
            )?,
            to_u32("heads", dims.heads_q, GRID_YZ_MAX)?,
            1,
        ],
        block: [spec.threads, 1, 1],
        smem: 0,
        params: Params::RowDot(p),
    })
}

/// Head-dimension buckets the attention kernels are compiled for; a head dim runs in the
/// smallest bucket that holds it, zero-padded inside the kernel.
pub(crate) const HEAD_DIM_BUCKETS: [usize; 6] = [32, 64, 96, 128, 192, 256];

/// The bucket for `head_dim`, or `None` above 256.
fn bucket_of(head_dim: usize) -> Option<usize> {
    HEAD_DIM_BUCKETS.iter().copied().find(|&b| b >= head_dim)
}

/// The bucket for `head_dim` (validated to be at most 256).
pub(crate) fn bucket(head_dim: usize) -> usize {
    bucket_of(head_dim).expect("head_dim checked to be <= 256")
}

/// The activation's part of a kernel name.
fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Softmax { .. } => "softmax",
        Activation::Sigmoid { .. } => "sigmoid",
        Activation::NormalizedSigmoid { .. } => "nsigmoid",
    }
}

/// The sigmoid bias as the kernels take it: (kind, constant value).
fn bias_fields(a: Activation) -> (i32, f32) {
    let bias = match a {
        Activation::Softmax { .. } => return (ffi::SINKLESS_BIAS_CONSTANT as i32, 0.0),
        Activation::Sigmoid { bias } | Activation::NormalizedSigmoid { bias } => bias,
    };
    match bias {
        SigmoidBias::Constant(b) => (ffi::SINKLESS_BIAS_CONSTANT as i32, b),
        SigmoidBias::PerHead => (ffi::SINKLESS_BIAS_PER_HEAD as i32, 0.0),
        SigmoidBias::NegLogSeqlenK => (ffi::SINKLESS_BIAS_NEG_LOG_SK as i32, 0.0),
    }
}

/// A window bound as the kernels take it: -1 for unbounded.
fn window_bound(w: Option<usize>) -> Result<i32> {
    w.map_or(Ok(-1), |w| to_i32("window", w))
}

fn null<T>(a: Option<u64>) -> *const T {
    a.map_or(std::ptr::null(), |a| a as *const T)
}

/// Addresses of a forward call's buffers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ForwardAddrs {
    pub q: Addr,
    pub k: Addr,
    pub v: Addr,
    pub o: Addr,
    pub row_stat: Option<u64>,
    pub cu_seqlens_q: Option<u64>,
    pub cu_seqlens_k: Option<u64>,
    pub sink: Option<u64>,
    pub bias: Option<u64>,
}

/// Checks every tensor base address for the kernels' 16-byte vector loads.
fn check_all_aligned(tensors: &[(TensorName, Addr)]) -> Result<()> {
    tensors
        .iter()
        .try_for_each(|(n, a)| check_aligned(*n, a.addr))
}

/// The forward kernel of an element type, activation, head dim and variant.
pub(crate) fn forward_kernel(
    dtype: DType,
    activation: Activation,
    head_dim: usize,
    variant: KernelVariant,
) -> Result<&'static KernelSpec> {
    let bucket = bucket_of(head_dim).ok_or(Error::UnsupportedHeadDim { head_dim })?;
    let name = format!(
        "sinkless_attn_fwd_{}_{}_hd{bucket}",
        activation_name(activation),
        dtype.name(),
    );
    if variant == KernelVariant::Default {
        return kernel(name);
    }
    variant_kernel(&name, variant, activation, dtype, head_dim)
}

/// The attention forward: one launch of `ceil(seqlen_q / block_m) x heads_q x batch` CTAs.
pub(crate) fn attn_forward(
    dtype: DType,
    opts: &AttentionOptions,
    dims: &Dims,
    a: &ForwardAddrs,
) -> Result<Launch> {
    check_all_aligned(&[
        (TensorName::Q, a.q),
        (TensorName::K, a.k),
        (TensorName::V, a.v),
        (TensorName::O, a.o),
    ])?;
    let spec = forward_kernel(dtype, opts.activation, dims.head_dim, opts.variant)?;
    let geo = spec.geometry().expect("attention kernels declare traits");
    let (bias_kind, bias_value) = bias_fields(opts.activation);
    let p = ffi::sinkless_attn_fwd_params {
        q: a.q.addr as *const c_void,
        k: a.k.addr as *const c_void,
        v: a.v.addr as *const c_void,
        o: a.o.addr as *mut c_void,
        row_stat: a.row_stat.map_or(std::ptr::null_mut(), |r| r as *mut f32),
        cu_seqlens_q: null(a.cu_seqlens_q),
        cu_seqlens_k: null(a.cu_seqlens_k),
        sink: null(a.sink),
        bias: null(a.bias),
        q_batch_stride: to_i64("stride", a.q.strides.batch)?,
        q_row_stride: to_i64("stride", a.q.strides.row)?,
        q_head_stride: to_i64("stride", a.q.strides.head)?,
        k_batch_stride: to_i64("stride", a.k.strides.batch)?,
        k_row_stride: to_i64("stride", a.k.strides.row)?,
        k_head_stride: to_i64("stride", a.k.strides.head)?,
        v_batch_stride: to_i64("stride", a.v.strides.batch)?,
        v_row_stride: to_i64("stride", a.v.strides.row)?,
        v_head_stride: to_i64("stride", a.v.strides.head)?,
        o_batch_stride: to_i64("stride", a.o.strides.batch)?,
        o_row_stride: to_i64("stride", a.o.strides.row)?,
        o_head_stride: to_i64("stride", a.o.strides.head)?,
        batch: to_i32("batch", dims.batch)?,
        seqlen_q: to_i32("seqlen_q", dims.q.max_len)?,
        seqlen_k: to_i32("seqlen_k", dims.k.max_len)?,
        total_q: to_i32("total_q", dims.q.total)?,
        heads_q: to_i32("heads_q", dims.heads_q)?,
        heads_kv: to_i32("heads_kv", dims.heads_kv)?,
        head_dim: to_i32("head_dim", dims.head_dim)?,
        window_left: window_bound(opts.mask.left)?,
        window_right: window_bound(opts.mask.right)?,
        bias_kind,
        bias_value,
        scale: opts.resolved_scale(dims.head_dim),
        block_order: opts.block_order.ffi(),
    };
    let block_m = usize::try_from(geo.block_m).expect("positive tile size");
    let params = if spec.tensor_maps {
        // the warp-specialised kernels copy Q, K and V by tensor maps (attn_params.h)
        let block_n = u32::try_from(geo.block_n).expect("positive tile size");
        let block_m32 = u32::try_from(geo.block_m).expect("positive tile size");
        let rows =
            |t, addr: &Addr, rows, heads, tokens| tma::rows_map(t, addr, dims, rows, heads, tokens);
        Params::AttnFwdTma(ffi::sinkless_attn_fwd_tma_params {
            base: p,
            q: rows(TensorName::Q, &a.q, &dims.q, dims.heads_q, block_m32)?,
            k: rows(TensorName::K, &a.k, &dims.k, dims.heads_kv, block_n)?,
            v: rows(TensorName::V, &a.v, &dims.k, dims.heads_kv, block_n)?,
            ..Default::default()
        })
    } else {
        Params::AttnFwd(p)
    };
    Ok(Launch {
        kernel: spec,
        grid: [
            to_u32(
                "query blocks",
                dims.q.max_len.div_ceil(block_m).max(1),
                GRID_X_MAX,
            )?,
            to_u32("heads_q", dims.heads_q, GRID_YZ_MAX)?,
            to_u32("batch", dims.batch, GRID_YZ_MAX)?,
        ],
        block: [
            u32::try_from(geo.threads).expect("positive thread count"),
            1,
            1,
        ],
        smem: usize::try_from(geo.smem_bytes).expect("positive shared memory"),
        params,
    })
}

/// Addresses of a backward call's buffers and workspace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BackwardAddrs {
    pub q: Addr,
    pub k: Addr,
    pub v: Addr,
    pub o: Addr,
    pub d_o: Addr,
    pub dq: Addr,
    pub dk: Addr,
    pub dv: Addr,
    pub row_stat: Option<u64>,
    pub sink: Option<u64>,
    pub bias: Option<u64>,
    pub dsink: Option<u64>,
    pub dbias: Option<u64>,
    pub cu_seqlens_q: Option<u64>,
    pub cu_seqlens_k: Option<u64>,
    pub ws: WorkspaceAddrs,
}

/// Scratch buffers of the backward, all f32.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkspaceAddrs {
    /// `D = rowsum(dO * O)`, in the row-statistic layout.
    pub row_dot: u64,
    /// dQ accumulator (atomic mode), zeroed by the backend.
    pub dq_accum: u64,
    /// Per-block partial bias gradients (sigmoids).
    pub dbias_partial: u64,
}

/// Sizes, in f32 elements, of the backward's scratch buffers. Zero means "not needed"; the
/// backend allocates at least one element so every address stays valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkspaceSizes {
    pub row_dot: usize,
    /// Must be zeroed before the backward.
    pub dq_accum: usize,
    pub dbias_partial: usize,
}

/// Where each scratch buffer sits in one caller-provided workspace, in f32 elements from its
/// start: `[dq_accum | row_dot | dbias_partial]`, each region at least one element (so its
/// address is valid even where unused) and starting on a 256-byte boundary, as `cudaMalloc`
/// aligns a buffer of its own, so the kernels' 16-byte vector accesses stay aligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkspaceLayout {
    pub dq_accum: std::ops::Range<usize>,
    pub row_dot: usize,
    pub dbias_partial: usize,
    /// Elements the whole workspace needs.
    pub len: usize,
}

/// Region alignment inside a workspace, in f32 elements (256 bytes).
const WORKSPACE_ALIGN: usize = 64;

impl WorkspaceSizes {
    pub(crate) fn layout(&self) -> WorkspaceLayout {
        let region = |n: usize| n.max(1).next_multiple_of(WORKSPACE_ALIGN);
        let row_dot = region(self.dq_accum);
        let dbias_partial = row_dot + region(self.row_dot);
        WorkspaceLayout {
            dq_accum: 0..self.dq_accum,
            row_dot,
            dbias_partial,
            len: dbias_partial + self.dbias_partial.max(1),
        }
    }
}

impl WorkspaceLayout {
    /// The regions' addresses in a workspace starting at `base`.
    pub(crate) fn addrs(&self, base: u64) -> WorkspaceAddrs {
        let at = |off: usize| base + (off * std::mem::size_of::<f32>()) as u64;
        WorkspaceAddrs {
            row_dot: at(self.row_dot),
            dq_accum: at(self.dq_accum.start),
            dbias_partial: at(self.dbias_partial),
        }
    }
}

/// A backward kernel (`kind` is `bwd` or `bwd_dq`): the variant's where it has one of its own
/// (`KernelVariant::own_backward_pass`), else the default.
fn bwd_kernel(
    kind: &str,
    opts: &AttentionOptions,
    dtype: DType,
    dims: &Dims,
) -> Result<&'static KernelSpec> {
    let name = format!(
        "sinkless_attn_{kind}_{}_{}_hd{}",
        activation_name(opts.activation),
        dtype.name(),
        bucket(dims.head_dim)
    );
    if !opts.variant.own_backward_pass(kind) {
        return kernel(name);
    }
    variant_kernel(&name, opts.variant, opts.activation, dtype, dims.head_dim)
}

/// The kernel `name` with `variant`'s suffix, or an error naming the variant.
fn variant_kernel(
    name: &str,
    variant: KernelVariant,
    activation: Activation,
    dtype: DType,
    head_dim: usize,
) -> Result<&'static KernelSpec> {
    let full = format!("{name}_{}", variant.name());
    if kernels::in_full_table(&full) && kernels::find(&full).is_none() {
        return Err(Error::KernelNotBuilt { kernel: full });
    }
    kernels::find(&full).ok_or(Error::Unsupported {
        feature: format!(
            "kernel variant {variant:?} ({}) for {} {} at head dim {head_dim} (each variant is \
             compiled for the cases its KernelVariant documentation lists)",
            variant.name(),
            activation_name(activation),
            dtype.name(),
        ),
    })
}

/// Keys per block of the backward's main pass.
fn key_block(spec: &KernelSpec) -> usize {
    usize::try_from(
        spec.geometry()
            .expect("attention kernels declare traits")
            .block_n,
    )
    .expect("positive")
}

fn n_key_blocks(spec: &KernelSpec, dims: &Dims) -> usize {
    dims.k.max_len.div_ceil(key_block(spec)).max(1)
}

/// dbias partials per key block of the main pass: one per lane of each 16-key warp
/// (`dbias_block_slots` in attn_params.h).
fn dbias_block_slots(spec: &KernelSpec) -> usize {
    2 * key_block(spec)
}

/// What the backward of `opts` on `dims` needs as scratch.
pub(crate) fn backward_workspace(
    dtype: DType,
    opts: &AttentionOptions,
    dims: &Dims,
) -> Result<WorkspaceSizes> {
    let main = bwd_kernel("bwd", opts, dtype, dims)?;
    let a = opts.activation;
    let needs_d = matches!(
        a,
        Activation::Softmax { .. } | Activation::NormalizedSigmoid { .. }
    );
    let sigmoid = !matches!(a, Activation::Softmax { .. });
    Ok(WorkspaceSizes {
        row_dot: if needs_d { row_stat_len(dims) } else { 0 },
        dq_accum: if opts.deterministic {
            0
        } else {
            dims.q.total.max(dims.batch * dims.q.max_len) * dims.heads_q * dims.head_dim
        },
        dbias_partial: if sigmoid {
            dims.heads_q * dims.batch * n_key_blocks(main, dims) * dbias_block_slots(main)
        } else {
            0
        },
    })
}

/// The attention backward's launches, in order: D (softmax, normalized sigmoid), the main pass
/// (dK, dV, and dQ by atomics unless deterministic), then dQ (a conversion of the accumulator, or
/// the deterministic dQ pass) and the per-head reduction of dsink or dbias.
pub(crate) fn attn_backward(
    dtype: DType,
    opts: &AttentionOptions,
    dims: &Dims,
    a: &BackwardAddrs,
) -> Result<Vec<Launch>> {
    check_all_aligned(&[
        (TensorName::Q, a.q),
        (TensorName::K, a.k),
        (TensorName::V, a.v),
        (TensorName::O, a.o),
        (TensorName::DO, a.d_o),
        (TensorName::DQ, a.dq),
        (TensorName::DK, a.dk),
        (TensorName::DV, a.dv),
    ])?;
    for addr in [a.ws.dq_accum, a.ws.row_dot, a.ws.dbias_partial] {
        check_aligned(TensorName::Workspace, addr)?;
    }
    let main = bwd_kernel("bwd", opts, dtype, dims)?;
    let (bias_kind, bias_value) = bias_fields(opts.activation);
    let s = |what, v: usize| to_i64(what, v);
    let p = ffi::sinkless_attn_bwd_params {
        q: a.q.addr as *const c_void,
        k: a.k.addr as *const c_void,
        v: a.v.addr as *const c_void,
        o: a.o.addr as *const c_void,
        dout: a.d_o.addr as *const c_void,
        row_stat: null(a.row_stat),
        row_dot: a.ws.row_dot as *mut f32,
        dq_accum: a.ws.dq_accum as *mut f32,
        dq: a.dq.addr as *mut c_void,
        dk: a.dk.addr as *mut c_void,
        dv: a.dv.addr as *mut c_void,
        dsink: a.dsink.map_or(std::ptr::null_mut(), |p| p as *mut f32),
        dbias_partial: a.ws.dbias_partial as *mut f32,
        dbias: a.dbias.map_or(std::ptr::null_mut(), |p| p as *mut f32),
        cu_seqlens_q: null(a.cu_seqlens_q),
        cu_seqlens_k: null(a.cu_seqlens_k),
        sink: null(a.sink),
        bias: null(a.bias),
        q_batch_stride: s("stride", a.q.strides.batch)?,
        q_row_stride: s("stride", a.q.strides.row)?,
        q_head_stride: s("stride", a.q.strides.head)?,
        k_batch_stride: s("stride", a.k.strides.batch)?,
        k_row_stride: s("stride", a.k.strides.row)?,
        k_head_stride: s("stride", a.k.strides.head)?,
        v_batch_stride: s("stride", a.v.strides.batch)?,
        v_row_stride: s("stride", a.v.strides.row)?,
        v_head_stride: s("stride", a.v.strides.head)?,
        o_batch_stride: s("stride", a.o.strides.batch)?,
        o_row_stride: s("stride", a.o.strides.row)?,
        o_head_stride: s("stride", a.o.strides.head)?,
        do_batch_stride: s("stride", a.d_o.strides.batch)?,
        do_row_stride: s("stride", a.d_o.strides.row)?,
        do_head_stride: s("stride", a.d_o.strides.head)?,
        dq_batch_stride: s("stride", a.dq.strides.batch)?,
        dq_row_stride: s("stride", a.dq.strides.row)?,
        dq_head_stride: s("stride", a.dq.strides.head)?,
        dk_batch_stride: s("stride", a.dk.strides.batch)?,
        dk_row_stride: s("stride", a.dk.strides.row)?,
        dk_head_stride: s("stride", a.dk.strides.head)?,
        dv_batch_stride: s("stride", a.dv.strides.batch)?,
        dv_row_stride: s("stride", a.dv.strides.row)?,
        dv_head_stride: s("stride", a.dv.strides.head)?,
        batch: to_i32("batch", dims.batch)?,
        seqlen_q: to_i32("seqlen_q", dims.q.max_len)?,
        seqlen_k: to_i32("seqlen_k", dims.k.max_len)?,
        total_q: to_i32("total_q", dims.q.total)?,
        heads_q: to_i32("heads_q", dims.heads_q)?,
        heads_kv: to_i32("heads_kv", dims.heads_kv)?,
        head_dim: to_i32("head_dim", dims.head_dim)?,
        window_left: window_bound(opts.mask.left)?,
        window_right: window_bound(opts.mask.right)?,
        bias_kind,
        bias_value,
        scale: opts.resolved_scale(dims.head_dim),
        n_key_blocks: to_i32("key blocks", n_key_blocks(main, dims))?,
        dbias_block_slots: to_i32("dbias slots", dbias_block_slots(main))?,
        deterministic: i32::from(opts.deterministic),
        block_order: opts.block_order.ffi(),
    };
    // Row kernels: one CTA per (block_m query rows, query head, sequence); head kernels: one per head.
    let launch = |spec: &'static KernelSpec, rows: usize, per_row_block: bool| -> Result<Launch> {
        let g = spec.geometry().expect("attention kernels declare traits");
        let block_m = usize::try_from(g.block_m).expect("non-negative");
        let grid = if per_row_block {
            [
                to_u32("blocks", rows.div_ceil(block_m.max(1)).max(1), GRID_X_MAX)?,
                to_u32("heads_q", dims.heads_q, GRID_YZ_MAX)?,
                to_u32("batch", dims.batch, GRID_YZ_MAX)?,
            ]
        } else {
            [to_u32("heads_q", dims.heads_q, GRID_X_MAX)?, 1, 1]
        };
        Ok(Launch {
            kernel: spec,
            grid,
            block: [u32::try_from(g.threads).expect("positive"), 1, 1],
            smem: usize::try_from(g.smem_bytes).expect("non-negative"),
            params: Params::AttnBwd(p),
        })
    };
    let mut launches = Vec::new();
    let act = opts.activation;
    if matches!(
        act,
        Activation::Softmax { .. } | Activation::NormalizedSigmoid { .. }
    ) {
        launches.push(row_dot(
            dtype,
            dims,
            a.d_o,
            a.o,
            a.ws.row_dot,
            a.cu_seqlens_q,
        )?);
    }
    // The main pass: one CTA per (key block, kv head, sequence).
    let g = main.geometry().expect("attention kernels declare traits");
    launches.push(Launch {
        kernel: main,
        grid: [
            to_u32("key blocks", n_key_blocks(main, dims), GRID_X_MAX)?,
            to_u32("heads_kv", dims.heads_kv, GRID_YZ_MAX)?,
            to_u32("batch", dims.batch, GRID_YZ_MAX)?,
        ],
        block: [u32::try_from(g.threads).expect("positive"), 1, 1],
        smem: usize::try_from(g.smem_bytes).expect("non-negative"),
        params: Params::AttnBwd(p),
    });
    if opts.deterministic {
        launches.push(launch(
            bwd_kernel("bwd_dq", opts, dtype, dims)?,
            dims.q.max_len,
            true,
        )?);
    } else {
        launches.push(launch(
            kernel(format!("sinkless_attn_bwd_dq_convert_{}", dtype.name()))?,
            dims.q.max_len,
            true,
        )?);
    }
    // dsink (softmax with sinks) or dbias (a per-head sigmoid bias): each head summed in a fixed order.
    if a.dsink.is_some() || a.dbias.is_some() {
        launches.push(launch(
            kernel(format!(
                "sinkless_attn_bwd_head_reduce_{}",
                activation_name(act)
            ))?,
            0,
            false,
        )?);
    }
    Ok(launches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BlockOrder, Mask};

    /// The options' block order reaches every attention launch's params (the kernels cannot show
    /// it in their results: every order computes the same bits).
    #[test]
    fn block_order_reaches_every_attention_launch() {
        let rows = |n| crate::tensor::Rows {
            max_len: n,
            total: 2 * n,
            cu: None,
        };
        let dims = Dims {
            batch: 2,
            q: rows(300),
            k: rows(290),
            heads_q: 4,
            heads_kv: 2,
            head_dim: 64,
        };
        let at = |i: u64| Addr {
            addr: 1 << 20 | i << 12,
            strides: Strides::contiguous(300, 4, 64),
        };
        for order in [BlockOrder::LongestFirst, BlockOrder::Grid] {
            for deterministic in [false, true] {
                let opts = AttentionOptions::new(Activation::Softmax { sink: false })
                    .with_mask(Mask::CAUSAL)
                    .with_deterministic(deterministic)
                    .with_block_order(order);
                let fwd = attn_forward(
                    DType::BF16,
                    &opts,
                    &dims,
                    &ForwardAddrs {
                        q: at(0),
                        k: at(1),
                        v: at(2),
                        o: at(3),
                        row_stat: Some(at(4).addr),
                        cu_seqlens_q: None,
                        cu_seqlens_k: None,
                        sink: None,
                        bias: None,
                    },
                )
                .unwrap();
                let ws = backward_workspace(DType::BF16, &opts, &dims).unwrap();
                let bwd = attn_backward(
                    DType::BF16,
                    &opts,
                    &dims,
                    &BackwardAddrs {
                        q: at(0),
                        k: at(1),
                        v: at(2),
                        o: at(3),
                        d_o: at(5),
                        dq: at(6),
                        dk: at(7),
                        dv: at(8),
                        row_stat: Some(at(4).addr),
                        sink: None,
                        bias: None,
                        dsink: None,
                        dbias: None,
                        cu_seqlens_q: None,
                        cu_seqlens_k: None,
                        ws: ws.layout().addrs(at(9).addr),
                    },
                )
                .unwrap();
                let mut seen = 0;
                for l in std::iter::once(&fwd).chain(&bwd) {
                    let got = match l.params {
                        Params::AttnFwd(p) => p.block_order,
                        Params::AttnBwd(p) => p.block_order,
                        _ => continue,
                    };
                    assert_eq!(got, order.ffi(), "{} {order:?}", l.kernel.name);
                    seen += 1;
                }
                // the forward, the main pass, then the dQ pass or the dQ conversion
                assert_eq!(seen, 3, "{order:?} deterministic {deterministic}");
            }
        }
    }

    /// `load_rows_async` (gmem.cuh) tests the columns of a row's last 128-byte block alone at
    /// hd 192 and 256: it relies on a head dim leaving less than 64 columns of its bucket unused.
    #[test]
    fn bucket_padding_stays_in_the_last_block() {
        for head_dim in (8..=256).step_by(8) {
            let b = bucket(head_dim);
            assert!(b >= head_dim, "hd {head_dim} in bucket {b}");
            if b % 64 == 0 {
                assert!(
                    b - head_dim < 64,
                    "hd {head_dim} pads bucket {b} past its last 64 columns"
                );
            }
        }
        assert_eq!(bucket_of(264), None);
    }
}
