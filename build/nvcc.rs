//! Finding nvcc and building the fatbin.
//!
//! Each instance is compiled separately with relocatable device code (`-rdc`),
//! in parallel and cached by a hash of its sources and flags, so editing one
//! kernel family rebuilds only its instances. The objects are then device-linked
//! once per target into a cubin, the PTX of every instance is generated in one
//! pass, and `fatbinary` packs the cubins and the PTX into one fatbin that the
//! crate embeds. The instances whose params hold tensor maps (they use
//! `setmaxnreg`, which relocatable code loses) are compiled together as one
//! whole program into a second fatbin, `sinkless_whole.fatbin`. ptxas' `-v` report of every instance and a count of instruction
//! classes in the SASS become the kernel report.

use crate::cache::{headers_hash, shared_cache, temporary, Fnv};
use crate::instances::Instance;
use crate::sass;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first nvcc found: `NVCC`, `CUDA_HOME`/`CUDA_PATH`, `PATH`, then `.toolchain/`.
pub fn find(root: &Path) -> Option<PathBuf> {
    if std::env::var_os("SINKLESS_NO_NVCC").is_some() {
        return None;
    }
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("NVCC") {
        candidates.push(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = std::env::var_os(var) {
            candidates.push(PathBuf::from(p).join("bin/nvcc"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nvcc")));
    }
    candidates.push(root.join(".toolchain/cuda/bin/nvcc"));
    candidates.into_iter().find(|p| p.is_file())
}

/// Machine-code targets (`80`, `90a`, ...) and the PTX target.
fn targets() -> (Vec<String>, String) {
    let archs = std::env::var("SINKLESS_CUDA_ARCHS").unwrap_or_else(|_| "80;90a".into());
    let archs: Vec<String> = archs
        .split([';', ','])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    let ptx = std::env::var("SINKLESS_PTX_ARCH").unwrap_or_else(|_| "80".into());
    (archs, ptx)
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{shown}\n{text}"))
    }
}

fn common_flags(root: &Path) -> Vec<String> {
    vec![
        "-std=c++17".into(),
        "-O3".into(),
        "--expt-relaxed-constexpr".into(),
        format!("-I{}", root.join("kernels/include").display()),
        format!("-I{}", root.join("kernels").display()),
    ]
}

/// Compiles, links and packs every instance; returns the kernel report (TSV).
pub fn build_fatbin(
    nvcc: &Path,
    root: &Path,
    out: &Path,
    table: &[Instance],
    files: &[PathBuf],
) -> Result<String, String> {
    let (archs, ptx_arch) = targets();
    let cache = shared_cache(out, "nvcc");
    std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let mut flags = common_flags(root);
    for a in &archs {
        flags.push(format!("-gencode=arch=compute_{a},code=sm_{a}"));
    }
    let base = {
        let mut h = headers_hash(root);
        h.bytes(nvcc.to_string_lossy().as_bytes());
        for f in &flags {
            h.bytes(f.as_bytes());
        }
        h
    };

    // Compile every instance, NUM_JOBS at a time: each on its own with relocatable device code,
    // except the kernels whose params hold tensor maps, which use setmaxnreg. ptxas ignores
    // setmaxnreg in relocatable code (C7504: it cannot vouch for the other compilation units),
    // so those are compiled together as one whole program, straight into a fatbin of their own.
    let jobs: usize = std::env::var("NUM_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2)
        .max(1);
    let mut work: Vec<Job> = Vec::new();
    let mut whole_files = Vec::new();
    const WHOLE_MODE: &[&str] = &["-fatbin", "-Xfatbin=-compress-all,-compress-mode=size"];
    let mut whole_hash = Fnv::new();
    whole_hash.bytes(base.hex().as_bytes());
    for m in WHOLE_MODE {
        whole_hash.bytes(m.as_bytes());
    }
    for (inst, file) in table.iter().zip(files) {
        if inst.tensor_maps() {
            whole_hash
                .file(&root.join("kernels").join(inst.family))
                .bytes(&read(file));
            whole_files.push(file);
            continue;
        }
        let mut h = Fnv::new();
        h.bytes(base.hex().as_bytes())
            .file(&root.join("kernels").join(inst.family))
            .bytes(&read(file));
        let stem = format!("{}-{}", inst.name, h.hex());
        work.push(Job {
            src: file.clone(),
            obj: cache.join(format!("{stem}.o")),
            log: cache.join(format!("{stem}.ptxas.txt")),
            mode: &["-rdc=true", "-c"],
        });
    }
    let whole = if whole_files.is_empty() {
        None
    } else {
        let src = out.join("whole_program.cu");
        let mut text = String::new();
        for f in &whole_files {
            writeln!(text, "#include \"{}\"", f.display()).unwrap();
        }
        crate::write_if_changed(&src, &text);
        let stem = format!("whole_program-{}", whole_hash.hex());
        work.push(Job {
            src,
            obj: cache.join(format!("{stem}.fatbin")),
            log: cache.join(format!("{stem}.ptxas.txt")),
            mode: WHOLE_MODE,
        });
        Some(work.len() - 1)
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(work.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = work.get(i) else {
                    break;
                };
                if job.obj.is_file() && job.log.is_file() {
                    continue;
                }
                // Written under a name of this process and renamed: another build script of the
                // same checkout may be compiling the same object into the shared cache.
                let tmp = temporary(&job.obj);
                let result = run(Command::new(nvcc)
                    .args(&flags)
                    .args(job.mode)
                    .args(["-Xptxas=-v", "-o"])
                    .arg(&tmp)
                    .arg(&job.src));
                match result {
                    Ok(text) => {
                        let tmp_log = temporary(&job.log);
                        std::fs::write(&tmp_log, text).expect("write ptxas log");
                        std::fs::rename(&tmp_log, &job.log).expect("rename ptxas log");
                        std::fs::rename(&tmp, &job.obj).expect("rename object");
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("\n\n"));
    }
    let whole_fatbin = out.join("sinkless_whole.fatbin");
    match whole {
        Some(i) => {
            std::fs::copy(&work[i].obj, &whole_fatbin).map_err(|e| e.to_string())?;
        }
        None => {
            let _ = std::fs::remove_file(&whole_fatbin);
        }
    }
    let objects: Vec<&PathBuf> = work
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != whole)
        .map(|(_, w)| &w.obj)
        .collect();

    // One linked cubin per target.
    let mut images = Vec::new();
    for a in &archs {
        let cubin = out.join(format!("sinkless_sm_{a}.cubin"));
        run(Command::new(nvcc)
            .args(["-dlink", "-cubin", &format!("-arch=sm_{a}"), "-o"])
            .arg(&cubin)
            .args(&objects))?;
        images.push(format!(
            "--image3=kind=elf,sm={},file={}",
            a,
            cubin.display()
        ));
    }

    // PTX for forward compatibility: one translation unit that includes every instance.
    let all = out.join("all_instances.cu");
    let mut src = String::new();
    for f in files {
        writeln!(src, "#include \"{}\"", f.display()).unwrap();
    }
    crate::write_if_changed(&all, &src);
    let mut h = base;
    for f in files {
        h.bytes(&read(f));
    }
    for inst in table {
        h.file(&root.join("kernels").join(inst.family));
    }
    let ptx = cache.join(format!("sinkless_compute_{ptx_arch}-{}.ptx", h.hex()));
    if !ptx.is_file() {
        let tmp = temporary(&ptx);
        run(Command::new(nvcc)
            .args(common_flags(root))
            .args(["-ptx", &format!("-arch=compute_{ptx_arch}"), "-o"])
            .arg(&tmp)
            .arg(&all))?;
        std::fs::rename(&tmp, &ptx).map_err(|e| e.to_string())?;
    }
    images.push(format!(
        "--image3=kind=ptx,sm={},file={}",
        ptx_arch,
        ptx.display()
    ));

    let bindir = nvcc.parent().expect("nvcc has a parent directory");
    let fatbin = out.join("sinkless.fatbin");
    // Machine code compressed as well as PTX, for size (the driver inflates it at load; CUDA
    // 13's compressed fatbins need a 580 driver, as its PTX and the toolkit itself do): an
    // eighth of the size, for the crate and for every binary that embeds it (the GPU bundle
    // holds four).
    run(Command::new(bindir.join("fatbinary"))
        .arg(format!("--create={}", fatbin.display()))
        .args(["-64", "--compress-all", "--compress-mode=size"])
        .args(&images))?;

    let mut logs = String::new();
    for job in &work {
        logs.push_str(&std::fs::read_to_string(&job.log).map_err(|e| e.to_string())?);
    }
    let dump = |bin: &Path| run(Command::new(bindir.join("cuobjdump")).arg("-sass").arg(bin));
    let sass = match dump(&fatbin).and_then(|main| match whole {
        Some(_) => Ok(main + &dump(&whole_fatbin)?),
        None => Ok(main),
    }) {
        Ok(text) => Some(text),
        Err(e) => {
            println!(
                "cargo:warning=cuobjdump failed, the kernel report has no SASS columns: {}",
                e.lines().next().unwrap_or("")
            );
            None
        }
    };
    Ok(report(table, &archs, &logs, sass.as_deref()))
}

/// One nvcc run: an instance into a relocatable object, or the whole-program kernels into a
/// fatbin.
struct Job {
    src: PathBuf,
    obj: PathBuf,
    log: PathBuf,
    mode: &'static [&'static str],
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Per (kernel, target): ptxas numbers and SASS instruction-class counts.
#[derive(Default)]
struct Row {
    regs: u64,
    smem: u64,
    stack: u64,
    spill_stores: u64,
    spill_loads: u64,
    wgmma_fixups: u64,
    classes: BTreeMap<&'static str, u64>,
    /// The main loop (sass::main_loop): every instruction of it, and the fewest a step runs.
    loop_span: u64,
    loop_path: u64,
}

/// Whether a ptxas line says it patched or serialised the kernel's wgmma products: it injects
/// a `warpgroup.wait` or `warpgroup.arrive` where the program touches registers of a product in
/// flight (C7517, C7519: without it the result would be undefined, with it the product no
/// longer overlaps anything) and serialises every product where it cannot follow them (C7510,
/// C7515 "Potential Performance Loss"). It names the function; the target is the next one
/// ptxas compiles it for.
///
/// A `setmaxnreg` that ptxas ignores (C7504, C7508: the register moves between warpgroups do
/// not happen, so the computing warpgroups keep the entry budget) counts too; that note names no
/// function and precedes the entry it belongs to, so it is `Some("")`: the next entry's.
fn wgmma_fixup_of(line: &str) -> Option<String> {
    let patched = line.contains("is injected") && line.contains("GMMA");
    let serial = line.contains("wgmma") && line.contains("serialized");
    if line.contains("setmaxnreg") && line.contains("ignored") {
        return Some(String::new());
    }
    if !(patched || serial) {
        return None;
    }
    let rest = line.rsplit_once("function '")?.1;
    Some(rest.split('\'').next()?.to_string())
}

fn numbers_before(line: &str, unit: &str) -> Option<u64> {
    let idx = line.find(unit)?;
    line[..idx].split_whitespace().last()?.parse().ok()
}

fn report(table: &[Instance], archs: &[String], ptxas: &str, sass: Option<&str>) -> String {
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    // ptxas -v: "Compiling entry function 'NAME' for 'sm_80'", then properties lines.
    let mut current: Option<(String, String)> = None;
    let mut fixups: BTreeMap<String, u64> = BTreeMap::new();
    for line in ptxas.lines() {
        if let Some(name) = wgmma_fixup_of(line) {
            *fixups.entry(name).or_default() += 1;
            continue;
        }
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            let target = rest
                .split("for '")
                .nth(1)
                .and_then(|t| t.split('\'').next())
                .unwrap_or("")
                .to_string();
            let n = fixups.remove(&name).unwrap_or(0) + fixups.remove("").unwrap_or(0);
            if n > 0 {
                rows.entry((name.clone(), target.clone()))
                    .or_default()
                    .wgmma_fixups += n;
            }
            current = Some((name, target));
            continue;
        }
        let Some(key) = current.clone() else { continue };
        let row = rows.entry(key).or_default();
        if line.contains("bytes stack frame") {
            row.stack = numbers_before(line, "bytes stack frame").unwrap_or(0);
            row.spill_stores = numbers_before(line, "bytes spill stores").unwrap_or(0);
            row.spill_loads = numbers_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used") && line.contains("registers") {
            row.regs = numbers_before(line, "registers").unwrap_or(0);
            row.smem = numbers_before(line, "bytes smem").unwrap_or(0);
        }
    }
    if let Some(sass) = sass {
        for f in sass::functions(sass) {
            let row = rows
                .entry((f.name.to_string(), f.arch.to_string()))
                .or_default();
            for (class, n) in sass::CLASSES.iter().zip(f.classes) {
                *row.classes.entry(class).or_default() += n;
            }
            if let Some((span, path)) = f.main_loop {
                row.loop_span = span;
                row.loop_path = path;
            }
        }
    }
    let mut s = String::from(
        "kernel\ttarget\tregisters\tsmem_static\tstack\tspill_stores\tspill_loads\texpect\twgmma_fixups",
    );
    for c in sass::CLASSES {
        write!(s, "\t{c}").unwrap();
    }
    s.push_str("\tloop\tpath\n");
    for inst in table {
        for a in archs {
            let target = format!("sm_{a}");
            let row = rows
                .remove(&(inst.name.clone(), target.clone()))
                .unwrap_or_default();
            write!(
                s,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                inst.name,
                target,
                row.regs,
                row.smem,
                row.stack,
                row.spill_stores,
                row.spill_loads,
                if inst.expect_sass.is_empty() || (inst.hopper_only() && a != "90a") {
                    "-".to_string()
                } else {
                    inst.expect_sass.join(",")
                },
                row.wgmma_fixups
            )
            .unwrap();
            for c in sass::CLASSES {
                write!(
                    s,
                    "\t{}",
                    if sass.is_some() {
                        row.classes.get(c).copied().unwrap_or(0).to_string()
                    } else {
                        "?".into()
                    }
                )
                .unwrap();
            }
            if sass.is_some() {
                writeln!(s, "\t{}\t{}", row.loop_span, row.loop_path).unwrap();
            } else {
                s.push_str("\t?\t?\n");
            }
        }
    }
    s
}
