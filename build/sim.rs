//! The emulator library: the SIMT runtime (`kernels/sim/*.cpp`) and every kernel
//! instance, compiled by the host C++ compiler into `libsinkless_sim.a`.
//!
//! Objects are cached by content hash like the nvcc ones, and in the same shared place
//! (`target/<profile>/sinkless-sim-cache`, see `cache::shared_cache`), because the kernel
//! instances are template-heavy and slow to compile: about 3 minutes for all of them on 2 cores,
//! which `cargo build`, `cargo clippy` and `cargo test` each paid again with an `OUT_DIR` of
//! their own. An instance's key is the headers, the compiler and its flags, its family's source
//! and its own text, so editing one family recompiles that family's instances alone. The
//! library is always built with optimisation, since the test suites run real attention problems
//! on it.

use crate::cache::{files_with_ext, headers_hash, shared_cache, temporary, Fnv};
use crate::instances::Instance;
use std::path::{Path, PathBuf};

pub fn build(root: &Path, out: &Path, table: &[Instance], instances: &[PathBuf]) {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .debug(false)
        .warnings(true)
        .extra_warnings(true)
        .flag("-fno-strict-aliasing")
        // g++ warns on every CUDA `#pragma unroll`, and a pragma in a header cannot silence it
        // (GCC bug 53431).
        .flag("-Wno-unknown-pragmas")
        .include(root.join("kernels/include"))
        .include(root.join("kernels"));
    let compiler = build.get_compiler();
    let cache = shared_cache(out, "sim");
    std::fs::create_dir_all(&cache).expect("create the emulator's object cache");

    let runtime = files_with_ext(&root.join("kernels/sim"), &[".cpp"]);
    let sim_headers = files_with_ext(&root.join("kernels/sim"), &[".h", ".hpp"]);
    let mut base = headers_hash(root);
    for h in &sim_headers {
        base.file(h);
    }
    base.bytes(compiler.path().to_string_lossy().as_bytes());
    for a in compiler.args() {
        base.bytes(a.to_string_lossy().as_bytes());
    }

    // (source, whether it is CUDA, its cache key)
    let key = |family: Option<&str>, src: &Path| {
        let mut h = Fnv::new();
        h.bytes(base.hex().as_bytes());
        if let Some(f) = family {
            h.file(&root.join("kernels").join(f));
        }
        // the text, not the path: each OUT_DIR has its own copy of an instance's file
        let text = std::fs::read(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
        h.bytes(&text);
        h.hex()
    };
    let sources: Vec<(PathBuf, bool, String)> = runtime
        .into_iter()
        .map(|p| {
            let k = key(None, &p);
            (p, false, k)
        })
        .chain(
            table
                .iter()
                .zip(instances)
                .map(|(inst, p)| (p.clone(), true, key(Some(inst.family), p))),
        )
        .collect();
    let jobs: usize = std::env::var("NUM_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    let objects: Vec<PathBuf> = sources
        .iter()
        .map(|(src, _, key)| {
            let stem = src.file_stem().unwrap().to_string_lossy();
            cache.join(format!("{stem}-{key}.o"))
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(sources.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((src, is_cuda, _)) = sources.get(i) else {
                    break;
                };
                let obj = &objects[i];
                if obj.is_file() {
                    continue;
                }
                // compiled under a name of this process's, then renamed into place: another
                // build script may be compiling the same object into the shared cache
                let tmp = temporary(obj);
                let mut cmd = compiler.to_command();
                if *is_cuda {
                    cmd.args(["-x", "c++"]);
                }
                cmd.arg("-c").arg(src).arg("-o").arg(&tmp);
                match cmd.output() {
                    Ok(o) if o.status.success() => {
                        if let Err(e) = std::fs::rename(&tmp, obj) {
                            errors.lock().unwrap().push(format!(
                                "rename {} to {}: {e}",
                                tmp.display(),
                                obj.display()
                            ));
                        }
                    }
                    Ok(o) => errors.lock().unwrap().push(format!(
                        "{cmd:?}\n{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )),
                    Err(e) => errors.lock().unwrap().push(format!("{cmd:?}: {e}")),
                }
                // what a failed compile left (nothing once renamed)
                let _ = std::fs::remove_file(&tmp);
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        panic!(
            "compiling the emulator library failed:\n{}",
            errors.join("\n\n")
        );
    }

    let lib = out.join("libsinkless_sim.a");
    let _ = std::fs::remove_file(&lib);
    let mut ar = build.get_archiver();
    let status = ar
        .arg("crs")
        .arg(&lib)
        .args(&objects)
        .status()
        .expect("run the archiver");
    assert!(status.success(), "archiving {} failed", lib.display());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=sinkless_sim");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("apple") {
        println!("cargo:rustc-link-lib=dylib=c++");
    } else {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
}
