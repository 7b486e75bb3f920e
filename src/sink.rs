//! The seed paper's attention-sink scores at any sequence length, on every backend.
//!
//! Gu et al. score key `k` of a head by `alpha[k]`, the mean weight it receives from the queries
//! that can see it (for sigmoid attention, of the row-normalised proxy `A[t][k] / sum_j A[t][j]`),
//! and count the heads whose first key scores above `eps = 0.3` ([`reference::sink_alpha`],
//! [`reference::sink_rate`]). The reference builds each `seqlen_q x seqlen_k` map; the backends
//! never do. The column sums of a map are `dV` of the backward pass with `dO` all ones: `dV =
//! W^T dO`, with `W` the weights that multiplied `V` (softmax `P`, which leaves the sink's share
//! out; for normalized sigmoid `p / sum p`, which is the proxy). So [`CudaBackend::sink_scores`]
//! and [`Emulator::sink_scores`] run the attention kernels themselves: per member of a query-head
//! group (the backward sums `dV` over a group), a forward for the row statistic and a backward
//! with a one-row `dO` broadcast by zero strides, plain sigmoid swapped for normalized sigmoid
//! with the same bias. The scores come out in `dV`'s element type (3 significant digits in
//! bf16), which is plenty for a threshold at 0.3; a head group costs `heads_q / heads_kv`
//! forward and backward passes over it.
//!
//! [`reference::sink_alpha`]: crate::reference::sink_alpha
//! [`reference::sink_rate`]: crate::reference::sink_rate
//! [`CudaBackend::sink_scores`]: crate::CudaBackend::sink_scores
//! [`Emulator::sink_scores`]: crate::Emulator::sink_scores

use crate::config::{Activation, AttentionOptions, DType, Element, KernelVariant, Mask};
use crate::error::Result;
use crate::plan::{self, Addr, BackwardAddrs, ForwardAddrs, Launch};
use crate::tensor::{row_stat_len, Dims, Strides};

/// How many queries of a sequence with `sq` queries and `sk` keys see key `key` under `mask`
/// (bottom-right aligned: query `i` sees key `j` when `i + sk - sq - left <= j <= i + sk - sq +
/// right`): the denominator of the key's sink score.
pub fn visible_queries(mask: Mask, sq: usize, sk: usize, key: usize) -> usize {
    if sq == 0 || key >= sk {
        return 0;
    }
    let shift = sk as i64 - sq as i64;
    let j = key as i64;
    // j <= i + shift + right  <=>  i >= j - shift - right;  j >= i + shift - left  <=>  i <= j - shift + left
    let lo = mask.right.map_or(0, |r| (j - shift - r as i64).max(0));
    let hi = mask
        .left
        .map_or(sq as i64 - 1, |l| (j - shift + l as i64).min(sq as i64 - 1));
    usize::try_from(hi - lo + 1).unwrap_or(0)
}

/// Elements of a per-key score buffer: `[batch, heads_q, seqlen_k]`, or `[heads_q, total_k]`
/// under varlen (the row statistic's layout, over keys).
pub(crate) fn scores_len(dims: &Dims) -> usize {
    if dims.varlen() {
        dims.heads_q * dims.k.total
    } else {
        dims.batch * dims.heads_q * dims.k.max_len
    }
}

/// The options of the passes that compute the scores: the default kernels, plain sigmoid read
/// through its row-normalised proxy (normalized sigmoid with the same bias).
pub(crate) fn pass_options(opts: &AttentionOptions) -> AttentionOptions {
    let activation = match opts.activation {
        Activation::Sigmoid { bias } => Activation::NormalizedSigmoid { bias },
        a => a,
    };
    AttentionOptions {
        activation,
        deterministic: false,
        variant: KernelVariant::Default,
        ..*opts
    }
}

/// What the passes need of a backend besides its launches: scratch memory, uploads and reads.
pub(crate) trait ScoreDevice {
    /// A buffer of the backend's, 16-byte aligned.
    type Mem;
    /// `bytes` zero bytes.
    fn zeroed(&self, bytes: usize) -> Result<Self::Mem>;
    /// A copy of `bytes`.
    fn upload(&self, bytes: &[u8]) -> Result<Self::Mem>;
    /// The address the kernels see.
    fn addr(&self, m: &Self::Mem) -> u64;
    /// The buffer's bytes, once every launch before has finished.
    fn download(&self, m: &Self::Mem) -> Result<Vec<u8>>;
    /// Runs launches in order.
    fn run(&self, launches: &[Launch]) -> Result<()>;
}

fn bytes_of<T: Copy>(x: &[T]) -> Vec<u8> {
    // SAFETY: plain numbers (f32, i32, f16/bf16 bits) read as bytes.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
        .to_vec()
}

/// The scores of every key of every query head (layout of [`scores_len`]), from the inputs at
/// `q`, `k`, `v` (already checked against `dims`) and the per-head `sink` or `bias` values.
pub(crate) fn scores<T: Element, D: ScoreDevice>(
    dev: &D,
    dims: &Dims,
    opts: &AttentionOptions,
    (q, k, v): (Addr, Addr, Addr),
    sink: Option<&[f32]>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let opts = pass_options(opts);
    let group = dims.heads_q / dims.heads_kv;
    let (hk, d) = (dims.heads_kv, dims.head_dim);
    // One pass per member j of each head group: query heads g * group + j, as an MHA problem.
    let pass = Dims {
        heads_q: hk,
        ..dims.clone()
    };
    let elem = std::mem::size_of::<T>();
    // contiguous scratch tensors: [batch, rows, hk, d], or [total, hk, d] under varlen
    let per_seq = |r: &crate::tensor::Rows| if pass.varlen() { r.total } else { r.max_len };
    let tokens = |r: &crate::tensor::Rows| {
        if pass.varlen() {
            r.total
        } else {
            pass.batch * r.max_len
        }
    };
    let (q_rows, k_rows) = (tokens(&pass.q), tokens(&pass.k));
    let (q_st, k_st) = (
        Strides::contiguous(per_seq(&pass.q), hk, d),
        Strides::contiguous(per_seq(&pass.k), hk, d),
    );
    let cu = |c: &Option<Vec<i32>>| c.as_deref().map(|c| dev.upload(&bytes_of(c))).transpose();
    let (cu_q, cu_k) = (cu(&dims.q.cu)?, cu(&dims.k.cu)?);
    let ones = dev.upload(&bytes_of(&vec![T::from_f64(1.0); d]))?;
    let broadcast = Strides {
        batch: 0,
        row: 0,
        head: 0,
    };
    let layout = plan::backward_workspace(T::DTYPE, &opts, &pass)?.layout();
    let mut out = vec![f32::NAN; scores_len(dims)]; // every slot is written below
    for j in 0..group {
        let member = |x: Option<&[f32]>| {
            x.map(|x| {
                dev.upload(&bytes_of(
                    &(0..hk).map(|g| x[g * group + j]).collect::<Vec<f32>>(),
                ))
            })
            .transpose()
        };
        let (sink_j, bias_j) = (member(sink)?, member(bias)?);
        let o = dev.zeroed(q_rows * hk * d * elem)?;
        let stat = dev.zeroed(row_stat_len(&pass).max(1) * 4)?;
        let (dq, dk, dv) = (
            dev.zeroed(q_rows * hk * d * elem)?,
            dev.zeroed(k_rows * hk * d * elem)?,
            dev.zeroed(k_rows * hk * d * elem)?,
        );
        let (dsink, dbias) = (dev.zeroed(hk * 4)?, dev.zeroed(hk * 4)?);
        let ws = dev.zeroed(layout.len * 4)?;
        let q_j = Addr {
            addr: q.addr + (j * q.strides.head * elem) as u64,
            strides: Strides {
                head: q.strides.head * group,
                ..q.strides
            },
        };
        let at = |m: &D::Mem, strides| Addr {
            addr: dev.addr(m),
            strides,
        };
        let opt_addr = |m: &Option<D::Mem>| m.as_ref().map(|m| dev.addr(m));
        let a = opts.activation;
        let fwd = plan::attn_forward(
            T::DTYPE,
            &opts,
            &pass,
            &ForwardAddrs {
                q: q_j,
                k,
                v,
                o: at(&o, q_st),
                row_stat: a.has_row_stat().then(|| dev.addr(&stat)),
                cu_seqlens_q: opt_addr(&cu_q),
                cu_seqlens_k: opt_addr(&cu_k),
                sink: opt_addr(&sink_j),
                bias: opt_addr(&bias_j),
            },
        )?;
        let bwd = plan::attn_backward(
            T::DTYPE,
            &opts,
            &pass,
            &BackwardAddrs {
                q: q_j,
                k,
                v,
                o: at(&o, q_st),
                d_o: at(&ones, broadcast),
                dq: at(&dq, q_st),
                dk: at(&dk, k_st),
                dv: at(&dv, k_st),
                row_stat: a.has_row_stat().then(|| dev.addr(&stat)),
                sink: opt_addr(&sink_j),
                bias: opt_addr(&bias_j),
                dsink: a.has_sink().then(|| dev.addr(&dsink)),
                dbias: a.has_bias_tensor().then(|| dev.addr(&dbias)),
                cu_seqlens_q: opt_addr(&cu_q),
                cu_seqlens_k: opt_addr(&cu_k),
                ws: layout.addrs(dev.addr(&ws)),
            },
        )?;
        dev.run(&[fwd])?;
        dev.run(&bwd)?;
        let dv = dev.download(&dv)?;
        let column_sum = |token: usize, g: usize| {
            let at = ((token * hk + g) * d) * elem;
            let bits = u16::from_le_bytes([dv[at], dv[at + 1]]);
            match T::DTYPE {
                DType::F16 => half::f16::from_bits(bits).to_f64(),
                DType::BF16 => half::bf16::from_bits(bits).to_f64(),
            }
        };
        for seq in 0..dims.batch.max(1) {
            let (q0, q1, k0, k1) = match (&dims.q.cu, &dims.k.cu) {
                (Some(cq), Some(ck)) => (cq[seq], cq[seq + 1], ck[seq], ck[seq + 1]),
                _ => (0, dims.q.max_len as i32, 0, dims.k.max_len as i32),
            };
            let (sq, sk) = ((q1 - q0) as usize, (k1 - k0) as usize);
            for g in 0..hk {
                let h = g * group + j;
                for key in 0..sk {
                    let token = if dims.varlen() {
                        k0 as usize + key
                    } else {
                        seq * dims.k.max_len + key
                    };
                    let n = visible_queries(opts.mask, sq, sk, key);
                    let score = if n == 0 {
                        0.0
                    } else {
                        column_sum(token, g) / n as f64
                    };
                    let slot = if dims.varlen() {
                        h * dims.k.total + token
                    } else {
                        (seq * dims.heads_q + h) * dims.k.max_len + key
                    };
                    out[slot] = score as f32;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form against counting, over masks, lengths and keys.
    #[test]
    fn visible_queries_counts_the_mask() {
        let masks = [
            Mask::NONE,
            Mask::CAUSAL,
            Mask::sliding_window(3),
            Mask::window(Some(2), Some(5)),
            Mask::window(None, Some(4)),
            Mask::window(Some(0), None),
        ];
        for mask in masks {
            for (sq, sk) in [(1, 1), (7, 7), (5, 17), (17, 5), (0, 3), (3, 0)] {
                let shift = sk as i64 - sq as i64;
                for key in 0..sk + 2 {
                    let want = (0..sq as i64)
                        .filter(|&i| {
                            let j = key as i64;
                            key < sk
                                && mask.left.is_none_or(|l| j >= i + shift - l as i64)
                                && mask.right.is_none_or(|r| j <= i + shift + r as i64)
                        })
                        .count();
                    assert_eq!(
                        visible_queries(mask, sq, sk, key),
                        want,
                        "{mask:?} sq {sq} sk {sk} key {key}"
                    );
                }
            }
        }
    }
}
