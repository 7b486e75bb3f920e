//! Views of tensors in the bshd layout, and the shape checks every operation runs before a launch.
//!
//! A tensor is a buffer (a device slice, or an emulator [`HostBuffer`](crate::HostBuffer)) with
//! strides; its shape comes from the operation's [`Shape`]. The last dimension is contiguous, the
//! others are free, so a slice of a packed `qkv` tensor is a valid view without a copy:
//!
//! ```
//! use sinkless::{Shape, Strides};
//! // q, k and v interleaved as [batch, seqlen, 3, heads, head_dim]: each is a view with
//! // row stride 3 * heads * head_dim.
//! let (heads, d) = (8, 64);
//! let q = Strides { batch: 1024 * 3 * heads * d, row: 3 * heads * d, head: d };
//! let shape = Shape::dense(2, 1024, 1024, heads, heads, d);
//! assert_eq!(shape.heads_q, 8);
//! # let _ = q;
//! ```

use crate::error::{to_i32, to_i64, Error, Result, TensorName};

/// Strides in elements of a `[batch, rows, heads, head_dim]` tensor (the last dimension is
/// contiguous). `batch` is unused for varlen tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    /// Elements between batches.
    pub batch: usize,
    /// Elements between rows (tokens).
    pub row: usize,
    /// Elements between heads.
    pub head: usize,
}

impl Strides {
    /// Strides of a contiguous `[batch, rows, heads, head_dim]` tensor.
    pub fn contiguous(rows: usize, heads: usize, head_dim: usize) -> Strides {
        Strides {
            batch: rows * heads * head_dim,
            row: heads * head_dim,
            head: head_dim,
        }
    }
}

/// A read-only tensor view: a buffer and its strides.
#[derive(Debug)]
pub struct TensorRef<'a, S: ?Sized> {
    /// The elements.
    pub data: &'a S,
    /// The strides.
    pub strides: Strides,
}

impl<S: ?Sized> Clone for TensorRef<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for TensorRef<'_, S> {}

/// A writable tensor view.
#[derive(Debug)]
pub struct TensorMut<'a, S: ?Sized> {
    /// The elements.
    pub data: &'a mut S,
    /// The strides.
    pub strides: Strides,
}

/// Sequence lengths: a dense batch, or packed variable-length sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seqlens<'a> {
    /// `batch` sequences of `seqlen_q` queries and `seqlen_k` keys each.
    Dense {
        /// Number of sequences.
        batch: usize,
        /// Queries per sequence.
        seqlen_q: usize,
        /// Keys per sequence.
        seqlen_k: usize,
    },
    /// Sequences packed along one token axis; `cu[b]..cu[b + 1]` are sequence `b`'s rows.
    Varlen {
        /// Query prefix sums, `[batch + 1]`, starting at 0.
        cu_seqlens_q: &'a [i32],
        /// Key prefix sums, `[batch + 1]`, starting at 0.
        cu_seqlens_k: &'a [i32],
    },
}

/// The shape of an attention problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape<'a> {
    /// Sequence lengths.
    pub seqlens: Seqlens<'a>,
    /// Query heads.
    pub heads_q: usize,
    /// Key/value heads (`heads_q % heads_kv == 0`).
    pub heads_kv: usize,
    /// Head dimension (a multiple of 8 up to 256).
    pub head_dim: usize,
}

impl<'a> Shape<'a> {
    /// A dense batch.
    pub fn dense(
        batch: usize,
        seqlen_q: usize,
        seqlen_k: usize,
        heads_q: usize,
        heads_kv: usize,
        head_dim: usize,
    ) -> Self {
        Shape {
            seqlens: Seqlens::Dense {
                batch,
                seqlen_q,
                seqlen_k,
            },
            heads_q,
            heads_kv,
            head_dim,
        }
    }

    /// Packed variable-length sequences.
    pub fn varlen(
        cu_seqlens_q: &'a [i32],
        cu_seqlens_k: &'a [i32],
        heads_q: usize,
        heads_kv: usize,
        head_dim: usize,
    ) -> Self {
        Shape {
            seqlens: Seqlens::Varlen {
                cu_seqlens_q,
                cu_seqlens_k,
            },
            heads_q,
            heads_kv,
            head_dim,
        }
    }
}

/// Row layout of one side (queries or keys) after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rows {
    /// Longest sequence.
    pub max_len: usize,
    /// Rows in all: `batch * seqlen` dense, `cu[batch]` varlen.
    pub total: usize,
    /// The prefix sums, for varlen.
    pub cu: Option<Vec<i32>>,
}

/// A validated shape, with every size known to fit the kernels' index types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dims {
    pub batch: usize,
    pub q: Rows,
    pub k: Rows,
    pub heads_q: usize,
    pub heads_kv: usize,
    pub head_dim: usize,
}

impl Dims {
    pub fn varlen(&self) -> bool {
        self.q.cu.is_some()
    }
}

fn check_cu(tensor: TensorName, cu: &[i32], expected_len: Option<usize>) -> Result<Rows> {
    if cu.len() < 2 || expected_len.is_some_and(|e| e != cu.len()) {
        return Err(Error::CuSeqlensLength {
            tensor,
            len: cu.len(),
            expected: expected_len,
        });
    }
    if cu[0] != 0 {
        return Err(Error::CuSeqlensNotMonotonic {
            tensor,
            index: 0,
            value: cu[0],
        });
    }
    let mut max_len = 0;
    for i in 1..cu.len() {
        if cu[i] < cu[i - 1] {
            return Err(Error::CuSeqlensNotMonotonic {
                tensor,
                index: i,
                value: cu[i],
            });
        }
        max_len = max_len.max((cu[i] - cu[i - 1]) as usize);
    }
    Ok(Rows {
        max_len,
        total: cu[cu.len() - 1] as usize,
        cu: Some(cu.to_vec()),
    })
}

/// Checks a shape on its own (no tensors yet).
pub(crate) fn check_shape(shape: &Shape<'_>) -> Result<Dims> {
    for (what, v) in [
        ("heads_q", shape.heads_q),
        ("heads_kv", shape.heads_kv),
        ("head_dim", shape.head_dim),
    ] {
        if v == 0 {
            return Err(Error::ZeroSize { what });
        }
    }
    if shape.heads_q % shape.heads_kv != 0 {
        return Err(Error::HeadsNotDivisible {
            heads_q: shape.heads_q,
            heads_kv: shape.heads_kv,
        });
    }
    if shape.head_dim % 8 != 0 || shape.head_dim > 256 {
        return Err(Error::UnsupportedHeadDim {
            head_dim: shape.head_dim,
        });
    }
    let (batch, q, k) = match shape.seqlens {
        Seqlens::Dense {
            batch,
            seqlen_q,
            seqlen_k,
        } => {
            for (what, v) in [
                ("batch", batch),
                ("seqlen_q", seqlen_q),
                ("seqlen_k", seqlen_k),
            ] {
                if v == 0 {
                    return Err(Error::ZeroSize { what });
                }
            }
            let total = |what, n: usize| {
                n.checked_mul(batch).ok_or(Error::TooLarge {
                    what,
                    value: n as u128 * batch as u128,
                    max: i32::MAX as u128,
                })
            };
            let q = Rows {
                max_len: seqlen_q,
                total: total("batch * seqlen_q", seqlen_q)?,
                cu: None,
            };
            let k = Rows {
                max_len: seqlen_k,
                total: total("batch * seqlen_k", seqlen_k)?,
                cu: None,
            };
            (batch, q, k)
        }
        Seqlens::Varlen {
            cu_seqlens_q,
            cu_seqlens_k,
        } => {
            let q = check_cu(TensorName::CuSeqlensQ, cu_seqlens_q, None)?;
            let k = check_cu(
                TensorName::CuSeqlensK,
                cu_seqlens_k,
                Some(cu_seqlens_q.len()),
            )?;
            (cu_seqlens_q.len() - 1, q, k)
        }
    };
    to_i32("batch", batch)?;
    to_i32("total query rows", q.total)?;
    to_i32("total key rows", k.total)?;
    to_i32("heads_q", shape.heads_q)?;
    // Row statistics (LSE, D) are indexed [batch, heads, seqlen] in i32-sized blocks too.
    to_i32(
        "heads_q * total query rows",
        shape.heads_q.saturating_mul(q.total.max(batch * q.max_len)),
    )?;
    Ok(Dims {
        batch,
        q,
        k,
        heads_q: shape.heads_q,
        heads_kv: shape.heads_kv,
        head_dim: shape.head_dim,
    })
}

/// Checks one `[batch, rows, heads, head_dim]` tensor against its buffer length. Outputs must not
/// overlap themselves; inputs may (a broadcast view is fine to read).
pub(crate) fn check_tensor(
    tensor: TensorName,
    len: usize,
    strides: Strides,
    dims: &Dims,
    rows: &Rows,
    heads: usize,
    output: bool,
) -> Result<()> {
    let d = dims.head_dim;
    for (which, s) in [
        ("row", strides.row),
        ("head", strides.head),
        ("batch", strides.batch),
    ] {
        if which == "batch" && rows.cu.is_some() {
            continue;
        }
        if s % 8 != 0 {
            return Err(Error::StrideNotAligned {
                tensor,
                which,
                got: s,
            });
        }
        to_i64("stride", s)?;
    }
    if output {
        // Sort the (extent, stride) pairs by stride; each stride must clear the span of the inner ones.
        let mut dimsv = vec![
            (heads, strides.head, "head"),
            (
                if rows.cu.is_some() {
                    rows.total
                } else {
                    rows.max_len
                },
                strides.row,
                "row",
            ),
        ];
        if rows.cu.is_none() {
            dimsv.push((dims.batch, strides.batch, "batch"));
        }
        dimsv.sort_by_key(|&(_, s, _)| s);
        let mut span = d;
        for (extent, stride, which) in dimsv {
            if extent > 1 && stride < span {
                return Err(Error::BadStride {
                    tensor,
                    which,
                    got: stride,
                    min: span,
                });
            }
            if extent > 1 {
                span += stride * (extent - 1);
            }
        }
    }
    let reach = |n: usize, s: usize| (n.saturating_sub(1) as u128) * s as u128;
    let needed = if rows.cu.is_some() {
        if rows.total == 0 {
            return Ok(());
        }
        reach(rows.total, strides.row) + reach(heads, strides.head) + d as u128
    } else {
        reach(dims.batch, strides.batch)
            + reach(rows.max_len, strides.row)
            + reach(heads, strides.head)
            + d as u128
    };
    if needed > i64::MAX as u128 {
        return Err(Error::TooLarge {
            what: "tensor extent",
            value: needed,
            max: i64::MAX as u128,
        });
    }
    if needed > len as u128 {
        return Err(Error::BufferTooSmall {
            tensor,
            needed: needed as usize,
            len,
        });
    }
    Ok(())
}

/// Length of a per-row statistic (LSE, D): `[batch, heads_q, seqlen_q]` or `[heads_q, total_q]`.
pub(crate) fn row_stat_len(dims: &Dims) -> usize {
    if dims.varlen() {
        dims.heads_q * dims.q.total
    } else {
        dims.batch * dims.heads_q * dims.q.max_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cu_seqlens_checks_name_the_bad_entry() {
        let bad = [0, 5, 3, 9];
        let ok = [0, 4, 4, 8];
        let e = check_shape(&Shape::varlen(&bad, &ok, 2, 1, 64)).unwrap_err();
        assert_eq!(
            e,
            Error::CuSeqlensNotMonotonic {
                tensor: TensorName::CuSeqlensQ,
                index: 2,
                value: 3
            }
        );
        let e = check_shape(&Shape::varlen(&[1, 4], &[0, 4], 2, 1, 64)).unwrap_err();
        assert_eq!(
            e,
            Error::CuSeqlensNotMonotonic {
                tensor: TensorName::CuSeqlensQ,
                index: 0,
                value: 1
            }
        );
        let e = check_shape(&Shape::varlen(&ok, &[0, 4], 2, 1, 64)).unwrap_err();
        assert_eq!(
            e,
            Error::CuSeqlensLength {
                tensor: TensorName::CuSeqlensK,
                len: 2,
                expected: Some(4)
            }
        );
        let dims = check_shape(&Shape::varlen(&ok, &[0, 1, 17, 20], 2, 1, 64)).unwrap();
        assert_eq!(
            (dims.batch, dims.q.total, dims.k.max_len, dims.q.max_len),
            (3, 8, 16, 4)
        );
    }

    #[test]
    fn shape_errors_carry_values() {
        assert_eq!(
            check_shape(&Shape::dense(1, 1, 1, 6, 4, 64)).unwrap_err(),
            Error::HeadsNotDivisible {
                heads_q: 6,
                heads_kv: 4
            }
        );
        assert_eq!(
            check_shape(&Shape::dense(1, 1, 1, 4, 4, 60)).unwrap_err(),
            Error::UnsupportedHeadDim { head_dim: 60 }
        );
        assert_eq!(
            check_shape(&Shape::dense(1, 1, 1, 4, 4, 264)).unwrap_err(),
            Error::UnsupportedHeadDim { head_dim: 264 }
        );
        assert_eq!(
            check_shape(&Shape::dense(1, 0, 1, 4, 4, 64)).unwrap_err(),
            Error::ZeroSize { what: "seqlen_q" }
        );
        assert!(matches!(
            check_shape(&Shape::dense(1 << 20, 1 << 12, 1, 4, 4, 64)).unwrap_err(),
            Error::TooLarge { .. }
        ));
    }

    #[test]
    fn tensor_checks_bounds_strides_and_overlap() {
        let dims = check_shape(&Shape::dense(2, 17, 5, 4, 2, 40)).unwrap();
        let s = Strides::contiguous(17, 4, 40);
        let len = 2 * 17 * 4 * 40;
        check_tensor(TensorName::Q, len, s, &dims, &dims.q, 4, true).unwrap();
        assert_eq!(
            check_tensor(TensorName::Q, len - 1, s, &dims, &dims.q, 4, true).unwrap_err(),
            Error::BufferTooSmall {
                tensor: TensorName::Q,
                needed: len,
                len: len - 1
            }
        );
        let overlapping = Strides { head: 32, ..s };
        assert_eq!(
            check_tensor(TensorName::O, len, overlapping, &dims, &dims.q, 4, true).unwrap_err(),
            Error::BadStride {
                tensor: TensorName::O,
                which: "head",
                got: 32,
                min: 40
            }
        );
        let odd = Strides { row: 164, ..s };
        assert_eq!(
            check_tensor(TensorName::Q, 1 << 20, odd, &dims, &dims.q, 4, false).unwrap_err(),
            Error::StrideNotAligned {
                tensor: TensorName::Q,
                which: "row",
                got: 164
            }
        );
        // Heads outermost (bhsd) is a valid output layout too.
        let bhsd = Strides {
            batch: 4 * 17 * 40,
            head: 17 * 40,
            row: 40,
        };
        check_tensor(TensorName::O, len, bhsd, &dims, &dims.q, 4, true).unwrap();
    }
}
