//! The GPU correctness suite: the same fixed cases as the emulator suites, on GPU 0. Skips with
//! a message when there is no GPU or the build has no kernels.

use half::bf16;
use sinkless::check::{self, failures, row_dot_cases, AttnCase, AttnGrads, CaseResult, Rng};
use sinkless::{
    backward_workspace_len, Activation, AttentionOptions, BackwardInputs, BackwardOutputs,
    CudaBackend, Error, Shape, Strides, TensorMut, TensorName, TensorRef,
};

fn gpu() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(g) => Some(g),
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
    for case in check::suite().into_iter().step_by(17) {
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
