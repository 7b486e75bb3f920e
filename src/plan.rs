//! From a validated problem to launches: kernel choice, grid, block, shared memory and params.
//!
//! The one piece of launch logic every backend shares. The CUDA backend and the emulator differ
//! only in where the addresses point and how a [`Launch`] is issued, so everything here runs on
//! every CI machine through the emulator.

use crate::config::DType;
use crate::error::{to_i32, to_i64, to_u32, Error, Result, TensorName};
use crate::ffi;
use crate::kernels::{self, KernelSpec};
use crate::tensor::{check_tensor, row_stat_len, Dims, Strides};
use std::ffi::c_void;

/// Largest grid y and z dimension.
const GRID_YZ_MAX: u32 = 65_535;
/// Largest grid x dimension.
const GRID_X_MAX: u32 = i32::MAX as u32;

/// The params struct of one launch.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Params {
    /// `sinkless_rowdot_params`.
    RowDot(ffi::sinkless_rowdot_params),
}

impl Params {
    /// Address of the struct, for the emulator (which copies it by value into the kernel).
    pub fn as_ptr(&self) -> *const c_void {
        match self {
            Params::RowDot(p) => (p as *const ffi::sinkless_rowdot_params).cast(),
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

fn kernel(name: String) -> Result<&'static KernelSpec> {
    kernels::find(&name).ok_or(Error::Unsupported {
        feature: format!("kernel {name} is not in the instance table"),
    })
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
