//! Timing: CUDA events around each run with the L2 cache flushed before it, and a wall-clock
//! twin for the CPU backends (the dry run).
//!
//! Each timed run is `flush; record start; work; record end`, so the work starts with a cold L2
//! (as it would in a model, where other layers ran in between) and the flush itself is outside
//! the events. The flush is a 256 MiB memset, several times the largest L2 of the GPUs this
//! crate targets (50 MB on H100, 60 MB on H200), the same as Triton's `do_bench` uses. Runs are
//! queued without host synchronisation and read back after each batch, so the host's launch
//! overhead overlaps the previous run instead of showing up as idle GPU time.

use super::{BenchError, Stats};
use crate::backend::watch::sync_limit;
use crate::CudaBackend;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaSlice, CudaStream};
use std::sync::Arc;
use std::time::Instant;

/// How many runs to time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Untimed runs first (module loading, clocks ramping up, allocator warm-up).
    pub warmup: usize,
    /// Timed runs at least.
    pub min_runs: usize,
    /// Timed runs at most.
    pub max_runs: usize,
    /// Keep adding batches of `min_runs` until the timed runs add up to this many milliseconds
    /// (or `max_runs` is reached): short kernels get many samples, long ones few.
    pub min_total_ms: f64,
}

impl Timing {
    /// A GPU run: 5 warm-ups, then 20 to 200 timed runs, at least 200 ms of them.
    pub const GPU: Timing = Timing {
        warmup: 5,
        min_runs: 20,
        max_runs: 200,
        min_total_ms: 200.0,
    };

    /// One run, no warm-up: enough to exercise every kernel under compute-sanitizer or the
    /// emulator.
    pub const ONCE: Timing = Timing {
        warmup: 0,
        min_runs: 1,
        max_runs: 1,
        min_total_ms: 0.0,
    };

    /// Whether another batch is needed after `samples`.
    fn wants_more(&self, samples: &[f64]) -> bool {
        samples.len() < self.min_runs
            || (samples.len() < self.max_runs && samples.iter().sum::<f64>() < self.min_total_ms)
    }
}

/// Bytes the L2 flush writes before each timed run.
pub const FLUSH_BYTES: usize = 256 << 20;

/// Times work queued on a GPU's stream with CUDA events. Its waits have a deadline
/// ([`CudaBackend::synchronize_within`], [`sync_limit`]), so a kernel that hangs ends the timing
/// with [`Error::GpuTimeout`](crate::Error::GpuTimeout) naming it.
pub struct CudaTimer<'a> {
    gpu: &'a CudaBackend,
    stream: Arc<CudaStream>,
    flush: Option<CudaSlice<u8>>,
}

fn cuda(during: &'static str) -> impl Fn(cudarc::driver::DriverError) -> BenchError {
    move |e| {
        BenchError::Kernel(crate::Error::Cuda {
            during,
            message: format!("{e:?}"),
        })
    }
}

impl<'a> CudaTimer<'a> {
    /// A timer on `gpu`'s stream; with `flush`, it allocates the [`FLUSH_BYTES`] scratch buffer
    /// (leave it off under compute-sanitizer, where it only costs time).
    ///
    /// # Errors
    /// [`BenchError::Kernel`] if the scratch buffer cannot be allocated.
    pub fn new(gpu: &'a CudaBackend, flush: bool) -> Result<CudaTimer<'a>, BenchError> {
        let stream = gpu.stream().clone();
        let flush = if flush {
            Some(
                stream
                    .alloc_zeros::<u8>(FLUSH_BYTES)
                    .map_err(cuda("allocating the L2 flush buffer"))?,
            )
        } else {
            None
        };
        Ok(CudaTimer { gpu, stream, flush })
    }

    /// Runs `work` `timing.warmup` times, then times it; `work` must only queue on the
    /// backend's stream.
    ///
    /// # Errors
    /// The first error of `work`, or a CUDA error of the events or the flush.
    pub fn time(
        &mut self,
        timing: &Timing,
        work: &mut dyn FnMut() -> crate::Result<()>,
    ) -> Result<Stats, BenchError> {
        for _ in 0..timing.warmup {
            work()?;
        }
        self.gpu.synchronize_within(sync_limit())?;
        let mut samples = Vec::new();
        while timing.wants_more(&samples) {
            let batch = timing.min_runs.min(timing.max_runs - samples.len()).max(1);
            let mut events: Vec<(CudaEvent, CudaEvent)> = Vec::with_capacity(batch);
            for _ in 0..batch {
                if let Some(f) = self.flush.as_mut() {
                    self.stream
                        .memset_zeros(f)
                        .map_err(cuda("flushing the L2 cache"))?;
                }
                let start = self.event("recording the start event")?;
                work()?;
                let end = self.event("recording the end event")?;
                events.push((start, end));
            }
            self.gpu.synchronize_within(sync_limit())?;
            for (start, end) in &events {
                let ms = start
                    .elapsed_ms(end)
                    .map_err(cuda("reading an event time"))?;
                samples.push(f64::from(ms));
            }
        }
        Ok(Stats::of(&samples).expect("at least one timed run"))
    }

    fn event(&self, during: &'static str) -> Result<CudaEvent, BenchError> {
        self.stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(cuda(during))
    }
}

/// Times synchronous host work (the emulator, the float64 reference) by the wall clock.
///
/// # Errors
/// The first error of `work`.
pub fn time_wall(
    timing: &Timing,
    work: &mut dyn FnMut() -> crate::Result<()>,
) -> crate::Result<Stats> {
    for _ in 0..timing.warmup {
        work()?;
    }
    let mut samples = Vec::new();
    while timing.wants_more(&samples) {
        let t = Instant::now();
        work()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Stats::of(&samples).expect("at least one timed run"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_until_enough_samples_and_enough_time() {
        let t = Timing {
            warmup: 2,
            min_runs: 3,
            max_runs: 7,
            min_total_ms: 1e9,
        };
        let mut calls = 0;
        let s = time_wall(&t, &mut || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        // Never reaches the time target, so it stops at max_runs.
        assert_eq!((s.runs, calls), (7, 9));
        let once = time_wall(&Timing::ONCE, &mut || Ok(())).unwrap();
        assert_eq!(once.runs, 1);
        assert!(once.median_ms >= 0.0);
    }

    #[test]
    fn errors_stop_the_timing() {
        let e = time_wall(&Timing::GPU, &mut || {
            Err(crate::Error::Unsupported {
                feature: "test".into(),
            })
        });
        assert!(e.is_err());
    }
}
