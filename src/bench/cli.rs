//! The `bench`, `table` and `plot` subcommands of the `sinkless` binary.
//!
//! ```text
//! sinkless bench [--hd N] [--seqlen N] [--causal] [--grid single|full|sparse|tiny] [--emulator]
//!                [--variants] [--once] [--runs N] [--warmup N] [--no-flush] [--no-throughput]
//!                [--baseline FILE]... [--out FILE]
//! sinkless bench --print-grid [--grid ...]
//! sinkless table [--headline] FILE...
//! sinkless plot FILE... OUTDIR
//! ```
//!
//! `bench` times this crate's registered entry points ([`cuda_entries`](super::entries)) on
//! GPU 0, head dim 128 and seqlen 4096 unless told otherwise, and prints the same table as a
//! full GPU run (with the baselines of any `--baseline` files merged in). `--emulator` runs on
//! the CPU instead (the float64 reference and the emulator, tiny shapes): the dry run.
//! `--variants` times the kernels' variants ([`KernelVariant`](crate::KernelVariant))
//! beside the default kernels instead, for the table's comparison of kernel variants.

use super::entries;
use super::table::{format_tflops, markdown, TableOptions};
use super::timer::Timing;
use super::{attention_flops, json::Object, read_records, to_lines, BenchError, Grid, Pass};
use super::{plot, Record};
use crate::backend::watch;
use crate::CudaBackend;
use cudarc::driver::sys::CUdevice_attribute;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `sinkless bench`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchArgs {
    /// The shapes.
    pub grid: Grid,
    /// CPU backends instead of the GPU.
    pub emulator: bool,
    /// The kernel variants instead of the registered entry points.
    pub variants: bool,
    /// How many runs.
    pub timing: Timing,
    /// Flush L2 before each timed run.
    pub flush: bool,
    /// Also measure copy bandwidth and `row_dot`.
    pub throughput: bool,
    /// Print the grid as JSON lines and stop.
    pub print_grid: bool,
    /// Results files whose records join the printed table.
    pub baselines: Vec<PathBuf>,
    /// Where to write this run's records.
    pub out: Option<PathBuf>,
}

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str, BenchError> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))
}

fn number(args: &[String], i: &mut usize, flag: &str) -> Result<usize, BenchError> {
    let v = value(args, i, flag)?;
    v.parse()
        .map_err(|_| BenchError::Usage(format!("{flag} takes a whole number, got {v:?}")))
}

impl BenchArgs {
    /// Parses the arguments after `bench`.
    ///
    /// # Errors
    /// [`BenchError::Usage`] naming the bad argument.
    pub fn parse(args: &[String]) -> Result<BenchArgs, BenchError> {
        let (mut hd, mut seqlen, mut causal) = (128, 4096, false);
        let mut grid_name: Option<String> = None;
        let mut a = BenchArgs {
            grid: Grid::tiny(),
            emulator: false,
            variants: false,
            timing: Timing::GPU,
            flush: true,
            throughput: true,
            print_grid: false,
            baselines: Vec::new(),
            out: None,
        };
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--hd" => hd = number(args, &mut i, "--hd")?,
                "--seqlen" => seqlen = number(args, &mut i, "--seqlen")?,
                "--causal" => causal = true,
                "--grid" => grid_name = Some(value(args, &mut i, "--grid")?.to_owned()),
                "--emulator" => a.emulator = true,
                "--variants" => a.variants = true,
                "--once" => a.timing = Timing::ONCE,
                "--runs" => {
                    let n = number(args, &mut i, "--runs")?.max(1);
                    a.timing.min_runs = n;
                    a.timing.max_runs = a.timing.max_runs.max(n);
                }
                "--warmup" => a.timing.warmup = number(args, &mut i, "--warmup")?,
                "--no-flush" => a.flush = false,
                "--no-throughput" => a.throughput = false,
                "--print-grid" => a.print_grid = true,
                "--baseline" => a
                    .baselines
                    .push(PathBuf::from(value(args, &mut i, "--baseline")?)),
                "--out" => a.out = Some(PathBuf::from(value(args, &mut i, "--out")?)),
                other => return Err(BenchError::Usage(format!("unknown argument {other:?}"))),
            }
            i += 1;
        }
        if hd == 0 || seqlen == 0 {
            return Err(BenchError::Usage(
                "--hd and --seqlen must be positive".into(),
            ));
        }
        a.grid = match grid_name.as_deref() {
            Some("full") => Grid::full(),
            Some("sparse") => Grid::sparse(),
            Some("tiny") => Grid::tiny(),
            Some("single") => Grid::single(hd, seqlen, causal),
            // The CPU backends cannot do a 4096-token problem in reasonable time.
            None if a.emulator => Grid::tiny(),
            None => Grid::single(hd, seqlen, causal),
            Some(g) => {
                return Err(BenchError::Usage(format!(
                    "--grid is single, full, sparse or tiny, got {g:?}"
                )))
            }
        };
        if a.emulator && a.timing == Timing::GPU {
            // Wall-clock timing of CPU work: a few runs say enough about the script.
            a.timing = Timing {
                warmup: 0,
                min_runs: 3,
                max_runs: 3,
                min_total_ms: 0.0,
            };
        }
        Ok(a)
    }
}

/// The grid as JSON lines (`kind: "shape"`, with the forward and backward FLOPs), the input of
/// `bench/torch_baselines.py`: both sides time the same shapes and agree on the FLOPs.
pub fn grid_lines(grid: &Grid) -> String {
    let mut s = String::new();
    for shape in grid.shapes() {
        let mut o = Object::new();
        o.push("kind", "shape");
        shape.write(&mut o);
        o.push("flops_fwd", attention_flops(&shape, Pass::Forward))
            .push("flops_bwd", attention_flops(&shape, Pass::Backward));
        s.push_str(&o.to_line());
        s.push('\n');
    }
    s
}

fn progress(r: &Record) {
    let line = match r {
        Record::Attention(a) => match (a.stats, a.tflops()) {
            (Some(s), Some(t)) => format!(
                "{} {} {} {}: {:.3} ms, {} TFLOP/s",
                a.implementation,
                a.activation,
                a.pass.name(),
                a.shape,
                s.median_ms,
                format_tflops(t)
            ),
            _ => format!(
                "{} {} {} {}: {:?}",
                a.implementation,
                a.activation,
                a.pass.name(),
                a.shape,
                a.status
            ),
        },
        Record::Throughput(t) => format!(
            "{} ({}, {}): {}",
            t.name,
            t.implementation,
            t.detail,
            t.value
                .map_or(format!("{:?}", t.status), |v| format!("{v:.1} {}", t.unit))
        ),
        _ => return,
    };
    eprintln!("  {line}");
}

/// Facts the CUDA driver gives about GPU 0.
fn gpu_facts(gpu: &CudaBackend) -> Object {
    let ctx = gpu.stream().context();
    let attr = |a| ctx.attribute(a).ok().and_then(|v| usize::try_from(v).ok());
    let (major, minor) = gpu.compute_capability();
    let mut o = Object::new();
    o.push("gpu", gpu.device_name().ok())
        .push("compute_capability", format!("{major}.{minor}"))
        .push(
            "sm_count",
            attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
        )
        .push(
            "max_sm_clock_mhz",
            attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE).map(|k| k / 1000),
        )
        .push(
            "l2_bytes",
            attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
        )
        .push("mode", "gpu");
    o
}

fn write_file(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| BenchError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// The records, and the GPU's `Error::GpuTimeout`, if it hung.
fn bench_inner(args: &BenchArgs) -> Result<(Vec<Record>, Option<crate::Error>), BenchError> {
    let shapes = args.grid.shapes();
    let mut records = Vec::new();
    let mut hung = None;
    if args.emulator {
        let mut run = Object::new();
        run.push("gpu", "none (CPU: emulator and float64 reference)")
            .push("mode", "dry-run");
        records.push(Record::Run(run));
        eprintln!("sinkless bench: CPU backends, {} shape(s)", shapes.len());
        if args.throughput {
            let t = entries::bench_emulator_throughput(&args.timing);
            t.iter().for_each(progress);
            records.extend(t);
        }
        records.extend(entries::bench_host(
            &shapes,
            &if args.variants {
                entries::host_variant_entries()
            } else {
                entries::host_entries()
            },
            &args.timing,
            &mut progress,
        ));
    } else {
        let gpu = CudaBackend::new(0)?;
        // a kernel that hangs is then named alone
        gpu.track_launches(true);
        let facts = gpu_facts(&gpu);
        let cuda_entries = if args.variants {
            entries::cuda_variant_entries()
        } else {
            entries::cuda_entries()
        };
        eprintln!(
            "sinkless bench: {} ({} entry point(s) registered), {} shape(s)",
            facts.str("gpu").unwrap_or("GPU 0"),
            cuda_entries.len(),
            shapes.len()
        );
        records.push(Record::Run(facts));
        if args.throughput {
            let t = entries::bench_cuda_throughput(&gpu, &args.timing, args.flush)?;
            t.iter().for_each(progress);
            records.extend(t);
        }
        if cuda_entries.is_empty() {
            eprintln!(
                "  no attention entry point is registered yet (src/bench/entries.rs, cuda_entries)"
            );
        }
        records.extend(entries::bench_cuda(
            &gpu,
            &shapes,
            &cuda_entries,
            &args.timing,
            args.flush,
            &mut progress,
        )?);
        hung = gpu.timed_out();
    }
    Ok((records, hung))
}

fn report(e: BenchError) -> ExitCode {
    eprintln!("sinkless: {e}");
    match e {
        BenchError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// `sinkless bench`: see the module docs.
pub fn bench(args: &[String]) -> ExitCode {
    let args = match BenchArgs::parse(args) {
        Ok(a) => a,
        Err(e) => return report(e),
    };
    if args.print_grid {
        crate::output::print(format_args!("{}", grid_lines(&args.grid)));
        return ExitCode::SUCCESS;
    }
    let (mut records, hung) = match bench_inner(&args) {
        Ok(r) => r,
        Err(e) => return report(e),
    };
    if let Some(out) = &args.out {
        if let Err(e) = write_file(out, &to_lines(&records)) {
            return report(e);
        }
    }
    for b in &args.baselines {
        match read_records(b) {
            Ok(r) => records.extend(r),
            Err(e) => return report(e),
        }
    }
    crate::output::print(format_args!(
        "{}",
        markdown(&records, &TableOptions::default())
    ));
    // the same line as `sinkless check`'s, for gpu-run.sh; nothing ran after the hang
    if let Some(line) = hung.as_ref().and_then(watch::hung_report) {
        crate::output::print(format_args!("{line}\n"));
        return ExitCode::from(watch::HUNG_STATUS);
    }
    ExitCode::SUCCESS
}

/// `sinkless table [--headline] FILE...`: the Markdown table of results files.
pub fn table(args: &[String]) -> ExitCode {
    let mut opts = TableOptions::default();
    let mut records = Vec::new();
    for a in args {
        if a == "--headline" {
            opts.headline = true;
            continue;
        }
        match read_records(Path::new(a)) {
            Ok(r) => records.extend(r),
            Err(e) => return report(e),
        }
    }
    if records.is_empty() {
        return report(BenchError::Usage(
            "sinkless table [--headline] RESULTS.jsonl...".into(),
        ));
    }
    crate::output::print(format_args!("{}", markdown(&records, &opts)));
    ExitCode::SUCCESS
}

/// `sinkless plot FILE... OUTDIR`: draws `OUTDIR/tflops.svg`.
pub fn plot(args: &[String]) -> ExitCode {
    let Some((outdir, files)) = args.split_last().filter(|(_, f)| !f.is_empty()) else {
        return report(BenchError::Usage(
            "sinkless plot RESULTS.jsonl... OUTDIR".into(),
        ));
    };
    let mut records = Vec::new();
    for f in files {
        match read_records(Path::new(f)) {
            Ok(r) => records.extend(r),
            Err(e) => return report(e),
        }
    }
    match plot::plot(&records, Path::new(outdir)) {
        Ok(path) => {
            crate::output::print(format_args!("wrote {}\n", path.display()));
            ExitCode::SUCCESS
        }
        Err(e) => report(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_are_one_gpu_configuration() {
        let a = BenchArgs::parse(&[]).unwrap();
        assert_eq!(a.grid, Grid::single(128, 4096, false));
        assert_eq!(a.timing, Timing::GPU);
        assert!(a.flush && a.throughput && !a.emulator);
        let a =
            BenchArgs::parse(&args("--hd 64 --seqlen 1024 --causal --once --no-flush")).unwrap();
        assert_eq!(a.grid, Grid::single(64, 1024, true));
        assert_eq!(a.timing, Timing::ONCE);
        assert!(!a.flush);
    }

    #[test]
    fn emulator_defaults_to_the_tiny_grid() {
        let a = BenchArgs::parse(&args("--emulator --out x.jsonl")).unwrap();
        assert_eq!(a.grid, Grid::tiny());
        assert_eq!(a.out, Some(PathBuf::from("x.jsonl")));
        assert!(a.timing.max_runs <= 3);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            "--hd",
            "--hd x",
            "--grid huge",
            "--frobnicate",
            "--seqlen 0",
        ] {
            let e = BenchArgs::parse(&args(bad)).unwrap_err();
            assert!(matches!(e, BenchError::Usage(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn grid_lines_carry_shapes_and_flops() {
        let lines = grid_lines(&Grid::full());
        assert_eq!(lines.lines().count(), 24);
        let first = Object::parse(lines.lines().next().unwrap()).unwrap();
        assert_eq!(first.str("kind"), Some("shape"));
        assert_eq!(first.count("batch"), Some(32));
        assert_eq!(
            first.num("flops_bwd"),
            Some(2.5 * first.num("flops_fwd").unwrap())
        );
    }
}
