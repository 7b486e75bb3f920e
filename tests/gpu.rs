//! The GPU correctness suite: the same fixed cases as the emulator suites, on GPU 0. Skips with
//! a message when there is no GPU or the build has no kernels.

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;
use sinkless::check::{
    self, failures, row_dot_cases, AttnCase, AttnGrads, AttnInputs, CaseResult, Lengths, Rng,
};
use sinkless::{
    backward_workspace_len, Activation, AttentionOptions, BackwardInputs, BackwardOutputs,
    CudaBackend, Error, ForwardInputs, ForwardOutputs, KernelVariant, Mask, Shape, SigmoidBias,
    Strides, TensorMut, TensorName, TensorRef,
};
use std::sync::Arc;

fn gpu() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(g) => {
            g.track_launches(true);
            Some(g)
        }
        Err(e) => {
            check::notice(&format!("skipped: no GPU run ({e})"));
            None
        }
    }
}

/// Runs `pass` on every case of the suite in f16 and bf16 (every other case with the
/// deterministic backward) and asserts that all pass.
fn suite_on_the_gpu(
    seed: u64,
    pass: fn(&AttnCase, &CudaBackend, u64, bool) -> sinkless::Result<Vec<CaseResult>>,
) {
    let Some(gpu) = gpu() else { return };
    let mut bad = Vec::new();
    for (i, case) in check::suite().into_iter().enumerate() {
        let case = AttnCase {
            opts: case.opts.with_deterministic(i % 2 == 1),
            ..case
        };
        let s = seed + i as u64;
        bad.extend(failures(&pass(&case, &gpu, s, false).unwrap()));
        bad.extend(failures(&pass(&case, &gpu, s ^ 7, true).unwrap()));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn forward_suite_on_the_gpu() {
    suite_on_the_gpu(5000, |case, gpu, seed, bf16| {
        if bf16 {
            case.run_forward::<half::bf16, _>(gpu, seed)
        } else {
            case.run_forward::<half::f16, _>(gpu, seed)
        }
    });
}

#[test]
fn backward_suite_on_the_gpu() {
    suite_on_the_gpu(7000, |case, gpu, seed, bf16| {
        if bf16 {
            case.run_backward::<half::bf16, _>(gpu, seed)
        } else {
            case.run_backward::<half::f16, _>(gpu, seed)
        }
    });
}

#[test]
fn sink_scores_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut bad = Vec::new();
    for (i, case) in check::sink_cases().iter().enumerate() {
        let seed = 9000 + i as u64;
        let f16 = case.run_sink_scores::<half::f16, _>(&gpu, seed).unwrap();
        let bf16 = case.run_sink_scores::<half::bf16, _>(&gpu, seed).unwrap();
        bad.extend(failures(&[f16, bf16]));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn kernel_variants_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut bad = Vec::new();
    for (i, case) in check::variant_cases().iter().enumerate() {
        let seed = 6000 + i as u64;
        if !gpu.runs_variant(case.opts.variant) {
            check::notice(&format!(
                "skipping a {} variant case: this GPU is not sm_90",
                case.opts.variant.name()
            ));
            continue;
        }
        for run in case.run_variant(&gpu, seed) {
            bad.extend(failures(&run.unwrap()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn deterministic_backward_is_bitwise_reproducible_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    // and, on sm_90, the wgmma backward's own dQ pass on a GQA case of each activation
    let wgmma = check::variant_cases().into_iter().filter(|c| {
        c.opts.variant == KernelVariant::Wgmma
            && c.heads_q > c.heads_kv
            && gpu.runs_variant(c.opts.variant)
    });
    for case in check::suite().into_iter().step_by(17).chain(wgmma) {
        let case = AttnCase {
            opts: case.opts.with_deterministic(true),
            ..case
        };
        let x = case.inputs::<half::bf16>(3);
        let a = case.backward_on(&gpu, &x).unwrap();
        let b = case.backward_on(&gpu, &x).unwrap();
        assert_eq!(
            grad_bits(&a),
            grad_bits(&b),
            "{}: runs differ",
            case.describe::<half::bf16>()
        );
    }
}

#[test]
fn row_dot_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    for (i, case) in row_dot_cases().iter().enumerate() {
        for r in [
            case.run_cuda::<half::f16>(&gpu, i as u64).unwrap(),
            case.run_cuda::<half::bf16>(&gpu, i as u64).unwrap(),
        ] {
            assert!(
                r.passed(),
                "{}: max error {:e} > tolerance {:e}",
                r.case,
                r.max_err,
                r.tol
            );
        }
    }
}

fn grad_bits(g: &AttnGrads<bf16>) -> Vec<u32> {
    let mut v: Vec<u32> =
        g.dq.iter()
            .chain(&g.dk)
            .chain(&g.dv)
            .map(|x| u32::from(x.to_bits()))
            .collect();
    v.extend(
        g.dsink
            .iter()
            .chain(&g.dbias)
            .flatten()
            .map(|x| x.to_bits()),
    );
    v
}

/// `backward_with_workspace` on the GPU: bitwise equal to `backward` in deterministic mode with
/// a NaN-filled workspace reused dirty; in atomic mode judged against the reference twice on
/// one workspace (the call must zero its dQ accumulator); too short or misaligned refused.
#[test]
fn caller_workspace_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut bad = Vec::new();
    for (i, case) in check::suite().into_iter().step_by(23).enumerate() {
        let x = case.inputs::<bf16>(80 + i as u64);
        let det = AttnCase {
            opts: case.opts.with_deterministic(true),
            ..case.clone()
        };
        let name = det.describe::<bf16>();
        let len = backward_workspace_len::<bf16>(&det.shape(), &det.opts).unwrap();
        let mut ws = gpu.stream().clone_htod(&vec![f32::NAN; len]).unwrap();
        let own = grad_bits(&det.backward_on(&gpu, &x).unwrap());
        for run in 0..2 {
            let g = det.backward_on_with(&gpu, &x, Some(&mut ws)).unwrap();
            assert_eq!(own, grad_bits(&g), "{name}: workspace run {run} differs");
        }
        let len = backward_workspace_len::<bf16>(&case.shape(), &case.opts).unwrap();
        let mut ws = gpu.stream().clone_htod(&vec![f32::NAN; len]).unwrap();
        for _ in 0..2 {
            let g = case.backward_on_with(&gpu, &x, Some(&mut ws)).unwrap();
            bad.extend(failures(&case.judge_backward("cuda", &x, &g)));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    let (b, sq, sk, h, d) = (1, 33, 20, 2, 64);
    let shape = Shape::dense(b, sq, sk, h, h, d);
    let opts = AttentionOptions::new(Activation::Softmax { sink: false });
    let needed = backward_workspace_len::<bf16>(&shape, &opts).unwrap();
    let mut rng = Rng::new(5);
    let (qs, ks) = (Strides::contiguous(sq, h, d), Strides::contiguous(sk, h, d));
    let st = gpu.stream();
    let mut up = |n: usize| st.clone_htod(&rng.vec::<bf16>(n)).unwrap();
    let (q, o, d_o, k, v) = (
        up(b * sq * h * d),
        up(b * sq * h * d),
        up(b * sq * h * d),
        up(b * sk * h * d),
        up(b * sk * h * d),
    );
    let lse = st.clone_htod(&vec![1.0f32; b * h * sq]).unwrap();
    let mut dq = st.clone_htod(&vec![bf16::NAN; q.len()]).unwrap();
    let mut dk = st.clone_htod(&vec![bf16::NAN; k.len()]).unwrap();
    let mut dv = st.clone_htod(&vec![bf16::NAN; k.len()]).unwrap();
    let mut ws = st.clone_htod(&vec![f32::NAN; needed + 1]).unwrap();
    let t = |data, strides| TensorRef { data, strides };
    let mut call = |ws: &mut cudarc::driver::CudaViewMut<'_, f32>| {
        gpu.backward_with_workspace(
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
                dsink: None::<&mut cudarc::driver::CudaSlice<f32>>,
                dbias: None,
            },
            ws,
        )
    };
    assert_eq!(
        call(&mut ws.slice_mut(2..)),
        Err(Error::WorkspaceTooSmall {
            needed,
            len: needed - 1
        })
    );
    assert!(matches!(
        call(&mut ws.slice_mut(1..)),
        Err(Error::Misaligned {
            tensor: TensorName::Workspace,
            ..
        })
    ));
    let untouched = |g: Vec<bf16>| g.iter().all(|x| x.is_nan());
    assert!(untouched(st.clone_dtoh(&dq).unwrap()), "dq was written");
    assert!(untouched(st.clone_dtoh(&dk).unwrap()), "dk was written");
}

/// A backend made for a stream of the caller's runs the passes there: a sample of the suite,
/// forward and backward, on a new stream of the same context.
#[test]
fn passes_on_a_stream_of_the_callers() {
    let Some(gpu) = gpu() else { return };
    let stream = gpu.stream().context().new_stream().unwrap();
    let own = gpu.on_stream(stream).unwrap();
    let mut bad = Vec::new();
    for (i, case) in check::suite().into_iter().step_by(11).enumerate() {
        bad.extend(failures(
            &case.run_forward::<bf16, _>(&own, 300 + i as u64).unwrap(),
        ));
        bad.extend(failures(
            &case.run_backward::<bf16, _>(&own, 400 + i as u64).unwrap(),
        ));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Device buffers of one case's forward and backward, kept across calls (a graph's launches
/// read and write the buffers it was captured with).
struct PassBuffers {
    q: CudaSlice<bf16>,
    k: CudaSlice<bf16>,
    v: CudaSlice<bf16>,
    d_o: CudaSlice<bf16>,
    o: CudaSlice<bf16>,
    stat: Option<CudaSlice<f32>>,
    sink: Option<CudaSlice<f32>>,
    bias: Option<CudaSlice<f32>>,
    dq: CudaSlice<bf16>,
    dk: CudaSlice<bf16>,
    dv: CudaSlice<bf16>,
    dsink: Option<CudaSlice<f32>>,
    dbias: Option<CudaSlice<f32>>,
    workspace: CudaSlice<f32>,
}

impl PassBuffers {
    fn new(st: &Arc<CudaStream>, case: &AttnCase, x: &AttnInputs<bf16>) -> Self {
        let nan = |n: usize| st.clone_htod(&vec![bf16::NAN; n]).unwrap();
        let nan32 = |n: usize| st.clone_htod(&vec![f32::NAN; n]).unwrap();
        let ws = backward_workspace_len::<bf16>(&case.shape(), &case.opts).unwrap();
        PassBuffers {
            q: nan(x.q.len()),
            k: nan(x.k.len()),
            v: nan(x.v.len()),
            d_o: nan(x.d_o.len()),
            o: nan(x.q.len()),
            stat: case
                .opts
                .activation
                .has_row_stat()
                .then(|| nan32(case.row_stat_len())),
            sink: x.sink.as_ref().map(|s| nan32(s.len())),
            bias: x.bias.as_ref().map(|b| nan32(b.len())),
            dq: nan(x.q.len()),
            dk: nan(x.k.len()),
            dv: nan(x.v.len()),
            dsink: x.sink.as_ref().map(|s| nan32(s.len())),
            dbias: x.bias.as_ref().map(|b| nan32(b.len())),
            workspace: nan32(ws),
        }
    }

    /// Writes `x` into the inputs and NaN into every output and the workspace.
    fn load(&mut self, st: &Arc<CudaStream>, x: &AttnInputs<bf16>) {
        for (src, dst) in [
            (&x.q, &mut self.q),
            (&x.k, &mut self.k),
            (&x.v, &mut self.v),
            (&x.d_o, &mut self.d_o),
        ] {
            st.memcpy_htod(src, dst).unwrap();
        }
        for (src, dst) in [(&x.sink, &mut self.sink), (&x.bias, &mut self.bias)] {
            if let (Some(src), Some(dst)) = (src, dst) {
                st.memcpy_htod(src, dst).unwrap();
            }
        }
        for dst in [&mut self.o, &mut self.dq, &mut self.dk, &mut self.dv] {
            st.memcpy_htod(&vec![bf16::NAN; dst.len()], dst).unwrap();
        }
        let optional = [&mut self.stat, &mut self.dsink, &mut self.dbias];
        for dst in optional.into_iter().flatten().chain([&mut self.workspace]) {
            st.memcpy_htod(&vec![f32::NAN; dst.len()], dst).unwrap();
        }
    }

    /// The forward, then the backward in the caller's workspace, queued on `gpu`'s stream.
    fn run(&mut self, gpu: &CudaBackend, case: &AttnCase) -> sinkless::Result<()> {
        let (qs, ks) = (case.q_strides(), case.k_strides());
        let t = |data, strides| TensorRef { data, strides };
        let shape = case.shape();
        gpu.forward(
            &shape,
            &case.opts,
            ForwardInputs {
                q: t(&self.q, qs),
                k: t(&self.k, ks),
                v: t(&self.v, ks),
                sink: self.sink.as_ref(),
                bias: self.bias.as_ref(),
            },
            ForwardOutputs {
                o: TensorMut {
                    data: &mut self.o,
                    strides: qs,
                },
                row_stat: self.stat.as_mut(),
            },
        )?;
        gpu.backward_with_workspace(
            &shape,
            &case.opts,
            BackwardInputs {
                q: t(&self.q, qs),
                k: t(&self.k, ks),
                v: t(&self.v, ks),
                o: t(&self.o, qs),
                d_o: t(&self.d_o, qs),
                row_stat: self.stat.as_ref(),
                sink: self.sink.as_ref(),
                bias: self.bias.as_ref(),
            },
            BackwardOutputs {
                dq: TensorMut {
                    data: &mut self.dq,
                    strides: qs,
                },
                dk: TensorMut {
                    data: &mut self.dk,
                    strides: ks,
                },
                dv: TensorMut {
                    data: &mut self.dv,
                    strides: ks,
                },
                dsink: self.dsink.as_mut(),
                dbias: self.dbias.as_mut(),
            },
            &mut self.workspace,
        )
    }

    /// The outputs, judged against the reference for inputs `x`.
    fn judge(&self, st: &Arc<CudaStream>, case: &AttnCase, x: &AttnInputs<bf16>) -> Vec<String> {
        let down32 = |b: &Option<CudaSlice<f32>>| b.as_ref().map(|b| st.clone_dtoh(b).unwrap());
        let o = st.clone_dtoh(&self.o).unwrap();
        let stat = down32(&self.stat);
        let grads = AttnGrads {
            dq: st.clone_dtoh(&self.dq).unwrap(),
            dk: st.clone_dtoh(&self.dk).unwrap(),
            dv: st.clone_dtoh(&self.dv).unwrap(),
            dsink: down32(&self.dsink),
            dbias: down32(&self.dbias),
        };
        let mut bad = failures(&case.judge_forward("cuda graph", x, &o, stat.as_deref()));
        bad.extend(failures(&case.judge_backward("cuda graph", x, &grads)));
        bad
    }
}

/// The passes in a CUDA graph: after one eager forward and backward (caller workspace) on a
/// stream of the caller's, the same calls are captured into one graph, which is then replayed
/// on new inputs written into the same buffers and judged each time. A call that allocated or
/// copied from the host (the varlen lengths before the backend kept them) would fail the
/// capture. Two varlen cases (softmax with sinks, sigmoid with a per-head bias) and a dense
/// causal one.
#[test]
fn passes_replay_from_a_cuda_graph() {
    let Some(gpu) = gpu() else { return };
    let st = gpu.stream().context().new_stream().unwrap();
    let own = gpu.on_stream(st.clone()).unwrap();
    let suite = check::suite();
    let find = |varlen: bool, act: &dyn Fn(&AttentionOptions) -> bool| {
        suite
            .iter()
            .find(|c| matches!(c.lengths, Lengths::Varlen { .. }) == varlen && act(&c.opts))
            .expect("a case of the suite")
            .clone()
    };
    let cases = [
        find(true, &|o| {
            o.activation == Activation::Softmax { sink: true }
        }),
        find(true, &|o| {
            o.activation
                == Activation::Sigmoid {
                    bias: SigmoidBias::PerHead,
                }
        }),
        find(false, &|o| o.mask == Mask::CAUSAL),
    ];
    let mut bad = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let seed = 500 + 10 * i as u64;
        let x = case.inputs::<bf16>(seed);
        let mut bufs = PassBuffers::new(&st, case, &x);
        bufs.load(&st, &x);
        bufs.run(&own, case).unwrap();
        bad.extend(bufs.judge(&st, case, &x));
        st.synchronize().unwrap();
        st.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .unwrap();
        let captured = bufs.run(&own, case);
        let graph = st.end_capture(CUgraphInstantiate_flags(0));
        captured.unwrap();
        let graph = graph.unwrap().expect("the capture holds the passes");
        for replay in 1..3 {
            let x = case.inputs::<bf16>(seed + replay);
            bufs.load(&st, &x);
            graph.launch().unwrap();
            bad.extend(bufs.judge(&st, case, &x));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The wait with a deadline on a kernel that does not end (`conf_spin`, released by the test
/// from a second stream): the timeout names the kernel, the backend then refuses at once, a new
/// backend works. First, the skip list: a backend made while `SINKLESS_SKIP_KERNELS` names the
/// kernel refuses to launch it (one test, so that no other backend reads the variable while it
/// is set to a kernel only this test launches).
#[test]
fn a_kernel_that_does_not_end_stops_the_wait_and_is_named() {
    use sinkless::conformance::queue_spin;
    use std::time::{Duration, Instant};
    let Some(gpu) = gpu() else { return };
    let stream = gpu.stream().clone();
    // made before the spin starts: a context's first extra stream may synchronise it
    let other = stream.context().new_stream().unwrap();
    let release = stream.alloc_zeros::<u32>(1).unwrap();
    let mut done = stream.clone_htod(&[7u32]).unwrap();
    let release_at = {
        use cudarc::driver::DevicePtr;
        release.device_ptr(&stream).0
    };

    std::env::set_var(
        "SINKLESS_SKIP_KERNELS",
        "sinkless_rowdot_f16, sinkless_conf_spin",
    );
    let skipping = CudaBackend::new(0);
    std::env::remove_var("SINKLESS_SKIP_KERNELS");
    assert_eq!(
        queue_spin(&skipping.unwrap(), &release, &mut done),
        Err(Error::KernelSkipped {
            kernel: "sinkless_conf_spin".into()
        })
    );

    gpu.synchronize_within(Duration::from_secs(30)).unwrap();
    // a kernel that ends, queued first: the timeout lists both and names the spin as the one
    // that did not end
    let shape = Shape::dense(1, 16, 16, 2, 2, 64);
    let x = stream.clone_htod(&vec![bf16::ONE; 16 * 2 * 64]).unwrap();
    let mut row_dot = stream.alloc_zeros::<f32>(2 * 16).unwrap();
    let st = Strides::contiguous(16, 2, 64);
    let xr = TensorRef {
        data: &x,
        strides: st,
    };
    gpu.row_dot(&shape, xr, xr, &mut row_dot).unwrap();
    queue_spin(&gpu, &release, &mut done).unwrap();
    let start = Instant::now();
    let timeout = gpu.synchronize_within(Duration::from_millis(300));
    let waited = start.elapsed();
    // the release comes before any assertion, so that a failing test leaves no kernel running
    // SAFETY: one byte of a live allocation of 4, on a stream of its context.
    unsafe { cudarc::driver::result::memset_d8_async(release_at, 1, 1, other.cu_stream()) }
        .unwrap();
    other.synchronize().unwrap();

    let err = timeout.unwrap_err();
    match &err {
        Error::GpuTimeout {
            waited_ms,
            running,
            kernels,
        } => {
            assert_eq!(running.as_deref(), Some("sinkless_conf_spin"));
            assert_eq!(kernels, &["sinkless_rowdot_bf16", "sinkless_conf_spin"]);
            assert!(*waited_ms >= 300, "waited {waited_ms} ms");
        }
        e => panic!("expected GpuTimeout, got {e:?}"),
    }
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    let start = Instant::now();
    assert_eq!(
        gpu.synchronize_within(Duration::from_secs(30)),
        Err(err.clone())
    );
    assert_eq!(queue_spin(&gpu, &release, &mut done), Err(err.clone()));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "refused only after {:?}",
        start.elapsed()
    );
    assert_eq!(gpu.timed_out(), Some(err));

    stream.synchronize().unwrap();
    assert_eq!(
        stream.clone_dtoh(&done).unwrap(),
        vec![1],
        "the kernel never saw its release"
    );
    let fresh = CudaBackend::new(0).unwrap();
    assert_eq!(fresh.timed_out(), None);
    assert_eq!(fresh.synchronize_within(Duration::from_secs(30)), Ok(()));
}
