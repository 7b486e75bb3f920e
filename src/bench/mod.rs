//! Benchmarks: the shape grid, FlashAttention's FLOP convention, a CUDA-event timer that flushes
//! the L2 cache between runs, JSON-lines records, the Markdown table and the plots.
//!
//! `sinkless bench` times this crate's kernels; `bench/torch_baselines.py` times PyTorch's SDPA
//! backends and an eager sigmoid attention on the same [`AttnShape`]s (it reads them from
//! `sinkless bench --print-grid`); both write [`Record`]s, one JSON object per line, and
//! `sinkless table` and `sinkless plot` read any mix of those files. `scripts/gpu-run.sh` runs
//! all of it on a lent GPU.
//!
//! The convention is FlashAttention's: `4·b·h·sq·sk·d` FLOPs for the forward, halved when
//! causal, and 2.5 times that for the backward; TFLOP/s are computed from the shape and the
//! median time, for every implementation alike.
//!
//! ```
//! use sinkless::bench::{attention_flops, AttnShape, Pass};
//! let s = AttnShape { batch: 4, seqlen: 4096, heads: 16, head_dim: 128, causal: false };
//! assert_eq!(attention_flops(&s, Pass::Forward), 4.0 * 4.0 * 16.0 * 4096.0 * 4096.0 * 128.0);
//! ```

pub mod cli;
pub mod entries;
pub mod json;
pub mod plot;
pub mod table;
pub mod timer;

use json::Object;
use std::fmt;
use std::path::{Path, PathBuf};

/// Forward or backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pass {
    /// The forward pass.
    Forward,
    /// The backward pass alone (the forward's outputs are inputs, not timed).
    Backward,
    /// The backward in deterministic mode (`AttentionOptions::deterministic`), timed in the
    /// comparison of kernel variants only.
    BackwardDeterministic,
}

impl Pass {
    /// `"fwd"` or `"bwd"`, as in the records.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::Backward => "bwd",
            Pass::BackwardDeterministic => "bwd_det",
        }
    }

    /// The inverse of [`name`](Self::name).
    pub fn from_name(s: &str) -> Option<Pass> {
        match s {
            "fwd" => Some(Pass::Forward),
            "bwd" => Some(Pass::Backward),
            "bwd_det" => Some(Pass::BackwardDeterministic),
            _ => None,
        }
    }
}

/// One benchmark shape: dense, self-attention (`sq = sk`), as many key heads as query heads,
/// inputs `[batch, seqlen, heads, head_dim]` contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttnShape {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence, queries and keys.
    pub seqlen: usize,
    /// Heads.
    pub heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Bottom-right-aligned causal mask (here `sq = sk`, so the usual lower triangle).
    pub causal: bool,
}

impl AttnShape {
    /// Elements of one `[batch, seqlen, heads, head_dim]` tensor.
    pub fn elements(&self) -> usize {
        self.batch * self.seqlen * self.heads * self.head_dim
    }

    /// Writes the shape's fields into a record.
    pub fn write(&self, o: &mut Object) {
        o.push("batch", self.batch)
            .push("seqlen", self.seqlen)
            .push("heads", self.heads)
            .push("head_dim", self.head_dim)
            .push("causal", self.causal);
    }

    /// Reads the fields [`write`](Self::write) wrote.
    pub fn read(o: &Object) -> Option<AttnShape> {
        Some(AttnShape {
            batch: o.count("batch")?,
            seqlen: o.count("seqlen")?,
            heads: o.count("heads")?,
            head_dim: o.count("head_dim")?,
            causal: o.bool("causal")?,
        })
    }
}

impl fmt::Display for AttnShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "b={} s={} h={} d={}{}",
            self.batch,
            self.seqlen,
            self.heads,
            self.head_dim,
            if self.causal { " causal" } else { "" }
        )
    }
}

/// FLOPs of one attention pass in FlashAttention's convention: the forward is two matrix
/// products, `4·b·h·sq·sk·d`, halved when causal (the masked half is skipped); the backward is
/// five products, 2.5 times the forward, in either mode.
pub fn attention_flops(s: &AttnShape, pass: Pass) -> f64 {
    let fwd = 4.0
        * s.batch as f64
        * s.heads as f64
        * s.seqlen as f64
        * s.seqlen as f64
        * s.head_dim as f64;
    let fwd = if s.causal { fwd / 2.0 } else { fwd };
    match pass {
        Pass::Forward => fwd,
        Pass::Backward | Pass::BackwardDeterministic => 2.5 * fwd,
    }
}

/// TFLOP/s of `flops` done in `ms` milliseconds.
pub fn tflops(flops: f64, ms: f64) -> f64 {
    flops / (ms * 1e-3) / 1e12
}

/// The benchmark grid: every head dimension × sequence length × causal flag, with
/// `batch = tokens / seqlen` and `heads = hidden / head_dim` (FlashAttention's benchmark uses
/// 16k tokens and a 2048-wide model).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    /// `batch · seqlen` of every shape.
    pub tokens: usize,
    /// `heads · head_dim` of every shape.
    pub hidden: usize,
    /// Head dimensions.
    pub head_dims: Vec<usize>,
    /// Sequence lengths.
    pub seqlens: Vec<usize>,
    /// Causal flags.
    pub causal: Vec<bool>,
}

impl Grid {
    /// The full grid of a GPU run: bf16, head dims 64 and 128, seqlen 512 to 16k, 16k tokens,
    /// causal and not.
    pub fn full() -> Grid {
        Grid {
            tokens: 16_384,
            hidden: 2048,
            head_dims: vec![64, 128],
            seqlens: vec![512, 1024, 2048, 4096, 8192, 16_384],
            causal: vec![false, true],
        }
    }

    /// The full grid's head dims and causal flags at seqlen 1k, 4k and 16k only: the comparison
    /// of kernel variants, in half the full grid's time.
    pub fn sparse() -> Grid {
        Grid {
            seqlens: vec![1024, 4096, 16_384],
            ..Grid::full()
        }
    }

    /// Shapes small enough for the emulator and the float64 reference (the dry run), and for
    /// compute-sanitizer on a GPU.
    pub fn tiny() -> Grid {
        Grid {
            tokens: 64,
            hidden: 128,
            head_dims: vec![64, 128],
            seqlens: vec![16, 32, 64],
            causal: vec![false, true],
        }
    }

    /// One configuration: `sinkless bench`'s default is head dim 128, seqlen 4096, not causal.
    pub fn single(head_dim: usize, seqlen: usize, causal: bool) -> Grid {
        Grid {
            tokens: seqlen.max(16_384),
            hidden: 2048.max(head_dim),
            head_dims: vec![head_dim],
            seqlens: vec![seqlen],
            causal: vec![causal],
        }
    }

    /// Every shape, ordered by head dim, causal flag, then sequence length.
    pub fn shapes(&self) -> Vec<AttnShape> {
        let mut v = Vec::new();
        for &head_dim in &self.head_dims {
            for &causal in &self.causal {
                for &seqlen in &self.seqlens {
                    v.push(AttnShape {
                        batch: (self.tokens / seqlen).max(1),
                        seqlen,
                        heads: (self.hidden / head_dim).max(1),
                        head_dim,
                        causal,
                    });
                }
            }
        }
        v
    }
}

/// Outcome of one measurement.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Timed.
    Ok,
    /// The implementation does not support this shape or is not available (a missing PyTorch
    /// backend, an entry point not written yet).
    Unsupported(String),
    /// It failed (out of memory, a launch error).
    Failed(String),
}

impl Status {
    fn write(&self, o: &mut Object) {
        match self {
            Status::Ok => o.push("status", "ok"),
            Status::Unsupported(m) => o.push("status", "unsupported").push("message", m.as_str()),
            Status::Failed(m) => o.push("status", "failed").push("message", m.as_str()),
        };
    }

    fn read(o: &Object) -> Status {
        let message = || o.str("message").unwrap_or("").to_owned();
        match o.str("status") {
            Some("ok") => Status::Ok,
            Some("unsupported") => Status::Unsupported(message()),
            Some(other) => Status::Failed(format!("{other}: {}", message())),
            None => Status::Failed("record without a status".into()),
        }
    }
}

/// Robust summary of repeated timings, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Timed runs.
    pub runs: usize,
    /// Median.
    pub median_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Stats {
    /// Median, min and max of `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stats {
            runs: n,
            median_ms: median,
            min_ms: s[0],
            max_ms: s[n - 1],
        })
    }

    fn write(&self, o: &mut Object) {
        o.push("runs", self.runs)
            .push("median_ms", self.median_ms)
            .push("min_ms", self.min_ms)
            .push("max_ms", self.max_ms);
    }

    fn read(o: &Object) -> Option<Stats> {
        Some(Stats {
            runs: o.count("runs")?,
            median_ms: o.num("median_ms")?,
            min_ms: o.num("min_ms").unwrap_or(f64::NAN),
            max_ms: o.num("max_ms").unwrap_or(f64::NAN),
        })
    }
}

/// One attention measurement: an implementation, an activation, a pass and a shape.
#[derive(Clone, Debug, PartialEq)]
pub struct AttnResult {
    /// Who ran it: `sinkless`, `torch-flash`, `torch-cudnn`, `torch-efficient`, `torch-eager`,
    /// `reference-f64` (the dry run's stand-in).
    pub implementation: String,
    /// `softmax` or `sigmoid`.
    pub activation: String,
    /// Forward or backward.
    pub pass: Pass,
    /// Element type of q, k, v, o and the gradients (`bf16` in a GPU run).
    pub dtype: String,
    /// The shape.
    pub shape: AttnShape,
    /// Timings, when it ran.
    pub stats: Option<Stats>,
    /// Whether it ran.
    pub status: Status,
}

impl AttnResult {
    /// TFLOP/s at the median time, in FlashAttention's convention; `None` unless timed.
    pub fn tflops(&self) -> Option<f64> {
        let st = self.stats.filter(|_| self.status == Status::Ok)?;
        Some(tflops(
            attention_flops(&self.shape, self.pass),
            st.median_ms,
        ))
    }
}

/// A bandwidth or throughput measurement: the two ceilings (device copy, bf16 matrix product)
/// and memory-bound kernels such as `row_dot`.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    /// What was measured: `copy`, `matmul`, `row_dot`.
    pub name: String,
    /// Who ran it: `sinkless`, `torch`, `cudarc`.
    pub implementation: String,
    /// The size, in words (`8192x8192x8192 bf16`).
    pub detail: String,
    /// Timings, when it ran.
    pub stats: Option<Stats>,
    /// The rate at the median time.
    pub value: Option<f64>,
    /// `GB/s` (bytes read plus written) or `TFLOP/s`.
    pub unit: String,
    /// Whether it ran.
    pub status: Status,
}

/// One line of a results file.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Facts about the run: date, commit, GPU, driver, clocks, SM count, versions.
    Run(Object),
    /// An attention measurement.
    Attention(AttnResult),
    /// A bandwidth or throughput measurement.
    Throughput(Throughput),
    /// A kind this version does not know; kept, not interpreted.
    Other(Object),
}

impl Record {
    /// The record as a JSON object.
    pub fn to_object(&self) -> Object {
        match self {
            Record::Run(o) => {
                let mut out = Object::new();
                out.push("kind", "run");
                for (k, v) in o.iter().filter(|(k, _)| *k != "kind") {
                    out.push(k, v.clone());
                }
                out
            }
            Record::Attention(a) => {
                let mut o = Object::new();
                o.push("kind", "attention")
                    .push("impl", a.implementation.as_str())
                    .push("activation", a.activation.as_str())
                    .push("pass", a.pass.name())
                    .push("dtype", a.dtype.as_str());
                a.shape.write(&mut o);
                o.push("flops", attention_flops(&a.shape, a.pass));
                if let Some(s) = &a.stats {
                    s.write(&mut o);
                }
                o.push("tflops", a.tflops());
                a.status.write(&mut o);
                o
            }
            Record::Throughput(t) => {
                let mut o = Object::new();
                o.push("kind", "throughput")
                    .push("name", t.name.as_str())
                    .push("impl", t.implementation.as_str())
                    .push("detail", t.detail.as_str());
                if let Some(s) = &t.stats {
                    s.write(&mut o);
                }
                o.push("value", t.value).push("unit", t.unit.as_str());
                t.status.write(&mut o);
                o
            }
            Record::Other(o) => o.clone(),
        }
    }

    /// Reads a record; an unknown `kind` becomes [`Record::Other`].
    ///
    /// # Errors
    /// A message naming the missing or malformed field of a known kind.
    pub fn from_object(o: Object) -> Result<Record, String> {
        let field = |k: &str| format!("{} record without a valid {k:?}", o.str("kind").unwrap());
        match o.str("kind") {
            Some("run") => Ok(Record::Run(o)),
            Some("attention") => Ok(Record::Attention(AttnResult {
                implementation: o.str("impl").ok_or_else(|| field("impl"))?.to_owned(),
                activation: o
                    .str("activation")
                    .ok_or_else(|| field("activation"))?
                    .to_owned(),
                pass: o
                    .str("pass")
                    .and_then(Pass::from_name)
                    .ok_or_else(|| field("pass"))?,
                dtype: o.str("dtype").unwrap_or("bf16").to_owned(),
                shape: AttnShape::read(&o).ok_or_else(|| field("shape"))?,
                stats: Stats::read(&o),
                status: Status::read(&o),
            })),
            Some("throughput") => Ok(Record::Throughput(Throughput {
                name: o.str("name").ok_or_else(|| field("name"))?.to_owned(),
                implementation: o.str("impl").unwrap_or("").to_owned(),
                detail: o.str("detail").unwrap_or("").to_owned(),
                stats: Stats::read(&o),
                value: o.num("value"),
                unit: o.str("unit").unwrap_or("").to_owned(),
                status: Status::read(&o),
            })),
            _ => Ok(Record::Other(o)),
        }
    }
}

/// Failures of the benchmark commands.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// Reading or writing a file.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// A line of a results file that is not a record.
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A command-line argument.
    Usage(String),
    /// The CUDA backend or a kernel.
    Kernel(crate::Error),
    /// Drawing a plot.
    Plot(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            BenchError::Parse {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            BenchError::Usage(m) => write!(f, "usage: {m}"),
            BenchError::Kernel(e) => write!(f, "{e}"),
            BenchError::Plot(m) => write!(f, "plot: {m}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<crate::Error> for BenchError {
    fn from(e: crate::Error) -> Self {
        BenchError::Kernel(e)
    }
}

/// Reads every record of a JSON-lines file; blank lines are skipped.
///
/// # Errors
/// [`BenchError::Io`] if the file cannot be read, [`BenchError::Parse`] for the first bad line.
pub fn read_records(path: &Path) -> Result<Vec<Record>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_err = |message: String| BenchError::Parse {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        let o = Object::parse(line).map_err(|e| parse_err(e.to_string()))?;
        out.push(Record::from_object(o).map_err(parse_err)?);
    }
    Ok(out)
}

/// Writes records as JSON lines.
pub fn to_lines(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| r.to_object().to_line() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_follow_flash_attention_convention() {
        let s = AttnShape {
            batch: 2,
            seqlen: 1024,
            heads: 16,
            head_dim: 128,
            causal: false,
        };
        let fwd = 4.0 * 2.0 * 16.0 * 1024.0 * 1024.0 * 128.0;
        assert_eq!(attention_flops(&s, Pass::Forward), fwd);
        assert_eq!(attention_flops(&s, Pass::Backward), 2.5 * fwd);
        let c = AttnShape { causal: true, ..s };
        assert_eq!(attention_flops(&c, Pass::Forward), fwd / 2.0);
        assert_eq!(attention_flops(&c, Pass::Backward), 1.25 * fwd);
        // 1e12 FLOPs in 1 s is 1 TFLOP/s.
        assert!((tflops(1e12, 1000.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn full_grid_keeps_tokens_and_hidden_fixed() {
        let shapes = Grid::full().shapes();
        assert_eq!(shapes.len(), 2 * 6 * 2);
        for s in &shapes {
            assert_eq!(s.batch * s.seqlen, 16_384, "{s}");
            assert_eq!(s.heads * s.head_dim, 2048, "{s}");
        }
        assert_eq!(shapes[0].seqlen, 512);
        assert_eq!(shapes.last().unwrap().seqlen, 16_384);
        assert!(shapes.iter().any(|s| s.causal) && shapes.iter().any(|s| !s.causal));
        let single = Grid::single(128, 4096, false).shapes();
        assert_eq!(
            single,
            vec![AttnShape {
                batch: 4,
                seqlen: 4096,
                heads: 16,
                head_dim: 128,
                causal: false
            }]
        );
        // A sequence longer than the token budget still gets one whole sequence.
        assert_eq!(Grid::single(64, 32_768, true).shapes()[0].batch, 1);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.runs, s.median_ms, s.min_ms, s.max_ms),
            (3, 2.0, 1.0, 3.0)
        );
        assert_eq!(Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median_ms, 2.5);
    }

    #[test]
    fn records_round_trip_through_json() {
        let shape = AttnShape {
            batch: 1,
            seqlen: 16_384,
            heads: 32,
            head_dim: 64,
            causal: true,
        };
        let mut run = Object::new();
        run.push("gpu", "NVIDIA H200").push("sm_count", 132usize);
        let records = vec![
            Record::Run(run),
            Record::Attention(AttnResult {
                implementation: "torch-flash".into(),
                activation: "softmax".into(),
                pass: Pass::Backward,
                dtype: "bf16".into(),
                shape,
                stats: Stats::of(&[1.0, 1.5, 2.0]),
                status: Status::Ok,
            }),
            Record::Attention(AttnResult {
                implementation: "torch-cudnn".into(),
                activation: "softmax".into(),
                pass: Pass::Forward,
                dtype: "bf16".into(),
                shape,
                stats: None,
                status: Status::Unsupported("cuDNN attention is not available".into()),
            }),
            Record::Throughput(Throughput {
                name: "copy".into(),
                implementation: "torch".into(),
                detail: "1 GiB".into(),
                stats: Stats::of(&[0.5]),
                value: Some(4300.0),
                unit: "GB/s".into(),
                status: Status::Ok,
            }),
        ];
        let dir = std::env::temp_dir().join(format!("sinkless-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.jsonl");
        std::fs::write(&path, to_lines(&records) + "\n").unwrap();
        let back = read_records(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.len(), records.len());
        assert_eq!(back[1..], records[1..]);
        let Record::Run(r) = &back[0] else {
            panic!("not a run record")
        };
        assert_eq!(r.str("kind"), Some("run"));
        assert_eq!(r.str("gpu"), Some("NVIDIA H200"));
        let Record::Attention(a) = &back[1] else {
            panic!()
        };
        let want = 2.5 * 4.0 * 32.0 * 16384.0 * 16384.0 * 64.0 / 2.0 / 1.5e-3 / 1e12;
        assert!((a.tflops().unwrap() - want).abs() < 1e-9 * want);
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("sinkless-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.jsonl");
        std::fs::write(&path, "{\"kind\":\"run\"}\n{\"kind\":\"attention\"}\n").unwrap();
        let e = read_records(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let msg = e.to_string();
        assert!(msg.contains("bad.jsonl:2") && msg.contains("impl"), "{msg}");
    }
}
