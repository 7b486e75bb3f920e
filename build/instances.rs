//! The one table of kernel instantiations.
//!
//! Each row becomes a generated file in `OUT_DIR/instances/` that includes its
//! family (templates only) and defines one `extern "C"` kernel; nvcc compiles it
//! into the fatbin and the host compiler into the emulator library. The same
//! rows generate the Rust dispatch table (`OUT_DIR/kernels.rs`).

/// One kernel instantiation.
pub struct Instance {
    /// The `extern "C"` symbol: what the CUDA backend looks up and the emulator calls.
    pub name: String,
    /// Kernel family source file under `kernels/`.
    pub family: &'static str,
    /// Expression that runs the kernel body, with the params struct in scope as `p`.
    pub body: String,
    /// C type of the params struct, passed by value.
    pub params: &'static str,
    /// Threads per block the kernel is compiled for (`__launch_bounds__`).
    pub threads: u32,
    /// SASS instruction classes the kernel must contain (the kernel report checks).
    pub expect_sass: &'static [&'static str],
}

const DTYPES: [(&str, &str); 2] = [
    ("f16", "sinkless::f16_traits"),
    ("bf16", "sinkless::bf16_traits"),
];

/// Every instantiation the crate ships.
pub fn all() -> Vec<Instance> {
    let mut v = Vec::new();
    for (dt, ty) in DTYPES {
        v.push(Instance {
            name: format!("sinkless_rowdot_{dt}"),
            family: "rowdot.cu",
            body: format!("sinkless::rowdot<{ty}>(p)"),
            params: "sinkless_rowdot_params",
            threads: 128,
            expect_sass: &[],
        });
    }
    v
}
