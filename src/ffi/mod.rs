//! The FFI layer: the Rust twin of `kernels/include/sinkless/params.h`, made by bindgen at build
//! time (or taken from the checked-in snapshot where libclang is missing; see `build/bindings.rs`).

#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/params.rs"));

#[cfg(test)]
mod tests {
    /// The snapshot used on machines without libclang must equal what bindgen makes of params.h.
    #[test]
    fn snapshot_matches_bindgen() {
        let snapshot = include_str!("params_snapshot.rs");
        #[cfg(sinkless_bindgen)]
        {
            let fresh = include_str!(concat!(env!("OUT_DIR"), "/params_bindgen.rs"));
            assert!(
                fresh == snapshot,
                "src/ffi/params_snapshot.rs is stale: run `bash scripts/update-bindings.sh`"
            );
        }
        #[cfg(not(sinkless_bindgen))]
        {
            assert!(snapshot.contains("pub struct sinkless_rowdot_params"));
            eprintln!("skipped: libclang not found at build time, so the bindings snapshot could not be compared with bindgen (run scripts/install-toolchain.sh)");
        }
    }
}
