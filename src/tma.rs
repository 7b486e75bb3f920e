//! Tensor maps for the kernels that copy tiles with Hopper's tensor memory accelerator
//! (`kernels/include/sinkless/tma_params.h`).
//!
//! The plan writes each map as a [`ffi::sinkless_tma_desc`], the map in plain numbers, into the
//! 128 bytes the kernel's params struct reserves for it. The emulator reads that as it is; the
//! CUDA backend re-encodes it in place into the driver's `CUtensorMap` ([`encode_for_driver`])
//! just before the launch, with the choices every kernel here makes: 16-bit elements, the
//! 128-byte swizzle, zeros outside the tensor, no interleave, element strides of 1.

use crate::error::{Error, Result, TensorName};
use crate::ffi;
use crate::plan::Addr;
use crate::tensor::{Dims, Rows};
use std::ffi::c_void;

/// Bytes of one element: every map is over f16 or bf16.
const ELEM: u64 = 2;

/// The map of a `rank`-dimensional box copy (innermost dimension first; `strides[i]` is the
/// byte step of dimension `i + 1`).
pub(crate) fn map(
    base: u64,
    dims: &[u64],
    strides: &[u64],
    boxed: &[u32],
) -> ffi::sinkless_tma_map {
    let rank = dims.len();
    assert!(
        (1..=5).contains(&rank) && strides.len() + 1 == rank && boxed.len() == rank,
        "a tensor map of rank 1 to 5"
    );
    let mut d = ffi::sinkless_tma_desc {
        base: base as *const c_void,
        rank: rank as u32,
        ..Default::default()
    };
    d.dims[..rank].copy_from_slice(dims);
    d.strides[..rank - 1].copy_from_slice(strides);
    d.box_[..rank].copy_from_slice(boxed);
    let mut m = ffi::sinkless_tma_map::default();
    const _: () = assert!(
        std::mem::size_of::<ffi::sinkless_tma_desc>()
            <= std::mem::size_of::<ffi::sinkless_tma_map>()
    );
    // SAFETY: both are plain data, the description fits in the map (checked above), and the map
    // is the more aligned of the two.
    unsafe {
        std::ptr::write(
            (&mut m as *mut ffi::sinkless_tma_map).cast::<ffi::sinkless_tma_desc>(),
            d,
        )
    };
    m
}

/// The description a map was made from by [`map`].
pub(crate) fn desc(m: &ffi::sinkless_tma_map) -> ffi::sinkless_tma_desc {
    // SAFETY: maps are written by `map`, whose first bytes are a description.
    unsafe { std::ptr::read((m as *const ffi::sinkless_tma_map).cast::<ffi::sinkless_tma_desc>()) }
}

/// The attention kernels' map of q, k or v (`sinkless_attn_fwd_tma_params`): the tensor as
/// (head_dim, token, head, batch), or (head_dim, token, head, 1) with the packed tokens under
/// varlen; boxes of 64 columns by `tokens` tokens of one head.
///
/// # Errors
/// [`Error::Unsupported`] for a stride of 0 along a dimension with more than one index, which
/// the tensor copies cannot express.
pub(crate) fn rows_map(
    tensor: TensorName,
    t: &Addr,
    dims: &Dims,
    rows: &Rows,
    heads: usize,
    tokens: u32,
) -> Result<ffi::sinkless_tma_map> {
    let (token_count, batch) = if dims.varlen() {
        (rows.total, 1)
    } else {
        (rows.max_len, dims.batch)
    };
    let extents = [
        (token_count, t.strides.row, "row"),
        (heads, t.strides.head, "head"),
        (batch, t.strides.batch, "batch"),
    ];
    let mut strides = [0u64; 3];
    for (i, &(extent, stride, which)) in extents.iter().enumerate() {
        if extent > 1 && stride == 0 {
            return Err(Error::Unsupported {
                feature: format!(
                    "tensor copies of {tensor} with a {which} stride of 0 (the wgmma_ws kernels)"
                ),
            });
        }
        // a dimension of one index never steps: any legal stride does
        let s = if extent > 1 {
            stride
        } else {
            t.strides.row.max(8)
        };
        strides[i] = s as u64 * ELEM;
    }
    // a tensor map has no empty dimension; with no tokens no block copies anything
    let dim = |n: usize| n.max(1) as u64;
    Ok(map(
        t.addr,
        &[
            dims.head_dim as u64,
            dim(token_count),
            dim(heads),
            dim(batch),
        ],
        &strides,
        &[64, tokens, 1, 1],
    ))
}

/// Re-encodes a map written by [`map`] in place as the driver's `CUtensorMap`.
///
/// # Errors
/// [`Error::Cuda`] when the driver refuses it, with the map's numbers.
pub(crate) fn encode_for_driver(m: &mut ffi::sinkless_tma_map) -> Result<()> {
    use cudarc::driver::sys;
    let d = desc(m);
    let mut t = sys::CUtensorMap { opaque: [0; 16] };
    let element_strides = [1u32; 5];
    // SAFETY: every pointer is to a live local array of at least `rank` elements, and `t` is a
    // CUtensorMap the driver writes.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut t,
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_UINT16,
            d.rank,
            d.base as *mut c_void,
            d.dims.as_ptr(),
            d.strides.as_ptr(),
            d.box_.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    if r != sys::CUresult::CUDA_SUCCESS {
        let rank = d.rank as usize;
        return Err(Error::Cuda {
            during: "encoding a tensor map",
            message: format!(
                "{r:?} for dims {:?}, byte strides {:?}, box {:?} at {:p}",
                &d.dims[..rank],
                &d.strides[..rank - 1],
                &d.box_[..rank],
                d.base
            ),
        });
    }
    m.opaque = t.opaque;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_holds_its_description() {
        let m = map(0x1000, &[40, 13, 3, 2], &[96, 1248, 3744], &[64, 8, 2, 1]);
        let d = desc(&m);
        assert_eq!(d.base as u64, 0x1000);
        assert_eq!(d.rank, 4);
        assert_eq!(d.dims, [40, 13, 3, 2, 0]);
        assert_eq!(d.strides, [96, 1248, 3744, 0]);
        assert_eq!(d.box_, [64, 8, 2, 1, 0]);
    }
}
