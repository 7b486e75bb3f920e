//! The attention kernels on GPU 0 under criterion, timed with CUDA events: bf16, head dims 64 and
//! 128, seqlen 512 to 16k at 16k tokens (batch · seqlen), causal and not, forward and backward,
//! softmax and sigmoid. Throughput is reported in FLOPs per second in FlashAttention's convention
//! (forward `4·b·h·s²·d`, halved when causal; backward 2.5x), so criterion's "elem/s" reads as
//! FLOP/s. Without a GPU it says so and measures nothing. `sinkless bench` (and the GPU run's
//! `scripts/gpu-run.sh`) time the same entry points with an L2 flush between runs and compare with
//! PyTorch; this bench is for quick A/B comparisons while tuning.
//!
//! `cargo bench --bench attention`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sinkless::bench::entries::{cuda_entries, AttnProblem, DeviceAttn, RandomPool};
use sinkless::bench::{attention_flops, Grid};
use sinkless::CudaBackend;
use std::time::Duration;

fn attention(c: &mut Criterion) {
    let gpu = match CudaBackend::new(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipped: no GPU benchmark ({e})");
            return;
        }
    };
    let shapes = Grid::full().shapes();
    let pool = RandomPool::new(shapes.iter().map(|s| s.elements()).max().unwrap_or(0), 42);
    let stream = gpu.stream().clone();
    let mut group = c.benchmark_group("attention");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for shape in &shapes {
        let mut buffers =
            DeviceAttn::new(&gpu, shape, &pool).expect("allocating the benchmark tensors");
        for e in cuda_entries() {
            let p = AttnProblem::new(*shape, e.activation);
            if let Some(setup) = e.setup {
                setup(&gpu, &p, &mut buffers).expect("the untimed forward");
            }
            group.throughput(Throughput::Elements(attention_flops(shape, e.pass) as u64));
            let id = format!("{} {:?} {shape}", e.activation.name(), e.pass);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let start = stream.record_event(None).expect("recording an event");
                    for _ in 0..iters {
                        (e.run)(&gpu, &p, &mut buffers).expect("the timed call");
                    }
                    let end = stream.record_event(None).expect("recording an event");
                    end.synchronize().expect("waiting for the GPU");
                    Duration::from_secs_f64(
                        f64::from(start.elapsed_ms(&end).expect("reading events")) * 1e-3,
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, attention);
criterion_main!(benches);
