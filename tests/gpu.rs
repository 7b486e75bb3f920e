//! The GPU correctness suite: the same fixed cases as the emulator suites, on GPU 0. Skips with
//! a message when there is no GPU or the build has no kernels.

use sinkless::check::{self, row_dot_cases};
use sinkless::CudaBackend;

fn gpu() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipped: no GPU run ({e})");
            None
        }
    }
}

#[test]
fn forward_suite_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut bad = Vec::new();
    for (i, case) in check::suite().iter().enumerate() {
        let seed = 5000 + i as u64;
        for r in case
            .run_forward_cuda::<half::f16>(&gpu, seed)
            .unwrap()
            .into_iter()
            .chain(case.run_forward_cuda::<half::bf16>(&gpu, seed ^ 7).unwrap())
        {
            if !r.passed() {
                bad.push(format!(
                    "{}: max error {:e} > tolerance {:e}",
                    r.case, r.max_err, r.tol
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn backward_suite_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut bad = Vec::new();
    for (i, case) in check::suite().into_iter().enumerate() {
        let case = check::AttnCase {
            opts: case.opts.with_deterministic(i % 2 == 1),
            ..case
        };
        let seed = 7000 + i as u64;
        for r in case
            .run_backward_cuda::<half::f16>(&gpu, seed)
            .unwrap()
            .into_iter()
            .chain(
                case.run_backward_cuda::<half::bf16>(&gpu, seed ^ 7)
                    .unwrap(),
            )
        {
            if !r.passed() {
                bad.push(format!(
                    "{}: max error {:e} > tolerance {:e}",
                    r.case, r.max_err, r.tol
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn deterministic_backward_is_bitwise_reproducible_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    for case in check::suite().into_iter().step_by(17) {
        let case = check::AttnCase {
            opts: case.opts.with_deterministic(true),
            ..case
        };
        let x = case.inputs::<half::bf16>(3);
        let a = case.backward_cuda(&gpu, &x).unwrap();
        let b = case.backward_cuda(&gpu, &x).unwrap();
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
