//! Bad input gets a typed error naming the bad value, before any launch; never a panic.

use half::f16;
use sinkless::{CudaBackend, Emulator, Error, HostBuffer, Shape, Strides, TensorName, TensorRef};

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
