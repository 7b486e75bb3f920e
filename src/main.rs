//! The `sinkless` command: what this build holds, and whether its kernels compute the right thing.
//!
//! ```text
//! sinkless info     toolchain, compiled targets, driver and GPU, the kernel report
//! sinkless check    every available backend against the float64 reference; non-zero exit on failure
//! sinkless report   the kernel report alone; non-zero exit on spills, local memory or missing HMMA
//! sinkless sass     the report's SASS columns for any cubin, object or fatbin (cuobjdump)
//! sinkless bench    time the kernels (one configuration, or a grid) and print the table
//! sinkless table    the Markdown table of results files
//! sinkless plot     TFLOP/s-versus-seqlen SVG of results files
//! ```

use sinkless::backend::watch;
use sinkless::report::KernelReport;
use sinkless::{check, CudaBackend, Emulator, Error};
use std::process::ExitCode;

/// `println!` / `print!` that end the process quietly when standard output is a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => { sinkless::output::print(format_args!("{}\n", format_args!($($arg)*))) };
}
macro_rules! out {
    ($($arg:tt)*) => { sinkless::output::print(format_args!($($arg)*)) };
}

const USAGE: &str = "usage: sinkless <info|check|report|sass|bench|table|plot>\n\
    \n  info     toolchain, compiled targets, driver and GPU, the kernel report\
    \n  check    run every available backend against the float64 reference\
    \n           (--small: a sample of the cases, small enough for compute-sanitizer;\
    \n           --gpu-only: no emulator runs, for a GPU lease; exit 3 when the GPU hung)\
    \n  report   print the kernel report; fail on spills, local memory or missing tensor-core code\
    \n  sass     FILE...   the report's SASS columns and main loop for every function of a cubin,\
    \n           object or fatbin (through cuobjdump), or of a saved `cuobjdump -sass` listing\
    \n  bench    [--hd N] [--seqlen N] [--causal] [--grid single|full|sparse|tiny] [--emulator] [--once]\
    \n           [--variants] [--runs N] [--warmup N] [--no-flush] [--no-throughput]\
    \n           [--baseline FILE]... [--out FILE] [--print-grid]\
    \n  table    [--headline] RESULTS.jsonl...   the Markdown table of benchmark results\
    \n  plot     RESULTS.jsonl... OUTDIR        draw OUTDIR/tflops.svg\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("info") => info(),
        Some("check") => match check_options(&args[1..]) {
            Ok(o) => run_check(o),
            Err(bad) => {
                eprint!("sinkless check: unknown argument {bad:?}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("report") => report(),
        Some("sass") if args.len() > 1 => sass(&args[1..]),
        Some("bench") => sinkless::bench::cli::bench(&args[1..]),
        Some("table") => sinkless::bench::cli::table(&args[1..]),
        Some("plot") => sinkless::bench::cli::plot(&args[1..]),
        Some("-h" | "--help" | "help") => {
            out!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Opens GPU 0 if there is one, saying why not otherwise; its launches are tracked, so that a
/// kernel that hangs is named alone ([`CudaBackend::track_launches`]).
fn gpu() -> Result<CudaBackend, Error> {
    let g = CudaBackend::new(0)?;
    g.track_launches(true);
    Ok(g)
}

fn info() -> ExitCode {
    outln!("sinkless {}", env!("CARGO_PKG_VERSION"));
    match KernelReport::current() {
        Some(r) => {
            let mut targets: Vec<&str> = r.rows.iter().map(|r| r.target.as_str()).collect();
            targets.sort_unstable();
            targets.dedup();
            outln!("GPU kernels: compiled for {} (+ PTX), {} instances", targets.join(", "), r.rows.len() / targets.len().max(1));
        }
        None => outln!("GPU kernels: not compiled (nvcc was not found at build time; run `bash scripts/install-toolchain.sh`)"),
    }
    let b = sinkless::built_kernels();
    outln!(
        "Kernel selection: head-dim buckets {:?}, {} (SINKLESS_HEAD_DIMS, SINKLESS_VARIANTS at build time)",
        b.head_dims,
        if b.variants { "kernel variants in" } else { "no kernel variant" }
    );
    match sinkless::backend::cuda::device_count() {
        Ok(n) => outln!("CUDA driver: found, {n} device(s)"),
        Err(e) => outln!("CUDA driver: {e}"),
    }
    match gpu() {
        Ok(g) => {
            let (major, minor) = g.compute_capability();
            outln!(
                "GPU 0: {} (sm_{major}{minor})",
                g.device_name().unwrap_or_else(|e| e.to_string())
            );
        }
        Err(e) => outln!("GPU 0: unavailable: {e}"),
    }
    outln!("Emulator: available (kernels compiled for the host)");
    if let Some(r) = KernelReport::current() {
        outln!("\n{r}");
        let problems = r.problems();
        if problems.is_empty() {
            outln!("no spills, no local memory, expected instruction classes present");
        } else {
            outln!("problems:\n  {}", problems.join("\n  "));
        }
    }
    ExitCode::SUCCESS
}

fn report() -> ExitCode {
    let Some(r) = KernelReport::current() else {
        outln!("no kernel report: this build compiled no GPU kernels (nvcc not found)");
        return ExitCode::SUCCESS;
    };
    out!("{r}");
    let problems = r.problems();
    if problems.is_empty() {
        outln!(
            "kernel report: clean ({} kernel/target pairs)",
            r.rows.len()
        );
        ExitCode::SUCCESS
    } else {
        outln!(
            "kernel report: {} problem(s)\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
        ExitCode::FAILURE
    }
}

/// `cuobjdump`: `CUOBJDUMP`, then `CUDA_HOME`'s, then the one on `PATH`, then the project's
/// `.toolchain/` (scripts/install-toolchain.sh).
fn cuobjdump() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CUOBJDUMP") {
        return p.into();
    }
    let local =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".toolchain/cuda/bin/cuobjdump");
    let home =
        std::env::var_os("CUDA_HOME").map(|h| std::path::Path::new(&h).join("bin/cuobjdump"));
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("cuobjdump"))
            .find(|p| p.is_file())
    });
    home.filter(|p| p.is_file()).or(on_path).unwrap_or(local)
}

fn sass(files: &[String]) -> ExitCode {
    let tool = cuobjdump();
    for file in files {
        let text = std::fs::read(file).map(|b| String::from_utf8_lossy(&b).into_owned());
        // a saved listing is read as it is
        let (listing, resources) = match text {
            Ok(t) if t.contains("Function : ") => (t, String::new()),
            Ok(_) => {
                let dump = |flag: &str| {
                    std::process::Command::new(&tool)
                        .args([flag, file.as_str()])
                        .output()
                        .map_err(|e| format!("{}: {e}", tool.display()))
                        .and_then(|o| {
                            if o.status.success() {
                                Ok(String::from_utf8_lossy(&o.stdout).into_owned())
                            } else {
                                Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                            }
                        })
                };
                match dump("-sass").and_then(|l| Ok((l, dump("-res-usage")?))) {
                    Ok(pair) => pair,
                    Err(e) => {
                        eprintln!("sinkless sass: {file}: cuobjdump failed: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            Err(e) => {
                eprintln!("sinkless sass: {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        outln!("{file}:");
        out!("{}", sinkless::report::listing_table(&listing, &resources));
    }
    ExitCode::SUCCESS
}

fn check_options(args: &[String]) -> Result<check::RunOptions, String> {
    let mut o = check::RunOptions::default();
    for a in args {
        match a.as_str() {
            "--small" => o.small = true,
            "--gpu-only" => o.gpu_only = true,
            _ => return Err(a.clone()),
        }
    }
    Ok(o)
}

fn run_check(options: check::RunOptions) -> ExitCode {
    let gpu = match gpu() {
        Ok(g) => Some(g),
        Err(e) if options.gpu_only => {
            outln!("no GPU ({e}); --gpu-only leaves nothing to check");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            outln!("no GPU ({e}); checking on the emulator only");
            None
        }
    };
    let emu = Emulator::new();
    let (mut passed, mut failed) = (0, 0);
    outln!("conformance (PTX wrappers, planted bugs; GPU against the emulator bit for bit):");
    for v in sinkless::conformance::verdicts(&emu, gpu.as_ref()) {
        outln!("  {v}");
        if v.passed {
            passed += 1
        } else {
            failed += 1
        }
    }
    let (mut skipped, mut left_out) = (0, Vec::<String>::new());
    let (mut passed_over, mut hung_on) = (Vec::<String>::new(), None);
    outln!(
        "{:9} {:96} {:>11} {:>11}  verdict",
        "backend",
        "case",
        "max err",
        "tolerance"
    );
    let complete = check::run_all(&emu, gpu.as_ref(), options, &mut |r| match r {
        Ok(c) => {
            let ok = c.passed();
            outln!(
                "{:9} {:96} {:>11.3e} {:>11.3e}  {}",
                c.backend,
                c.case,
                c.max_err,
                c.tol,
                if ok { "ok" } else { "FAIL" }
            );
            if ok {
                passed += 1
            } else {
                failed += 1
            }
        }
        Err(Error::KernelNotBuilt { kernel }) => {
            if !left_out.contains(&kernel) {
                left_out.push(kernel);
            }
            skipped += 1;
        }
        Err(Error::KernelSkipped { kernel }) => {
            if !passed_over.contains(&kernel) {
                passed_over.push(kernel);
            }
            skipped += 1;
        }
        Err(e) => {
            outln!("error: {e}");
            if hung_on.is_none() {
                hung_on = watch::hung_report(&e);
            }
            failed += 1;
        }
    });
    if !left_out.is_empty() {
        let b = sinkless::built_kernels();
        outln!(
            "skipped runs: {} kernels they need are not in this build (head-dim buckets {:?}, {}): {}",
            left_out.len(),
            b.head_dims,
            if b.variants { "kernel variants in" } else { "no kernel variant" },
            left_out.join(", ")
        );
    }
    if !passed_over.is_empty() {
        outln!(
            "skipped runs: {} kernels they need are in SINKLESS_SKIP_KERNELS: {}",
            passed_over.len(),
            passed_over.join(", ")
        );
    }
    outln!(
        "{passed} passed, {failed} failed{}{}",
        if skipped > 0 {
            format!(", {skipped} skipped")
        } else {
            String::new()
        },
        if complete { "" } else { ", the rest not run" }
    );
    if let Some(line) = hung_on {
        // one line for scripts (gpu-run.sh reads it): the kernels to leave out next time
        outln!("{line}");
        return ExitCode::from(watch::HUNG_STATUS);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
