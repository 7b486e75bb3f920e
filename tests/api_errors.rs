//! Bad input gets a typed error naming the bad value, before any launch; never a panic.

use half::{bf16, f16};
use sinkless::check::Rng;
use sinkless::{
    backward_workspace_len, Activation, AttentionOptions, BackwardInputs, BackwardOutputs,
    CudaBackend, Emulator, Error, HostBuffer, KernelVariant, Shape, SigmoidBias, Strides,
    TensorMut, TensorName, TensorRef,
};

fn run(shape: &Shape<'_>, x_len: usize, strides: Strides, out_len: usize) -> Result<(), Error> {
    let x = HostBuffer::from_slice(&vec![f16::from_f32(1.0); x_len]);
    let mut out = HostBuffer::filled(out_len, f32::NAN);
    Emulator::new().row_dot(
        shape,
        TensorRef { data: &x, strides },
        TensorRef { data: &x, strides },
        &mut out,
    )
}

#[test]
fn shape_and_buffer_errors_carry_the_values() {
    let s = Strides::contiguous(17, 2, 40);
    let shape = Shape::dense(3, 17, 17, 2, 2, 40);
    let n = 3 * 17 * 2 * 40;
    assert_eq!(run(&shape, n, s, 3 * 2 * 17), Ok(()));
    assert_eq!(
        run(&shape, n - 8, s, 3 * 2 * 17),
        Err(Error::BufferTooSmall {
            tensor: TensorName::X,
            needed: n,
            len: n - 8
        })
    );
    assert_eq!(
        run(&shape, n, s, 3 * 2 * 17 - 1),
        Err(Error::BufferTooSmall {
            tensor: TensorName::Out,
            needed: 102,
            len: 101
        })
    );
    assert_eq!(
        run(&Shape::dense(3, 17, 17, 2, 2, 44), n, s, 102),
        Err(Error::UnsupportedHeadDim { head_dim: 44 })
    );
    assert_eq!(
        run(&Shape::dense(3, 17, 17, 3, 2, 40), n, s, 102),
        Err(Error::HeadsNotDivisible {
            heads_q: 3,
            heads_kv: 2
        })
    );
    assert_eq!(
        run(&shape, n, Strides { row: 84, ..s }, 102),
        Err(Error::StrideNotAligned {
            tensor: TensorName::X,
            which: "row",
            got: 84
        })
    );
    assert_eq!(
        run(&Shape::dense(0, 17, 17, 2, 2, 40), n, s, 102),
        Err(Error::ZeroSize { what: "batch" })
    );
}

#[test]
fn cu_seqlens_errors_name_the_entry() {
    let s = Strides::contiguous(0, 2, 40);
    let cu = [0, 4, 2];
    assert_eq!(
        run(&Shape::varlen(&cu, &cu, 2, 2, 40), 1000, s, 100),
        Err(Error::CuSeqlensNotMonotonic {
            tensor: TensorName::CuSeqlensQ,
            index: 2,
            value: 2
        })
    );
    let cu = [0, 4, 30];
    assert_eq!(
        run(&Shape::varlen(&cu, &cu, 2, 2, 40), 29 * 80 + 79, s, 60),
        Err(Error::BufferTooSmall {
            tensor: TensorName::X,
            needed: 29 * 80 + 80,
            len: 29 * 80 + 79
        })
    );
    assert_eq!(
        run(&Shape::varlen(&[0], &[0], 2, 2, 40), 80, s, 60),
        Err(Error::CuSeqlensLength {
            tensor: TensorName::CuSeqlensQ,
            len: 1,
            expected: None
        })
    );
}

#[test]
fn no_gpu_is_an_error_not_a_panic() {
    match CudaBackend::new(0) {
        Ok(g) => eprintln!("a GPU is present ({g:?}); the no-GPU path is not exercised here"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::KernelsNotCompiled | Error::DriverMissing | Error::NoDevice { .. }
                ),
                "unexpected error {e:?}"
            );
            assert!(!e.to_string().is_empty());
        }
    }
    assert!(CudaBackend::new(4096).is_err());
}

/// A workspace one element short is refused with both lengths before anything runs (the
/// poisoned gradients stay untouched), and `backward_workspace_len` reports the errors the
/// backward would.
#[test]
fn workspace_errors_come_before_any_launch() {
    let (b, sq, sk, hq, hk, d) = (2, 17, 23, 4, 2, 40);
    let shape = Shape::dense(b, sq, sk, hq, hk, d);
    let opts = AttentionOptions::new(Activation::Softmax { sink: false });
    let needed = backward_workspace_len::<f16>(&shape, &opts).unwrap();
    assert!(
        needed >= b * sq * hq * d,
        "{needed}: no room for the dQ accumulator"
    );
    let mut rng = Rng::new(21);
    let (qs, ks) = (
        Strides::contiguous(sq, hq, d),
        Strides::contiguous(sk, hk, d),
    );
    let up = |v: Vec<f16>| HostBuffer::from_slice(&v);
    let (q, o, d_o) = (
        up(rng.vec(b * sq * hq * d)),
        up(rng.vec(b * sq * hq * d)),
        up(rng.vec(b * sq * hq * d)),
    );
    let (k, v) = (up(rng.vec(b * sk * hk * d)), up(rng.vec(b * sk * hk * d)));
    let lse = HostBuffer::from_slice(&vec![1.0f32; b * hq * sq]);
    let mut dq = HostBuffer::filled(q.len(), f16::NAN);
    let mut dk = HostBuffer::filled(k.len(), f16::NAN);
    let mut dv = HostBuffer::filled(k.len(), f16::NAN);
    let mut ws = HostBuffer::filled(needed - 1, f32::NAN);
    let t = |data, strides| TensorRef { data, strides };
    let err = Emulator::new()
        .backward_with_workspace(
            &shape,
            &opts,
            BackwardInputs {
                q: t(&q, qs),
                k: t(&k, ks),
                v: t(&v, ks),
                o: t(&o, qs),
                d_o: t(&d_o, qs),
                row_stat: Some(&lse),
                sink: None,
                bias: None,
            },
            BackwardOutputs {
                dq: TensorMut {
                    data: &mut dq,
                    strides: qs,
                },
                dk: TensorMut {
                    data: &mut dk,
                    strides: ks,
                },
                dv: TensorMut {
                    data: &mut dv,
                    strides: ks,
                },
                dsink: None,
                dbias: None,
            },
            &mut ws,
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::WorkspaceTooSmall {
            needed,
            len: needed - 1
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&needed.to_string()) && msg.contains(&(needed - 1).to_string()),
        "{msg}"
    );
    for g in [&dq, &dk, &dv] {
        assert!(g.iter().all(|x| x.is_nan()), "a gradient was written");
    }
    assert!(ws.iter().all(|x| x.is_nan()), "the workspace was written");

    assert_eq!(
        backward_workspace_len::<f16>(&Shape::dense(b, sq, sk, hq, hk, 44), &opts),
        Err(Error::UnsupportedHeadDim { head_dim: 44 })
    );
    assert_eq!(
        backward_workspace_len::<f16>(&Shape::dense(b, sq, sk, 3, hk, d), &opts),
        Err(Error::HeadsNotDivisible {
            heads_q: 3,
            heads_kv: 2
        })
    );
    // The rcp sigmoid variant's own backward is compiled for bf16 alone.
    let rcp = AttentionOptions::new(Activation::Sigmoid {
        bias: SigmoidBias::PerHead,
    })
    .with_variant(KernelVariant::SigmoidRcp);
    assert!(backward_workspace_len::<bf16>(&shape, &rcp).is_ok());
    assert!(matches!(
        backward_workspace_len::<f16>(&shape, &rcp),
        Err(Error::Unsupported { .. })
    ));
}
