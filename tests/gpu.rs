//! The GPU correctness suite: the same fixed cases as the emulator suites, on GPU 0. Skips with
//! a message when there is no GPU or the build has no kernels.

use sinkless::check::{self, failures, row_dot_cases, AttnCase, CaseResult};
use sinkless::CudaBackend;

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
        let bits = |g: &check::AttnGrads<half::bf16>| {
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
        };
        assert_eq!(
            bits(&a),
            bits(&b),
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
