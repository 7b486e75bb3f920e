//! Waiting for the GPU with a deadline, so that a kernel that hangs ends a run with its name
//! instead of stalling it until an outer time limit kills the process with nothing said.
//!
//! A hung kernel cannot be stopped from the host: the context stays busy until the process
//! exits. So the waits of the checking and benchmarking code ([`crate::check`], the `sinkless`
//! command's benchmark timer) poll an event with a deadline, the error names the kernels queued
//! since the last wait ([`Error::GpuTimeout`]), and the caller stops.
//! A later process can leave those kernels out (`SINKLESS_SKIP_KERNELS`, see
//! [`skip_list_from_env`]): `scripts/gpu-run.sh` does so for the rest of a GPU lease.

use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// The exit status of `sinkless check` and `sinkless bench` after a wait timed out.
pub const HUNG_STATUS: u8 = 3;

/// The line `sinkless check` and `sinkless bench` end with after `e`, an
/// [`Error::GpuTimeout`], and that `scripts/gpu-run.sh` reads: `hung kernels: ` and the kernel
/// that did not end, or, where that is not known, every kernel queued since the last wait.
/// `None` for any other error.
pub fn hung_report(e: &Error) -> Option<String> {
    let Error::GpuTimeout {
        running, kernels, ..
    } = e
    else {
        return None;
    };
    let names = match running {
        Some(k) => k.clone(),
        None => kernels.join(","),
    };
    Some(format!("hung kernels: {names}"))
}

/// The environment variable that sets [`sync_limit`], in seconds.
pub const SYNC_TIMEOUT_VAR: &str = "SINKLESS_SYNC_TIMEOUT_S";
/// The environment variable that names kernels the CUDA backend refuses to launch.
pub const SKIP_KERNELS_VAR: &str = "SINKLESS_SKIP_KERNELS";
/// The default of [`sync_limit`]: far above any launch the checks and benchmarks make (the
/// largest, a backward at seqlen 16k, takes milliseconds), far below a GPU lease.
pub const DEFAULT_SYNC_LIMIT: Duration = Duration::from_secs(30);

/// How long the checks and benchmarks wait for the GPU: `SINKLESS_SYNC_TIMEOUT_S` (seconds, a
/// positive number) or [`DEFAULT_SYNC_LIMIT`].
pub fn sync_limit() -> Duration {
    parse_limit(std::env::var(SYNC_TIMEOUT_VAR).ok().as_deref())
}

fn parse_limit(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_SYNC_LIMIT, Duration::from_secs_f64)
}

/// The kernel names in `SINKLESS_SKIP_KERNELS` (separated by commas or white space).
pub fn skip_list_from_env() -> Vec<String> {
    parse_skip_list(std::env::var(SKIP_KERNELS_VAR).ok().as_deref())
}

fn parse_skip_list(value: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in value
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
    {
        if !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    names
}

/// The launches on a stream since its last completed wait: each kernel's name once (what a
/// timeout lists), and, when the backend tracks launches, an event after each launch (`E`: the
/// CUDA backend's event type), from which a timeout tells the first launch that had not ended.
/// At most [`Launches::KEPT`] events are kept, the oldest dropped first (by then long done, or
/// the caller would have waited), so a caller that never waits holds bounded memory.
#[derive(Debug)]
pub(crate) struct Launches<E> {
    names: Vec<&'static str>,
    events: std::collections::VecDeque<(&'static str, E)>,
}

impl<E> Default for Launches<E> {
    fn default() -> Self {
        Launches {
            names: Vec::new(),
            events: std::collections::VecDeque::new(),
        }
    }
}

impl<E> Launches<E> {
    /// Events kept at most.
    pub(crate) const KEPT: usize = 4096;

    /// Notes a launch of `name`, with the event recorded after it if any.
    pub(crate) fn push(&mut self, name: &'static str, event: Option<E>) {
        if !self.names.contains(&name) {
            self.names.push(name);
        }
        if let Some(e) = event {
            if self.events.len() == Self::KEPT {
                self.events.pop_front();
            }
            self.events.push_back((name, e));
        }
    }

    /// Every kernel launched, each once, in order of first launch.
    pub(crate) fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The kernel of the first launch whose event `complete` says has not happened: the launch
    /// the rest of the stream waits behind. `None` without events, or when all have happened.
    pub(crate) fn first_unfinished(
        &self,
        mut complete: impl FnMut(&E) -> bool,
    ) -> Option<&'static str> {
        self.events
            .iter()
            .find(|(_, e)| !complete(e))
            .map(|(name, _)| *name)
    }

    /// Forgets every launch (after a wait that saw them all end).
    pub(crate) fn clear(&mut self) {
        self.names.clear();
        self.events.clear();
    }
}

/// Calls `done` until it returns `Ok(true)` (`Ok(true)` back) or `limit` has passed since the
/// first call (`Ok(false)`); an error of `done` ends the wait at once. Sleeps between calls,
/// from 20 us doubling to 2 ms, so a short wait costs little latency and a long one little CPU.
pub(crate) fn poll_until(limit: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    let mut nap = Duration::from_micros(20);
    loop {
        if done()? {
            return Ok(true);
        }
        let waited = start.elapsed();
        if waited >= limit {
            return Ok(false);
        }
        std::thread::sleep(nap.min(limit - waited));
        nap = (nap * 2).min(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_wait_ends_when_the_work_is_done_and_not_before() {
        let mut calls = 0;
        let done = poll_until(Duration::from_secs(5), || {
            calls += 1;
            Ok(calls == 4)
        });
        assert_eq!(done, Ok(true));
        assert_eq!(calls, 4);
    }

    #[test]
    fn a_wait_gives_up_at_its_limit() {
        let start = Instant::now();
        let mut calls = 0;
        let done = poll_until(Duration::from_millis(60), || {
            calls += 1;
            Ok(false)
        });
        let waited = start.elapsed();
        assert_eq!(done, Ok(false));
        assert!(
            waited >= Duration::from_millis(60),
            "gave up after {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "overslept: {waited:?}");
        assert!(calls > 3, "polled only {calls} times");
    }

    #[test]
    fn an_error_ends_a_wait_at_once() {
        let mut calls = 0;
        let err = Error::Cuda {
            during: "querying an event",
            message: "illegal address".into(),
        };
        let got = poll_until(Duration::from_secs(5), || {
            calls += 1;
            if calls == 2 {
                Err(err.clone())
            } else {
                Ok(false)
            }
        });
        assert_eq!(got, Err(err));
        assert_eq!(calls, 2);
    }

    #[test]
    fn launches_name_each_kernel_once_and_find_the_first_that_did_not_end() {
        // an event is the launch's index; `complete` says which have happened
        let mut l = Launches::default();
        assert_eq!(l.first_unfinished(|_: &usize| false), None);
        for (i, k) in ["rowdot", "bwd", "dq", "bwd", "rowdot"]
            .into_iter()
            .enumerate()
        {
            l.push(k, Some(i));
        }
        l.push("untracked", None);
        assert_eq!(l.names(), ["rowdot", "bwd", "dq", "untracked"]);
        assert_eq!(l.first_unfinished(|&i| i < 3), Some("bwd"));
        assert_eq!(l.first_unfinished(|&i| i < 1), Some("bwd"));
        assert_eq!(l.first_unfinished(|_| false), Some("rowdot"));
        assert_eq!(l.first_unfinished(|_| true), None);
        l.clear();
        assert!(l.names().is_empty());
        assert_eq!(l.first_unfinished(|_| false), None);
        // bounded: the oldest events go first
        for i in 0..Launches::<usize>::KEPT + 10 {
            l.push(if i < 10 { "early" } else { "late" }, Some(i));
        }
        assert_eq!(l.events.len(), Launches::<usize>::KEPT);
        assert_eq!(l.first_unfinished(|_| false), Some("late"));
        assert_eq!(l.names(), ["early", "late"]);
    }

    #[test]
    fn a_hang_report_names_the_kernel_that_did_not_end_else_every_one_queued() {
        let e = |running: Option<&str>| Error::GpuTimeout {
            waited_ms: 30_000,
            running: running.map(str::to_string),
            kernels: vec!["sinkless_rowdot_bf16".into(), "sinkless_x".into()],
        };
        assert_eq!(
            hung_report(&e(Some("sinkless_x"))).as_deref(),
            Some("hung kernels: sinkless_x")
        );
        assert_eq!(
            hung_report(&e(None)).as_deref(),
            Some("hung kernels: sinkless_rowdot_bf16,sinkless_x")
        );
        assert_eq!(hung_report(&Error::KernelsNotCompiled), None);
    }

    #[test]
    fn the_limit_and_the_skip_list_read_their_variables() {
        assert_eq!(parse_limit(None), DEFAULT_SYNC_LIMIT);
        assert_eq!(parse_limit(Some(" 2.5 ")), Duration::from_millis(2500));
        for bad in ["0", "-3", "nan", "inf", "soon", ""] {
            assert_eq!(parse_limit(Some(bad)), DEFAULT_SYNC_LIMIT, "{bad:?}");
        }
        assert!(parse_skip_list(None).is_empty());
        assert_eq!(
            parse_skip_list(Some("a_hd128, b  a_hd128,,c\n")),
            vec!["a_hd128", "b", "c"]
        );
    }
}
