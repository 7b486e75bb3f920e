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
