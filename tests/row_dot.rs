//! The pipeline kernel `row_dot` (the softmax backward's `D = rowsum(dO * O)`) against the
//! float64 answer, on the emulator always and on the GPU when there is one.

use proptest::prelude::*;
use sinkless::check::{first_mismatches, row_dot_cases, RowDotCase, RowLayout};
use sinkless::Emulator;

fn assert_passes(r: sinkless::check::CaseResult) {
    assert!(
        r.passed(),
        "{}: max error {:e} > tolerance {:e}",
        r.case,
        r.max_err,
        r.tol
    );
}

#[test]
fn fixed_cases_on_the_emulator() {
    let emu = Emulator::new();
    for (i, case) in row_dot_cases().iter().enumerate() {
        assert_passes(case.run_emulator::<half::f16>(&emu, 10 + i as u64).unwrap());
        assert_passes(
            case.run_emulator::<half::bf16>(&emu, 20 + i as u64)
                .unwrap(),
        );
    }
}

fn layout() -> impl Strategy<Value = RowLayout> {
    prop_oneof![
        (1usize..4, 1usize..40).prop_map(|(b, s)| RowLayout::Dense(b, s)),
        prop::collection::vec(0i32..30, 1..5).prop_map(|lens| {
            let mut cu = vec![0];
            for l in lens {
                cu.push(cu.last().unwrap() + l);
            }
            RowLayout::Varlen(cu)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_on_the_emulator(
        rows in layout(),
        heads in 1usize..5,
        d8 in 1usize..=32,
        pad8 in 0usize..3,
        seed in any::<u64>(),
        bf16 in any::<bool>(),
    ) {
        let case = RowDotCase { rows, heads, head_dim: d8 * 8, row_pad: pad8 * 8 };
        let emu = Emulator::new().with_seed(seed);
        let r = if bf16 {
            case.run_emulator::<half::bf16>(&emu, seed).unwrap()
        } else {
            case.run_emulator::<half::f16>(&emu, seed).unwrap()
        };
        prop_assert!(r.passed(), "{}: max error {:e} > tolerance {:e}", r.case, r.max_err, r.tol);
    }
}

#[test]
fn first_mismatches_names_indices() {
    let s = first_mismatches(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.5], 0.1, 5);
    assert_eq!(s, "  [1] got NaN, want 2\n  [2] got 3, want 3.5");
}
