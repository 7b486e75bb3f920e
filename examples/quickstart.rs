//! Quickstart: one attention problem through the float64 reference, the emulator and (when
//! present) the GPU, and the seed paper's sink metric.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use half::bf16;
use sinkless::check::Rng;
use sinkless::reference::{self, HeadShape, Precision, Problem, RefActivation, RefBias};
use sinkless::{
    Activation, AttentionOptions, BackwardInputs, BackwardOutputs, CpuReference, CudaBackend,
    Emulator, ForwardInputs, ForwardOutputs, HostBuffer, Mask, Shape, Strides, TensorMut,
    TensorRef,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (b, s, h, d) = (1, 64, 2, 32);
    let n = b * s * h * d;
    let mut rng = Rng::new(7);
    let q: Vec<bf16> = rng.vec(n);
    let k: Vec<bf16> = rng.vec(n);
    let v: Vec<bf16> = rng.vec(n);
    let d_o: Vec<bf16> = rng.vec(n);
    let sink = vec![1.0f32; h];
    let shape = Shape::dense(b, s, s, h, h, d);
    let st = Strides::contiguous(s, h, d);
    let opts = AttentionOptions::new(Activation::Softmax { sink: true }).with_mask(Mask::CAUSAL);

    // 1. The float64 reference behind the same API.
    let (mut o_ref, mut lse_ref) = (vec![bf16::NAN; n], vec![f32::NAN; b * h * s]);
    CpuReference.forward(
        &shape,
        &opts,
        ForwardInputs {
            q: TensorRef {
                data: &q[..],
                strides: st,
            },
            k: TensorRef {
                data: &k[..],
                strides: st,
            },
            v: TensorRef {
                data: &v[..],
                strides: st,
            },
            sink: Some(&sink[..]),
            bias: None,
        },
        ForwardOutputs {
            o: TensorMut {
                data: &mut o_ref[..],
                strides: st,
            },
            row_stat: Some(&mut lse_ref[..]),
        },
    )?;

    // 2. The CUDA kernels' own source, on the CPU.
    let emu = Emulator::new();
    let host = HostBuffer::from_slice;
    let (qb, kb, vb, dob) = (host(&q), host(&k), host(&v), host(&d_o));
    let sb = HostBuffer::from_slice(&sink);
    let mut o = HostBuffer::filled(n, bf16::NAN);
    let mut lse = HostBuffer::filled(b * h * s, f32::NAN);
    let t = |data| TensorRef { data, strides: st };
    emu.forward(
        &shape,
        &opts,
        ForwardInputs {
            q: t(&qb),
            k: t(&kb),
            v: t(&vb),
            sink: Some(&sb),
            bias: None,
        },
        ForwardOutputs {
            o: TensorMut {
                data: &mut o,
                strides: st,
            },
            row_stat: Some(&mut lse),
        },
    )?;
    let max_diff = o
        .iter()
        .zip(&o_ref)
        .map(|(a, r)| (a.to_f32() - r.to_f32()).abs())
        .fold(0.0f32, f32::max);
    println!("emulator forward vs float64 reference: max |diff| = {max_diff:.2e} (bf16 output)");

    let (mut dq, mut dk, mut dv) = (
        HostBuffer::filled(n, bf16::NAN),
        HostBuffer::filled(n, bf16::NAN),
        HostBuffer::filled(n, bf16::NAN),
    );
    let mut dsink = HostBuffer::filled(h, f32::NAN);
    emu.backward(
        &shape,
        &opts,
        BackwardInputs {
            q: t(&qb),
            k: t(&kb),
            v: t(&vb),
            o: t(&o),
            d_o: t(&dob),
            row_stat: Some(&lse),
            sink: Some(&sb),
            bias: None,
        },
        BackwardOutputs {
            dq: TensorMut {
                data: &mut dq,
                strides: st,
            },
            dk: TensorMut {
                data: &mut dk,
                strides: st,
            },
            dv: TensorMut {
                data: &mut dv,
                strides: st,
            },
            dsink: Some(&mut dsink),
            dbias: None,
        },
    )?;
    println!("emulator backward: dsink = {:?}", &dsink[..]);

    // 3. The GPU, when there is one.
    match CudaBackend::new(0) {
        Ok(gpu) => {
            let stream = gpu.stream();
            let (qd, kd, vd, sd) = (
                stream.clone_htod(&q)?,
                stream.clone_htod(&k)?,
                stream.clone_htod(&v)?,
                stream.clone_htod(&sink)?,
            );
            let mut od = stream.alloc_zeros::<bf16>(n)?;
            let mut lsed = stream.alloc_zeros::<f32>(b * h * s)?;
            let td = |data| TensorRef { data, strides: st };
            gpu.forward(
                &shape,
                &opts,
                ForwardInputs {
                    q: td(&qd),
                    k: td(&kd),
                    v: td(&vd),
                    sink: Some(&sd),
                    bias: None,
                },
                ForwardOutputs {
                    o: TensorMut {
                        data: &mut od,
                        strides: st,
                    },
                    row_stat: Some(&mut lsed),
                },
            )?;
            let got = stream.clone_dtoh(&od)?;
            let max_diff = got
                .iter()
                .zip(&o[..])
                .map(|(a, e)| (a.to_f32() - e.to_f32()).abs())
                .fold(0.0f32, f32::max);
            println!(
                "GPU {} forward vs emulator: max |diff| = {max_diff:.2e}",
                gpu.device_name()?
            );
        }
        Err(e) => println!("no GPU run: {e}"),
    }

    // 4. The seed paper's sink metric on one head's causal map: softmax against sigmoid.
    let wide = |x: &[bf16]| x.iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
    let (q64, k64, v64) = (wide(&q), wide(&k), wide(&v));
    let heads = HeadShape {
        heads_q: h,
        heads_kv: h,
        head_dim: d,
    };
    let sink64 = vec![1.0; h];
    let softmax = Problem {
        window: (None, Some(0)),
        activation: RefActivation::Softmax {
            sink: Some(&sink64),
        },
        ..Problem::dense(b, s, s, heads, &q64, &k64, &v64)
    };
    let sigmoid = Problem {
        window: (None, Some(0)),
        activation: RefActivation::Sigmoid {
            bias: RefBias::NegLogSeqlenK,
            normalized: false,
        },
        ..Problem::dense(b, s, s, heads, &q64, &k64, &v64)
    };
    for (name, p, row_normalize) in [("softmax", &softmax, false), ("sigmoid", &sigmoid, true)] {
        let map = reference::attention_probs(p, 0, 0, Precision::F64);
        println!(
            "{name}: alpha_1 = {:.3}",
            reference::sink_alpha(&map, s, 1, row_normalize)
        );
    }

    // 5. The same scores by the kernels, for every key and head at once, with no map built
    // (the GPU's CudaBackend::sink_scores takes the same arguments): alpha_1 of head 0.
    let hb = |x: &[bf16]| HostBuffer::from_slice(x);
    let (qh, kh, vh, sh) = (hb(&q), hb(&k), hb(&v), HostBuffer::from_slice(&sink));
    let th = |data| TensorRef { data, strides: st };
    let scores = Emulator::new().sink_scores(
        &shape,
        &opts,
        ForwardInputs {
            q: th(&qh),
            k: th(&kh),
            v: th(&vh),
            sink: Some(&sh),
            bias: None,
        },
    )?;
    println!(
        "softmax: alpha_1 = {:.3} by the emulator's kernels",
        scores[0]
    );
    Ok(())
}
