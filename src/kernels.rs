//! The kernel table generated from `build/instances.rs`: names, block sizes and the emulator's
//! entry points, one row per instantiation.

use std::ffi::c_void;

/// One compiled kernel instantiation.
#[derive(Debug)]
pub(crate) struct KernelSpec {
    /// The `extern "C"` symbol in the fatbin.
    pub name: &'static str,
    /// Threads per block it was compiled for.
    pub threads: u32,
    /// Compiled for sm_90a alone (wgmma, tensor copies); the other targets hold a stub that traps.
    pub hopper_only: bool,
    /// Its params struct holds tensor maps (`tma_params.h`), which the CUDA backend encodes.
    pub tensor_maps: bool,
    /// Runs one CUDA thread's share of the kernel under the emulator.
    pub sim_entry: unsafe extern "C" fn(*const c_void),
    /// Reports the launch geometry from the kernel's traits (host-compiled copy).
    pub traits: Option<unsafe extern "C" fn(*mut crate::ffi::sinkless_kernel_traits)>,
}

impl KernelSpec {
    /// The launch geometry of a kernel that declares traits.
    pub fn geometry(&self) -> Option<crate::ffi::sinkless_kernel_traits> {
        let f = self.traits?;
        let mut t = crate::ffi::sinkless_kernel_traits::default();
        // SAFETY: the generated function only writes the four fields of `t`.
        unsafe { f(&mut t) };
        Some(t)
    }
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// Looks a kernel up by name.
pub(crate) fn find(name: &str) -> Option<&'static KernelSpec> {
    KERNELS
        .binary_search_by(|k| k.name.cmp(name))
        .ok()
        .map(|i| &KERNELS[i])
}

/// Whether `name` is in the full instance table, built into this binary or not.
pub(crate) fn in_full_table(name: &str) -> bool {
    ALL_KERNEL_NAMES.binary_search(&name).is_ok()
}

/// Which kernels this build holds: the head-dim buckets it compiled (`SINKLESS_HEAD_DIMS` at
/// build time; all six, 32 64 96 128 192 256, by default) and whether it compiled the
/// [`KernelVariant`](crate::KernelVariant)s' kernels (`SINKLESS_VARIANTS`; yes by default). A
/// call that needs a kernel left out fails with [`Error::KernelNotBuilt`](crate::Error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltKernels {
    /// Head-dim buckets, ascending.
    pub head_dims: &'static [usize],
    /// Whether the kernel variants are in.
    pub variants: bool,
}

/// What this build compiled (see [`BuiltKernels`]).
pub fn built_kernels() -> BuiltKernels {
    BuiltKernels {
        head_dims: BUILT_HEAD_DIMS,
        variants: BUILT_VARIANTS,
    }
}
