//! How long the emulator takes: one attention-sized launch (the softmax forward, bf16, head dim
//! 128, batch 1, 4 heads, seqlen 512: 8 x 4 blocks of 128 threads, 32 k-tiles each) and one
//! conformance `mma` launch (one warp, 64 `ldmatrix` + `mma.m16n8k16` steps). This is the cost
//! of testing a kernel change on a machine without a GPU.
//!
//! `cargo bench --bench emulator`

use criterion::{criterion_group, criterion_main, Criterion};
use half::bf16;
use sinkless::check::{AttnCase, Lengths};
use sinkless::conformance::{run_emulator, ConformanceCase, Kernel};
use sinkless::{Activation, AttentionOptions, DType, Emulator};

fn softmax_forward(c: &mut Criterion) {
    let case = AttnCase {
        lengths: Lengths::Dense {
            batch: 1,
            seqlen_q: 512,
            seqlen_k: 512,
        },
        heads_q: 4,
        heads_kv: 4,
        head_dim: 128,
        opts: AttentionOptions::new(Activation::Softmax { sink: false }),
        row_pad: 0,
        qk_std: 1.0,
    };
    let x = case.inputs::<bf16>(1);
    let emu = Emulator::new();
    c.bench_function("emulator softmax fwd bf16 hd128 b1 h4 s512", |b| {
        b.iter(|| {
            case.forward_on(&emu, &x)
                .expect("the forward runs on the emulator")
        })
    });
}

fn conformance_mma(c: &mut Criterion) {
    let case = ConformanceCase::new(
        Kernel::Mma {
            dtype: DType::BF16,
            k: 1024,
            ldmatrix: true,
        },
        1,
    );
    let emu = Emulator::new();
    c.bench_function("emulator conformance mma bf16 k=1024 ldmatrix", |b| {
        b.iter(|| run_emulator(&emu, &case).expect("the mma launch runs"))
    });
}

criterion_group! {
    name = benches;
    // Each iteration is a whole launch (tens of milliseconds and more): ten samples keep the
    // run short.
    config = Criterion::default().sample_size(10);
    targets = softmax_forward, conformance_mma
}
criterion_main!(benches);
