//! Content hashing for the build caches: an object is rebuilt only when the
//! hash of everything it depends on changes.

use std::path::{Path, PathBuf};

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Length-terminate so that ("ab", "c") and ("a", "bc") differ.
        for b in (data.len() as u64).to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    pub fn file(&mut self, path: &Path) -> &mut Self {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        self.bytes(path.to_string_lossy().as_bytes()).bytes(&data)
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Every file under `dir` whose name ends with one of `exts`, sorted.
pub fn files_with_ext(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if exts.iter().any(|e| path.to_string_lossy().ends_with(e)) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Where compiled objects are kept, by content hash: `target/<profile>/sinkless-<what>-cache`,
/// shared by every build-script run of the checkout (`cargo clippy`, `cargo test` and `cargo
/// run` each get an `OUT_DIR` of their own, and would otherwise compile every kernel again), or
/// `OUT_DIR/<what>` where `OUT_DIR` is not laid out as `<profile>/build/<unit>/out`. Objects are
/// written under a name of their own and renamed into place, so two build scripts compiling
/// into one cache at once never see half an object.
pub fn shared_cache(out: &Path, what: &str) -> PathBuf {
    match out.ancestors().nth(3) {
        Some(profile)
            if out.ancestors().nth(2).and_then(Path::file_name) == Some("build".as_ref()) =>
        {
            profile.join(format!("sinkless-{what}-cache"))
        }
        _ => out.join(what),
    }
}

/// A file name for writing `path` before renaming it into place, unique to this process, with
/// the same extension (nvcc goes by it).
pub fn temporary(path: &Path) -> PathBuf {
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    path.with_extension(format!("tmp{}.{ext}", std::process::id()))
}

/// Hash of the device headers every kernel includes.
pub fn headers_hash(root: &Path) -> Fnv {
    let mut h = Fnv::new();
    for f in files_with_ext(&root.join("kernels/include"), &[".h", ".cuh"]) {
        h.file(&f);
    }
    h
}
