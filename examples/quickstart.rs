//! Quickstart: the float64 reference, the emulator and (when present) the GPU.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! 1. Computes causal softmax attention with a sink, and sigmoid attention, with the float64
//!    reference, and measures the seed paper's sink metric on both maps.
//! 2. Runs the softmax backward's `D = rowsum(dO * O)` kernel under the emulator and on GPU 0
//!    if there is one, and compares both with the reference.

use half::bf16;
use sinkless::check::Rng;
use sinkless::reference::{self, HeadShape, Precision, Problem, RefActivation, RefBias};
use sinkless::{CudaBackend, Emulator, HostBuffer, Shape, Strides, TensorRef};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (t, heads, d) = (64, 2, 32);
    let mut rng = Rng::new(7);
    let mut draw = |n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f64>>();
    let (q, k, v) = (
        draw(t * heads * d),
        draw(t * heads * d),
        draw(t * heads * d),
    );
    let shape = HeadShape {
        heads_q: heads,
        heads_kv: heads,
        head_dim: d,
    };
    let causal = (None, Some(0));

    let sink = vec![2.0; heads];
    let softmax = Problem {
        window: causal,
        activation: RefActivation::Softmax { sink: Some(&sink) },
        ..Problem::dense(1, t, t, shape, &q, &k, &v)
    };
    let sigmoid = Problem {
        window: causal,
        activation: RefActivation::Sigmoid {
            bias: RefBias::NegLogSeqlenK,
            normalized: false,
        },
        ..Problem::dense(1, t, t, shape, &q, &k, &v)
    };
    let fwd = reference::forward(&softmax, Precision::F64);
    println!("softmax o[0..4] = {:?}", &fwd.o[..4]);
    for (name, p, normalize) in [("softmax", &softmax, false), ("sigmoid", &sigmoid, true)] {
        let map = reference::attention_probs(p, 0, 0, Precision::F64);
        println!(
            "{name}: alpha_1 = {:.3}",
            reference::sink_alpha(&map, t, 1, normalize)
        );
    }

    // D = rowsum(dO * O), the softmax backward's first pass, on the emulator.
    let n = t * heads * d;
    let x: Vec<bf16> = (0..n).map(|i| bf16::from_f64(fwd.o[i])).collect();
    let y: Vec<bf16> = (0..n)
        .map(|i| bf16::from_f64(((i % 7) as f64 - 3.0) / 4.0))
        .collect();
    let s = Strides::contiguous(t, heads, d);
    let kshape = Shape::dense(1, t, t, heads, heads, d);
    let (xb, yb) = (HostBuffer::from_slice(&x), HostBuffer::from_slice(&y));
    let mut out = HostBuffer::filled(heads * t, f32::NAN);
    Emulator::new().row_dot(
        &kshape,
        TensorRef {
            data: &xb,
            strides: s,
        },
        TensorRef {
            data: &yb,
            strides: s,
        },
        &mut out,
    )?;
    let want: f64 = (0..d).map(|j| x[j].to_f64() * y[j].to_f64()).sum();
    println!("emulator: D[head 0, row 0] = {} (reference {want})", out[0]);

    match CudaBackend::new(0) {
        Ok(gpu) => {
            let st = gpu.stream();
            let (xd, yd) = (st.clone_htod(&x)?, st.clone_htod(&y)?);
            let mut od = st.alloc_zeros::<f32>(heads * t)?;
            gpu.row_dot(
                &kshape,
                TensorRef {
                    data: &xd,
                    strides: s,
                },
                TensorRef {
                    data: &yd,
                    strides: s,
                },
                &mut od,
            )?;
            println!(
                "GPU {}: D[head 0, row 0] = {}",
                gpu.device_name()?,
                st.clone_dtoh(&od)?[0]
            );
        }
        Err(e) => println!("no GPU run: {e}"),
    }
    Ok(())
}
