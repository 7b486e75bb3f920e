//! The emulator's conformance suite: small kernels (`kernels/conformance.cu`) that exercise every
//! PTX wrapper of `ptx.cuh` and every emulated intrinsic, run on a backend, their raw outputs
//! returned.
//!
//! Two checks tie the emulator to the hardware:
//! - [`check_against_isa`] compares outputs with values worked out from the PTX ISA in plain Rust
//!   (fragment layouts, shuffle segments, `cvt` rounding, `ex2`/`tanh`/`rcp` within the ISA's error
//!   bounds, and the attention kernels' sigmoid within its own). On the emulator this is what CI
//!   runs; a GPU's outputs can be checked the same way.
//! - [`compare`] compares a GPU's outputs with the emulator's for the same launches, bit for bit
//!   except `ex2`/`tanh`/`rcp` and the sigmoid, which may differ by the two sides' documented
//!   errors.
//!
//! Planted bugs ([`Plant`]) prove the emulator turns the mistakes it exists to catch (a missing
//! `__syncthreads` or `cp.async` wait, a deadlocked barrier, an access past a buffer's end, too
//! much shared memory) into a wrong answer or an error rather than a silent pass.
//!
//! ```
//! use sinkless::conformance::{check_against_isa, run_all_emulator};
//! use sinkless::Emulator;
//! let outputs = run_all_emulator(&Emulator::new().with_seed(3))?;
//! let mismatches = check_against_isa(&outputs);
//! assert!(mismatches.is_empty(), "first: {}", mismatches[0]);
//! # Ok::<(), sinkless::Error>(())
//! ```

mod device;
pub use device::queue_spin;
mod inputs;
mod isa;

use crate::backend::emulator::{Emulator, Target};
use crate::config::DType;
use crate::error::{Error, Result};
use crate::ffi;
use crate::CudaBackend;
use std::fmt;

/// The emulator's status code for a barrier or warp collective that part of its threads can
/// never reach (`SINKLESS_SIM_ERR_DEADLOCK` in `kernels/sim/sim_api.h`), as carried by
/// [`Error::Emulator`].
pub const EMULATOR_DEADLOCK: i32 = 3;

/// The emulator's status code for an access that hit a guard page, past the end of a global
/// buffer or of shared memory (`SINKLESS_SIM_ERR_OUT_OF_BOUNDS`), as carried by
/// [`Error::Emulator`].
pub const EMULATOR_OUT_OF_BOUNDS: i32 = 4;

/// The emulator's status code for shared memory written through the generic proxy (plain
/// stores, `cp.async`) and then read by `wgmma` or overwritten by a tensor copy with no
/// `fence.proxy.async` in between (`SINKLESS_SIM_ERR_PROXY`), as carried by [`Error::Emulator`].
pub const EMULATOR_PROXY: i32 = 9;

/// The emulator's status code for an `ldmatrix` whose 8 rows of one matrix do not fall in 8
/// distinct 16-byte slots of a 128-byte line, a bank conflict (`SINKLESS_SIM_ERR_BANK_CONFLICT`),
/// as carried by [`Error::Emulator`].
pub const EMULATOR_BANK_CONFLICT: i32 = 10;

/// The emulator's status code for a shared-memory access that races with another, whatever the
/// schedule: a read (`ld.shared`, `ldmatrix`, a `wgmma` product) of a write it is not ordered
/// after, or a write over such a read (`SINKLESS_SIM_ERR_RACE`), as carried by
/// [`Error::Emulator`].
pub const EMULATOR_RACE: i32 = 11;

/// The emulator's status code for a plain load or store of shared memory, not through
/// `ptx::ld_shared` or `ptx::st_shared`, which the emulator could not check
/// (`SINKLESS_SIM_ERR_PLAIN_SHARED_ACCESS`), as carried by [`Error::Emulator`].
pub const EMULATOR_PLAIN_SHARED_ACCESS: i32 = 12;

/// The emulator's status code for a launch or instruction it refuses as malformed: a bad grid or
/// block shape, a warp collective misused, a `wgmma` descriptor with a bit set between its
/// fields (`SINKLESS_SIM_ERR_CONFIG`), as carried by [`Error::Emulator`].
pub const EMULATOR_CONFIG: i32 = 1;

/// A conformance kernel and its launch shape. Block sizes are fixed by each kernel
/// (`conformance_params.h`) except where a field sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// `sinkless_conf_index`: every thread writes its coordinates. Any 3D grid and block of at
    /// most 1024 threads.
    Index {
        /// Grid dimensions.
        grid: [u32; 3],
        /// Block dimensions.
        block: [u32; 3],
    },
    /// `sinkless_conf_reduce`: a block sum through dynamic shared memory, `__syncthreads` and a
    /// shuffle butterfly; 128 threads per block.
    Reduce {
        /// Blocks.
        blocks: u32,
    },
    /// `sinkless_conf_cp_async`: four `cp.async` commit groups with zero-fill retired by
    /// `wait_group 2, 1, 0` and `wait_all`; 128 threads per block.
    CpAsync {
        /// Blocks.
        blocks: u32,
    },
    /// `sinkless_conf_ldmatrix`: the six `ldmatrix` variants on one warp.
    Ldmatrix,
    /// `sinkless_conf_mma_{f16,bf16}`: `D = A B + C` with `mma.m16n8k16`, `k / 16` steps.
    Mma {
        /// Element type of A and B.
        dtype: DType,
        /// Inner dimension, a multiple of 16; with `ldmatrix` the launch takes `48 k + 256`
        /// bytes of shared memory.
        k: u32,
        /// Fragments through shared memory and `ldmatrix` rather than gathered from global.
        ldmatrix: bool,
    },
    /// `sinkless_conf_wgmma_{f16,bf16}`: `D = A B + C` (64 x k x n) with one warpgroup's
    /// `wgmma.mma_async.m64n{n}k16`, `k / 16` steps; sm_90 only. The operands sit at the place
    /// `row0` and `block` name in 128-row shared tiles, decoys everywhere else
    /// (`conformance_params.h`); [`Kernel::check`] says which fields go together.
    Wgmma {
        /// Element type of A and B.
        dtype: DType,
        /// Inner dimension: 16 to 128, a multiple of 16.
        k: u32,
        /// The product's width: 64 or 128.
        n: u32,
        /// Where the operands come from and which way they are stored.
        form: WgmmaForm,
        /// [`WgmmaForm::SharedK`]: A's first row in its tile, a multiple of 8 up to 64; the other
        /// forms: the first row (k) of the operands stored by k, a multiple of 16, with
        /// `row0 + k <= 128`.
        row0: u32,
        /// B's first column block when B is stored N-major (`block + n / 64 <= 2`); 0 with
        /// [`WgmmaForm::SharedK`].
        block: u32,
        /// One commit group a k-step, or two in flight (`k` 64 or 128): all but the last k-step
        /// onto D, the last onto a second accumulator, retired by `wait_group 1` then 0.
        two_groups: bool,
    },
    /// `sinkless_conf_tma`: four tensor copies (`cp.async.bulk.tensor.4d`, the 128-byte swizzle,
    /// zeros out of bounds) of boxes of a padded 4D tensor, completing on one mbarrier over four
    /// phases, and a named-barrier hand-off; sm_90 only.
    Tma {
        /// The tensor's extents, innermost first.
        dims: [u32; 4],
        /// The box, innermost first: `boxed[0]` a multiple of 8 up to 64, the whole box at most
        /// 8 KiB.
        boxed: [u32; 4],
    },
    /// `sinkless_conf_shfl`: the thirteen shuffle and three vote cases on two warps.
    Shfl,
    /// `sinkless_conf_math`: `ex2`, `tanh`, `rcp`, the attention kernels' two sigmoids and the
    /// narrowing conversions of `n` inputs.
    Math {
        /// Inputs.
        n: u32,
    },
    /// `sinkless_conf_widen`: f16 and bf16 to f32 of the first `n` 16-bit patterns.
    Widen {
        /// Inputs, at most 65536.
        n: u32,
    },
    /// `sinkless_conf_atomic`: float `atomicAdd` and `red_add_f32x2` from every thread of every
    /// block.
    Atomic {
        /// Blocks.
        blocks: u32,
        /// Threads per block, at most 128.
        threads: u32,
        /// Sums added into by `atomicAdd`.
        nsums: u32,
        /// Pairs of adjacent floats added into by `red_add_f32x2`.
        npairs: u32,
    },
}

impl Kernel {
    /// Whether the fields of a [`Kernel::Wgmma`] case go together (the kernel trusts them: a
    /// wrong one would read past its tiles on a GPU); other kernels take any fields their
    /// launch accepts.
    ///
    /// # Errors
    /// [`Error::BadOption`] naming the field and the case.
    pub fn check(&self) -> Result<()> {
        let Kernel::Wgmma {
            k,
            n,
            form,
            row0,
            block,
            two_groups,
            ..
        } = *self
        else {
            return Ok(());
        };
        let bad = |option: &'static str, value: u32, rule: &str| {
            Err(Error::BadOption {
                option,
                value: format!("{value} (wgmma case: {rule})"),
            })
        };
        if k == 0 || k > 128 || k % 16 != 0 {
            return bad("k", k, "16 to 128, a multiple of 16");
        }
        if n != 64 && n != 128 {
            return bad("n", n, "64 or 128");
        }
        if two_groups && k != 64 && k != 128 {
            return bad("k", k, "64 or 128 with two groups");
        }
        match form {
            WgmmaForm::SharedK => {
                if row0 % 8 != 0 || row0 > 64 {
                    return bad("row0", row0, "A's first row, a multiple of 8 up to 64");
                }
                if block != 0 {
                    return bad("block", block, "0 with B stored K-major");
                }
            }
            WgmmaForm::RegisterA | WgmmaForm::SharedMn => {
                if row0 % 16 != 0 || row0 + k > 128 {
                    return bad("row0", row0, "a multiple of 16 with row0 + k <= 128");
                }
                if block + n / 64 > 2 {
                    return bad("block", block, "block + n / 64 <= 2");
                }
            }
        }
        Ok(())
    }
}

/// The operand forms of the warpgroup product case ([`Kernel::Wgmma`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WgmmaForm {
    /// A and B from shared memory by descriptors, both K-major (B stored `[n][k]`).
    SharedK,
    /// A from registers in the `mma.m16n8k16` table layout, B N-major (`[k][n]`).
    RegisterA,
    /// A and B from shared memory by descriptors, A M-major (`[k][m]`) and B N-major.
    SharedMn,
}

impl WgmmaForm {
    /// The params' `form` value.
    pub(crate) fn code(self) -> u32 {
        match self {
            WgmmaForm::SharedK => ffi::SINKLESS_CONF_WGMMA_SHARED_K,
            WgmmaForm::RegisterA => ffi::SINKLESS_CONF_WGMMA_REGISTER_A,
            WgmmaForm::SharedMn => ffi::SINKLESS_CONF_WGMMA_SHARED_MN,
        }
    }
}

/// A planted bug: an emulator self-test that must fail in a specific way ([`Plant::caught`]).
/// Never run on a GPU ([`run_cuda`] refuses them): a deadlocked block would hang it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Plant {
    /// `conf_reduce` without its `__syncthreads`: threads read partial sums that other warps
    /// write, with nothing ordering the two.
    SkipSync,
    /// `conf_reduce` with threads 64.. returning before the first barrier.
    ExitEarly,
    /// `conf_reduce` with odd warps waiting at a different `__syncthreads`.
    DivergentBarrier,
    /// `conf_reduce` with lane 5 returning before the warp's shuffles.
    WarpExit,
    /// `conf_cp_async` without its first `cp.async.wait_group`: stage 0 is read while its copies
    /// may still be in flight.
    SkipWait,
    /// `conf_tma` with threads 64.. not waiting on the mbarrier for the first copy: they read its
    /// buffer while the copy may still be in flight.
    SkipMbarrierWait,
    /// `conf_wgmma` staging its operands with plain stores and no `fence.proxy.async` before
    /// the products read them.
    SkipProxyFence,
    /// `conf_mma` with A's rows packed `k` elements apart in shared memory: the rows of each
    /// `ldmatrix` matrix collide in the banks.
    LdmatrixBankConflict,
    /// `conf_reduce` storing its inputs to shared memory with plain stores, not through
    /// `ptx::st_shared`: the emulator could not check them.
    PlainSharedStore,
    /// `conf_reduce` reading its last partial sums with plain loads, not through
    /// `ptx::ld_shared`: the emulator could not check them.
    PlainSharedLoad,
    /// `conf_reduce` with warp 1 overwriting the partial sums that warp 0 reads after the last
    /// barrier, with nothing ordering the store after the reads.
    StoreAfterLoad,
    /// `conf_reduce` with each lane of warp 0 clearing the word the next lane read, after the
    /// shuffles (which order nothing) and without the `__syncwarp` the clean kernel has there.
    SameWarpStoreAfterLoad,
    /// `conf_reduce` storing its inputs 32 words apart (a permutation, so the sum is right): four
    /// lanes of each store share a bank.
    SharedBankConflict,
    /// `conf_wgmma` with its threads overwriting B's tile after issuing the first product and
    /// before the `wgmma.wait_group` that retires it.
    StoreUnderWgmma,
    /// `conf_tma` with threads 0-63 arriving at the hand-off's named barrier before their stores,
    /// so the barrier does not order the stores before the other warps' `ldmatrix`.
    ArriveBeforeStore,
    /// `conf_tma` with thread 0 storing into the hand-off after the other warps' `ldmatrix` of
    /// it (it waits for one more copy first), with nothing ordering the store after the reads.
    StoreAfterLdmatrix,
    /// `conf_wgmma` with the start address of its first A descriptor moved 256 KiB on, which
    /// carries out of the descriptor's 14-bit field into the bits between fields.
    DescriptorOverflow,
    /// `conf_wgmma` with its B descriptors one place past where B is staged (8 rows on when
    /// K-major, one column block on when N-major), where the decoys sit: the launch succeeds
    /// and the sums are wrong, which shows the case can tell a misplaced operand.
    MisplacedB,
    /// `conf_widen` told one element more than its input holds: a read past the end.
    ReadPastEnd,
    /// `conf_widen` with its f16 output four elements short: a write past the end.
    WritePastEnd,
    /// `conf_mma` with `ldmatrix` at `k = 4096`: 192 KiB (and 256 bytes) of shared memory, over
    /// sm_80's limit (run with [`Target::Sm80`] whatever the emulator's target; it fits on
    /// sm_90).
    SharedMemoryOverLimit,
}

/// How the emulator must react to a [`Plant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caught {
    /// The launch fails with [`Error::Emulator`] carrying this code.
    Emulator {
        /// [`EMULATOR_DEADLOCK`], [`EMULATOR_OUT_OF_BOUNDS`], [`EMULATOR_PROXY`],
        /// [`EMULATOR_BANK_CONFLICT`], [`EMULATOR_RACE`], [`EMULATOR_PLAIN_SHARED_ACCESS`] or
        /// [`EMULATOR_CONFIG`].
        code: i32,
    },
    /// The launch is refused with [`Error::SharedMemory`].
    SharedMemory,
    /// The launch succeeds and the ISA check finds wrong values.
    WrongValues,
}

/// Which buffer a fault plant sizes wrongly.
#[derive(Clone, Copy, Debug)]
enum Fault {
    ReadPastEnd,
    WritePastEnd,
}

impl Plant {
    /// Every planted bug.
    pub const ALL: [Plant; 21] = [
        Plant::SkipSync,
        Plant::ExitEarly,
        Plant::DivergentBarrier,
        Plant::WarpExit,
        Plant::SkipWait,
        Plant::SkipMbarrierWait,
        Plant::SkipProxyFence,
        Plant::LdmatrixBankConflict,
        Plant::PlainSharedStore,
        Plant::PlainSharedLoad,
        Plant::StoreAfterLoad,
        Plant::SameWarpStoreAfterLoad,
        Plant::SharedBankConflict,
        Plant::StoreUnderWgmma,
        Plant::ArriveBeforeStore,
        Plant::StoreAfterLdmatrix,
        Plant::DescriptorOverflow,
        Plant::MisplacedB,
        Plant::ReadPastEnd,
        Plant::WritePastEnd,
        Plant::SharedMemoryOverLimit,
    ];

    /// A short name (`skip_sync`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Plant::SkipSync => "skip_sync",
            Plant::ExitEarly => "exit_early",
            Plant::DivergentBarrier => "divergent_barrier",
            Plant::WarpExit => "warp_exit",
            Plant::SkipWait => "skip_wait",
            Plant::SkipMbarrierWait => "skip_mbarrier_wait",
            Plant::SkipProxyFence => "skip_proxy_fence",
            Plant::LdmatrixBankConflict => "ldmatrix_bank_conflict",
            Plant::PlainSharedStore => "plain_shared_store",
            Plant::PlainSharedLoad => "plain_shared_load",
            Plant::StoreAfterLoad => "store_after_load",
            Plant::SameWarpStoreAfterLoad => "same_warp_store_after_load",
            Plant::SharedBankConflict => "shared_bank_conflict",
            Plant::StoreUnderWgmma => "store_under_wgmma",
            Plant::ArriveBeforeStore => "arrive_before_store",
            Plant::StoreAfterLdmatrix => "store_after_ldmatrix",
            Plant::DescriptorOverflow => "descriptor_overflow",
            Plant::MisplacedB => "misplaced_b",
            Plant::ReadPastEnd => "read_past_end",
            Plant::WritePastEnd => "write_past_end",
            Plant::SharedMemoryOverLimit => "shared_memory_over_limit",
        }
    }

    /// How the emulator must react.
    pub fn caught(self) -> Caught {
        match self {
            Plant::ExitEarly | Plant::DivergentBarrier | Plant::WarpExit => Caught::Emulator {
                code: EMULATOR_DEADLOCK,
            },
            Plant::ReadPastEnd | Plant::WritePastEnd => Caught::Emulator {
                code: EMULATOR_OUT_OF_BOUNDS,
            },
            Plant::SkipProxyFence => Caught::Emulator {
                code: EMULATOR_PROXY,
            },
            Plant::LdmatrixBankConflict | Plant::SharedBankConflict => Caught::Emulator {
                code: EMULATOR_BANK_CONFLICT,
            },
            Plant::PlainSharedStore | Plant::PlainSharedLoad => Caught::Emulator {
                code: EMULATOR_PLAIN_SHARED_ACCESS,
            },
            Plant::SkipSync
            | Plant::SkipWait
            | Plant::SkipMbarrierWait
            | Plant::StoreAfterLoad
            | Plant::SameWarpStoreAfterLoad
            | Plant::StoreUnderWgmma
            | Plant::ArriveBeforeStore
            | Plant::StoreAfterLdmatrix => Caught::Emulator {
                code: EMULATOR_RACE,
            },
            Plant::DescriptorOverflow => Caught::Emulator {
                code: EMULATOR_CONFIG,
            },
            Plant::SharedMemoryOverLimit => Caught::SharedMemory,
            Plant::MisplacedB => Caught::WrongValues,
        }
    }

    /// The case that carries this bug, with inputs from `seed`.
    pub fn case(self, seed: u64) -> ConformanceCase {
        let kernel = match self {
            Plant::SkipSync
            | Plant::ExitEarly
            | Plant::DivergentBarrier
            | Plant::WarpExit
            | Plant::PlainSharedStore
            | Plant::PlainSharedLoad
            | Plant::StoreAfterLoad
            | Plant::SameWarpStoreAfterLoad
            | Plant::SharedBankConflict => Kernel::Reduce { blocks: 4 },
            Plant::SkipWait => Kernel::CpAsync { blocks: 2 },
            Plant::SkipMbarrierWait | Plant::ArriveBeforeStore | Plant::StoreAfterLdmatrix => {
                TMA_CASES[0]
            }
            Plant::SkipProxyFence => wgmma(DType::BF16, 64, WgmmaForm::SharedK),
            Plant::StoreUnderWgmma => wgmma(DType::F16, 32, WgmmaForm::SharedMn),
            Plant::DescriptorOverflow => wgmma(DType::F16, 48, WgmmaForm::SharedK),
            Plant::MisplacedB => wgmma(DType::BF16, 32, WgmmaForm::RegisterA),
            Plant::ReadPastEnd => Kernel::Widen { n: 65536 },
            Plant::WritePastEnd => Kernel::Widen { n: 1024 },
            Plant::LdmatrixBankConflict => Kernel::Mma {
                dtype: DType::F16,
                k: 64,
                ldmatrix: true,
            },
            Plant::SharedMemoryOverLimit => Kernel::Mma {
                dtype: DType::BF16,
                k: 4096,
                ldmatrix: true,
            },
        };
        ConformanceCase {
            kernel,
            seed,
            plant: Some(self),
        }
    }

    /// Whether the plant belongs to the kernel.
    fn fits(self, kernel: &Kernel) -> bool {
        matches!(
            (self, kernel),
            (
                Plant::SkipSync
                    | Plant::ExitEarly
                    | Plant::DivergentBarrier
                    | Plant::WarpExit
                    | Plant::PlainSharedStore
                    | Plant::PlainSharedLoad
                    | Plant::StoreAfterLoad
                    | Plant::SameWarpStoreAfterLoad
                    | Plant::SharedBankConflict,
                Kernel::Reduce { .. }
            ) | (Plant::SkipWait, Kernel::CpAsync { .. })
                | (
                    Plant::SkipMbarrierWait | Plant::ArriveBeforeStore | Plant::StoreAfterLdmatrix,
                    Kernel::Tma { .. }
                )
                | (
                    Plant::SkipProxyFence | Plant::StoreUnderWgmma,
                    Kernel::Wgmma {
                        two_groups: false,
                        ..
                    }
                )
                | (
                    Plant::DescriptorOverflow,
                    Kernel::Wgmma {
                        form: WgmmaForm::SharedK,
                        two_groups: false,
                        ..
                    }
                )
                | (
                    Plant::MisplacedB,
                    Kernel::Wgmma {
                        n: 64,
                        block: 0,
                        two_groups: false,
                        ..
                    }
                )
                | (
                    Plant::ReadPastEnd | Plant::WritePastEnd,
                    Kernel::Widen { .. }
                )
                | (
                    Plant::SharedMemoryOverLimit | Plant::LdmatrixBankConflict,
                    Kernel::Mma { ldmatrix: true, .. }
                )
        )
    }

    /// The buffer a fault plant sizes wrongly.
    fn fault(self) -> Option<Fault> {
        match self {
            Plant::ReadPastEnd => Some(Fault::ReadPastEnd),
            Plant::WritePastEnd => Some(Fault::WritePastEnd),
            _ => None,
        }
    }

    /// Runs the plant's case (inputs from `seed`) on `emu` and says whether it was caught as
    /// [`caught`](Self::caught) requires: `Ok` with how, or `Err` with what happened instead.
    ///
    /// # Errors
    /// A description of the failure when the bug went unnoticed or failed another way.
    pub fn verify(self, emu: &Emulator, seed: u64) -> std::result::Result<String, String> {
        let case = self.case(seed);
        match (self.caught(), run_emulator(emu, &case)) {
            (
                Caught::Emulator { code },
                Err(Error::Emulator {
                    code: c, message, ..
                }),
            ) if c == code => Ok(format!("emulator error {c}: {message}")),
            (Caught::SharedMemory, Err(e @ Error::SharedMemory { .. })) => Ok(e.to_string()),
            (Caught::WrongValues, Ok(out)) => match check_against_isa(&[out]).as_slice() {
                [] => Err("went unnoticed: every value matches the ISA".into()),
                wrong => Ok(format!("{} wrong values, first: {}", wrong.len(), wrong[0])),
            },
            (_, Ok(_)) => Err("went unnoticed: the launch succeeded".into()),
            (_, Err(e)) => Err(format!("failed the wrong way: {e}")),
        }
    }
}

/// One conformance launch: a kernel, the seed of its inputs and an optional planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConformanceCase {
    /// Kernel and launch shape.
    pub kernel: Kernel,
    /// Seed of the inputs (kernels with fixed inputs ignore it).
    pub seed: u64,
    /// A planted bug; `None` for the conformance suite proper.
    pub plant: Option<Plant>,
}

impl ConformanceCase {
    /// A case without a planted bug.
    pub fn new(kernel: Kernel, seed: u64) -> Self {
        ConformanceCase {
            kernel,
            seed,
            plant: None,
        }
    }

    /// Whether `gpu` can run the case: the wgmma and tensor-copy kernels need sm_90.
    pub fn runs_on(&self, gpu: &CudaBackend) -> bool {
        !matches!(self.kernel, Kernel::Wgmma { .. } | Kernel::Tma { .. }) || gpu.has_wgmma()
    }

    /// A one-line description (`mma bf16 k=48 ldmatrix`, `reduce 9 blocks [skip_sync]`).
    pub fn name(&self) -> String {
        let dims = |d: [u32; 3]| format!("{}x{}x{}", d[0], d[1], d[2]);
        let base = match self.kernel {
            Kernel::Index { grid, block } => {
                format!("index grid {} block {}", dims(grid), dims(block))
            }
            Kernel::Reduce { blocks } => format!("reduce {blocks} blocks"),
            Kernel::CpAsync { blocks } => format!("cp_async {blocks} blocks"),
            Kernel::Ldmatrix => "ldmatrix".into(),
            Kernel::Mma { dtype, k, ldmatrix } => format!(
                "mma {} k={k}{}",
                dtype.name(),
                if ldmatrix { " ldmatrix" } else { "" }
            ),
            Kernel::Wgmma {
                dtype,
                k,
                n,
                form,
                row0,
                block,
                two_groups,
            } => {
                let mut s = format!("wgmma {} k={k} n={n}", dtype.name());
                s.push_str(match form {
                    WgmmaForm::SharedK => "",
                    WgmmaForm::RegisterA => " register A",
                    WgmmaForm::SharedMn => " A M-major",
                });
                if row0 != 0 {
                    s.push_str(&format!(" from row {row0}"));
                }
                if block != 0 {
                    s.push_str(&format!(" B block {block}"));
                }
                if two_groups {
                    s.push_str(" two groups");
                }
                s
            }
            Kernel::Tma { dims, boxed } => {
                let join = |v: [u32; 4]| v.map(|x| x.to_string()).join("x");
                format!("tma {} box {}", join(dims), join(boxed))
            }
            Kernel::Shfl => "shfl".into(),
            Kernel::Math { n } => format!("math n={n}"),
            Kernel::Widen { n } => format!("widen n={n}"),
            Kernel::Atomic {
                blocks,
                threads,
                nsums,
                npairs,
            } => format!("atomic {blocks}x{threads} threads into {nsums} sums and {npairs} pairs"),
        };
        match self.plant {
            Some(p) => format!("{base} [{}]", p.name()),
            None => base,
        }
    }
}

/// The tensor-copy cases: boxes across every edge of a tensor whose innermost extent is below
/// one box (40 of 64 columns), and the attention kernels' shape (64 columns of a 72-wide row, 16
/// rows of one head).
/// A warpgroup product case at its simplest place: 64 wide, the operands from row 0 and
/// column block 0, one group a k-step.
fn wgmma(dtype: DType, k: u32, form: WgmmaForm) -> Kernel {
    Kernel::Wgmma {
        dtype,
        k,
        n: 64,
        form,
        row0: 0,
        block: 0,
        two_groups: false,
    }
}

const TMA_CASES: [Kernel; 2] = [
    Kernel::Tma {
        dims: [40, 3, 13, 2],
        boxed: [64, 2, 8, 2],
    },
    Kernel::Tma {
        dims: [72, 21, 5, 3],
        boxed: [64, 16, 1, 1],
    },
];

/// The conformance suite proper: every kernel, awkward shapes included, no planted bugs.
pub fn cases() -> Vec<ConformanceCase> {
    let mut v = vec![
        Kernel::Index {
            grid: [2, 3, 2],
            block: [4, 3, 2],
        },
        Kernel::Index {
            grid: [5, 1, 1],
            block: [7, 5, 3],
        },
        Kernel::Index {
            grid: [1, 1, 1],
            block: [1, 1, 1],
        },
        Kernel::Index {
            grid: [2, 1, 1],
            block: [1024, 1, 1],
        },
        Kernel::Reduce { blocks: 9 },
        Kernel::CpAsync { blocks: 3 },
        Kernel::Ldmatrix,
    ];
    for dtype in [DType::F16, DType::BF16] {
        for k in [16, 48] {
            for ldmatrix in [false, true] {
                v.push(Kernel::Mma { dtype, k, ldmatrix });
            }
        }
        // The attention kernels' products: S = Q K^T for a warpgroup's rows of a 128-row Q tile
        // at 64 and 128 keys, O += P V and dV += P^T dO with V across both column blocks, the
        // split-keys dQ from a k offset and one column block, two groups as the forward overlaps
        // S and P V; beside them each form at k-steps that do not fill a column block.
        use WgmmaForm::{RegisterA, SharedK, SharedMn};
        for (k, n, form, row0, block, two_groups) in [
            (128, 64, SharedK, 0, 0, false),
            (48, 64, SharedK, 0, 0, false),
            (128, 128, SharedK, 0, 0, false),
            (64, 64, SharedK, 64, 0, false),
            (128, 128, SharedK, 64, 0, true),
            (128, 64, RegisterA, 0, 0, false),
            (16, 64, RegisterA, 0, 0, false),
            (128, 128, RegisterA, 0, 0, false),
            (64, 64, RegisterA, 64, 1, false),
            (64, 128, RegisterA, 0, 0, true),
            (128, 64, SharedMn, 0, 0, false),
            (32, 64, SharedMn, 0, 0, false),
            (64, 128, SharedMn, 64, 0, false),
            (128, 64, SharedMn, 0, 1, false),
            (64, 64, SharedMn, 32, 1, true),
        ] {
            v.push(Kernel::Wgmma {
                dtype,
                k,
                n,
                form,
                row0,
                block,
                two_groups,
            });
        }
    }
    v.extend(TMA_CASES);
    v.extend([
        Kernel::Shfl,
        Kernel::Math { n: 6007 },
        Kernel::Widen { n: 65536 },
        Kernel::Atomic {
            blocks: 64,
            threads: 128,
            nsums: 3,
            npairs: 7,
        },
        Kernel::Atomic {
            blocks: 37,
            threads: 96,
            nsums: 5,
            npairs: 2,
        },
    ]);
    v.into_iter()
        .enumerate()
        .map(|(i, k)| ConformanceCase::new(k, 100 + i as u64))
        .collect()
}

/// How an output buffer is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tolerance {
    /// Bit for bit.
    Exact,
    /// `ex2.approx.ftz.f32`: within the ISA's 2 ulp of the exact `2^x` (against the ISA); two
    /// backends within twice that of each other.
    Ex2,
    /// `tanh.approx.f32`: within the ISA's relative error 2^-10.987 of the exact `tanh(x)`; two
    /// backends within twice that of each other.
    Tanh,
    /// `rcp.approx.ftz.f32`: within the ISA's 1 ulp of the exact `1/x`; two backends within
    /// twice that of each other.
    Rcp,
    /// The attention kernels' sigmoid (`sigmoid_scaled<degree>` in `activation.cuh`, degree 4
    /// everywhere but the plain sigmoid's bf16 forward, 3): within its fit's relative error (2^-14
    /// and 2^-11.44) of the exact `1 / (1 + e^-x)`, or below the smallest normal `f32` where the
    /// exact value is; two backends within twice that of each other.
    Sigmoid {
        /// The polynomial's degree, 3 or 4.
        degree: u8,
    },
}

/// The contents of one output buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// 16-bit words (f16/bf16 bits).
    U16(Vec<u16>),
    /// 32-bit words.
    U32(Vec<u32>),
    /// `f32` values (compared by their bits).
    F32(Vec<f32>),
}

impl Values {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::U16(v) => v.len(),
            Values::U32(v) => v.len(),
            Values::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bits of element `i`, widened to 32.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn bits(&self, i: usize) -> u32 {
        match self {
            Values::U16(v) => u32::from(v[i]),
            Values::U32(v) => v[i],
            Values::F32(v) => v[i].to_bits(),
        }
    }

    /// Element `i` printed: hex bits, and the value for `f32`.
    fn show(&self, i: usize) -> String {
        match self {
            Values::U16(v) => format!("{:#06x}", v[i]),
            Values::U32(v) => format!("{:#010x}", v[i]),
            Values::F32(v) => format!("{:e} ({:#010x})", v[i], v[i].to_bits()),
        }
    }
}

/// One output buffer of a launch.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// The params field it was written through (`out`, `d`, `ex2`, ...).
    pub name: &'static str,
    /// Its contents.
    pub values: Values,
    /// How it is compared.
    pub tolerance: Tolerance,
}

impl Output {
    fn exact(name: &'static str, values: Values) -> Self {
        Output {
            name,
            values,
            tolerance: Tolerance::Exact,
        }
    }

    /// An `f32` buffer of an approximate instruction, compared by `tolerance`.
    fn approx(name: &'static str, values: Vec<f32>, tolerance: Tolerance) -> Self {
        Output {
            name,
            values: Values::F32(values),
            tolerance,
        }
    }
}

/// What one launch wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ConformanceOutput {
    /// The case that ran.
    pub case: ConformanceCase,
    /// Every output buffer, in params-struct order.
    pub outputs: Vec<Output>,
}

/// One element (or, with no index, one whole buffer) that differs from what it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// The case's name.
    pub case: String,
    /// The buffer.
    pub buffer: &'static str,
    /// The element; `None` when the buffers differ in shape.
    pub index: Option<usize>,
    /// What was found.
    pub got: String,
    /// What it should be (the ISA's value, or the emulator's in [`compare`]).
    pub want: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(
                f,
                "{} {}[{i}]: got {}, want {}",
                self.case, self.buffer, self.got, self.want
            ),
            None => write!(
                f,
                "{} {}: got {}, want {}",
                self.case, self.buffer, self.got, self.want
            ),
        }
    }
}

/// Runs one case on the emulator ([`Plant::SharedMemoryOverLimit`] under sm_80 limits).
///
/// # Errors
/// [`Error::Emulator`] or [`Error::SharedMemory`] when the emulator refuses or faults (as the
/// planted bugs must); [`Error::Unsupported`] for a plant that does not belong to the kernel.
pub fn run_emulator(emu: &Emulator, case: &ConformanceCase) -> Result<ConformanceOutput> {
    check_plant(case)?;
    let outputs = if case.plant == Some(Plant::SharedMemoryOverLimit) {
        device::run(&emu.clone().with_target(Target::Sm80), case)?
    } else {
        device::run(emu, case)?
    };
    Ok(ConformanceOutput {
        case: *case,
        outputs,
    })
}

/// Runs one case on the GPU.
///
/// # Errors
/// [`Error::Unsupported`] for a case with a planted bug (they must never reach a GPU);
/// [`Error::SharedMemory`] past the device's limit; [`Error::Cuda`].
pub fn run_cuda(gpu: &CudaBackend, case: &ConformanceCase) -> Result<ConformanceOutput> {
    if let Some(p) = case.plant {
        return Err(Error::Unsupported {
            feature: format!("planted bug {} on a GPU", p.name()),
        });
    }
    Ok(ConformanceOutput {
        case: *case,
        outputs: device::run(gpu, case)?,
    })
}

/// Runs every case of [`cases`] on the emulator.
///
/// # Errors
/// The first case's error, as [`run_emulator`].
pub fn run_all_emulator(emu: &Emulator) -> Result<Vec<ConformanceOutput>> {
    cases().iter().map(|c| run_emulator(emu, c)).collect()
}

/// Runs every case of [`cases`] that the GPU can run ([`ConformanceCase::runs_on`]) on it.
///
/// # Errors
/// The first case's error, as [`run_cuda`].
pub fn run_all_cuda(gpu: &CudaBackend) -> Result<Vec<ConformanceOutput>> {
    cases()
        .iter()
        .filter(|c| c.runs_on(gpu))
        .map(|c| run_cuda(gpu, c))
        .collect()
}

fn check_plant(case: &ConformanceCase) -> Result<()> {
    match case.plant {
        Some(p) if !p.fits(&case.kernel) => Err(Error::Unsupported {
            feature: format!("planted bug {} in {}", p.name(), case.name()),
        }),
        _ => Ok(()),
    }
}

/// What an output buffer must hold, per the ISA.
enum Want {
    Exact(Values),
    /// The exact `2^x` (input flushed, output not).
    Ex2(Vec<f64>),
    /// The exact `tanh(x)`.
    Tanh(Vec<f64>),
    /// The exact `1/x` (input flushed, output not).
    Rcp(Vec<f64>),
    /// The exact `1 / (1 + e^-x)`, for the fit of this degree.
    Sigmoid(Vec<f64>, u8),
}

/// The ISA's answer for every output buffer of `case`, in params-struct order.
fn expected(case: &ConformanceCase) -> Vec<Want> {
    let seed = case.seed;
    match case.kernel {
        Kernel::Index { grid, block } => vec![Want::Exact(Values::U32(isa::index(grid, block)))],
        Kernel::Reduce { blocks } => vec![Want::Exact(Values::U32(isa::reduce(&inputs::reduce(
            blocks, seed,
        ))))],
        Kernel::CpAsync { blocks } => vec![Want::Exact(Values::U32(isa::cp_async(
            &inputs::cp_async(blocks, seed),
        )))],
        Kernel::Ldmatrix => vec![Want::Exact(Values::U32(isa::ldmatrix(&inputs::ldmatrix(
            seed,
        ))))],
        Kernel::Mma { dtype, k, .. } => {
            let dims = (16, k as usize, 8);
            let m = inputs::mma(dtype, dims, seed);
            vec![Want::Exact(Values::F32(isa::mma(&m.a, &m.b, &m.c, dims)))]
        }
        Kernel::Wgmma { dtype, k, n, .. } => {
            let dims = (64, k as usize, n as usize);
            let m = inputs::mma(dtype, dims, seed);
            vec![Want::Exact(Values::F32(isa::mma(&m.a, &m.b, &m.c, dims)))]
        }
        Kernel::Tma { dims, boxed } => {
            let t = inputs::tma(dims, boxed, seed);
            vec![
                Want::Exact(Values::U16(isa::tma(
                    &t.data, dims, t.strides, boxed, &t.coords,
                ))),
                Want::Exact(Values::U32(isa::named_handoff())),
            ]
        }
        Kernel::Shfl => vec![Want::Exact(Values::U32(isa::shfl(&inputs::shfl())))],
        Kernel::Math { n } => {
            let x = inputs::math(n, seed);
            let map16 = |f: fn(f32) -> u16| Values::U16(x.iter().map(|&v| f(v)).collect());
            let pairs = |f: fn(f32) -> u16| {
                Values::U32(
                    x.iter()
                        .zip(x.iter().rev())
                        .map(|(&lo, &hi)| isa::pack(f, lo, hi))
                        .collect(),
                )
            };
            vec![
                Want::Ex2(x.iter().map(|&v| isa::ex2_exact(v)).collect()),
                Want::Tanh(x.iter().map(|&v| isa::tanh_exact(v)).collect()),
                Want::Rcp(x.iter().map(|&v| isa::rcp_exact(v)).collect()),
                Want::Sigmoid(x.iter().map(|&v| isa::sigmoid_exact(v)).collect(), 4),
                Want::Sigmoid(x.iter().map(|&v| isa::sigmoid_exact(v)).collect(), 3),
                Want::Exact(map16(isa::f32_to_f16)),
                Want::Exact(map16(isa::f32_to_bf16)),
                Want::Exact(pairs(isa::f32_to_f16)),
                Want::Exact(pairs(isa::f32_to_bf16)),
            ]
        }
        Kernel::Widen { n } => {
            let x = inputs::widen(n);
            vec![
                Want::Exact(Values::F32(x.iter().map(|&h| isa::f16_to_f32(h)).collect())),
                Want::Exact(Values::F32(
                    x.iter().map(|&h| isa::bf16_to_f32(h)).collect(),
                )),
            ]
        }
        Kernel::Atomic {
            blocks,
            threads,
            nsums,
            npairs,
        } => isa::atomic(blocks, threads, nsums, npairs)
            .into_iter()
            .map(|v| Want::Exact(Values::F32(v)))
            .collect(),
    }
}

/// A mismatch of buffer shapes, or `None` when `got` and `want` have the same length.
fn shape_mismatch(
    case: &str,
    got: &Output,
    want_name: &'static str,
    want_len: usize,
) -> Option<Mismatch> {
    (got.name != want_name || got.values.len() != want_len).then(|| Mismatch {
        case: case.into(),
        buffer: got.name,
        index: None,
        got: format!("{} of {} elements", got.name, got.values.len()),
        want: format!("{want_name} of {want_len} elements"),
    })
}

/// Every element of every output that differs from the PTX ISA's answer (see [`Tolerance`]),
/// in order. Works on any backend's outputs; planted-bug cases are judged as if the bug were
/// absent, which is how a wrong answer shows.
pub fn check_against_isa(outputs: &[ConformanceOutput]) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    for out in outputs {
        let case = out.case.name();
        let wants = expected(&out.case);
        if out.outputs.len() != wants.len() {
            mismatches.push(Mismatch {
                case: case.clone(),
                buffer: "outputs",
                index: None,
                got: format!("{} buffers", out.outputs.len()),
                want: format!("{} buffers", wants.len()),
            });
            continue;
        }
        for (got, want) in out.outputs.iter().zip(&wants) {
            let want_len = match want {
                Want::Exact(v) => v.len(),
                Want::Ex2(v) | Want::Tanh(v) | Want::Rcp(v) | Want::Sigmoid(v, _) => v.len(),
            };
            if let Some(m) = shape_mismatch(&case, got, got.name, want_len) {
                mismatches.push(m);
                continue;
            }
            for i in 0..want_len {
                let ok = match (want, &got.values) {
                    (Want::Exact(w), g) => w.bits(i) == g.bits(i),
                    (Want::Ex2(w), Values::F32(g)) => isa::ex2_close(g[i], w[i], isa::EX2_ULPS),
                    (Want::Tanh(w), Values::F32(g)) => isa::tanh_close(g[i], w[i], isa::TANH_REL),
                    (Want::Rcp(w), Values::F32(g)) => isa::rcp_close(g[i], w[i], isa::RCP_ULPS),
                    (Want::Sigmoid(w, degree), Values::F32(g)) => {
                        isa::sigmoid_close(g[i], w[i], isa::sigmoid_rel(*degree))
                    }
                    _ => false,
                };
                if !ok {
                    let want = match want {
                        Want::Exact(w) => w.show(i),
                        Want::Ex2(w) | Want::Tanh(w) | Want::Rcp(w) | Want::Sigmoid(w, _) => {
                            format!("{:e} (exact)", w[i])
                        }
                    };
                    mismatches.push(Mismatch {
                        case: case.clone(),
                        buffer: got.name,
                        index: Some(i),
                        got: got.values.show(i),
                        want,
                    });
                }
            }
        }
    }
    mismatches
}

/// Whether two backends' `f32` results of an approximate instruction agree: each is within the
/// ISA's bound of the exact value, so they are within twice the bound of each other.
fn approx_agree(tolerance: Tolerance, a: f32, b: f32) -> bool {
    let close = |x: f32, y: f32| match tolerance {
        Tolerance::Ex2 => isa::ex2_close(x, f64::from(y), 2.0 * isa::EX2_ULPS),
        Tolerance::Tanh => isa::tanh_close(x, f64::from(y), 2.0 * isa::TANH_REL),
        Tolerance::Rcp => isa::rcp_close(x, f64::from(y), 2.0 * isa::RCP_ULPS),
        Tolerance::Sigmoid { degree } => {
            isa::sigmoid_close(x, f64::from(y), 2.0 * isa::sigmoid_rel(degree))
        }
        Tolerance::Exact => x.to_bits() == y.to_bits(),
    };
    close(a, b) || close(b, a)
}

/// Every element where the GPU's outputs differ from the emulator's for the same cases: bit for
/// bit, except the approximate ones ([`Tolerance::Ex2`], [`Tolerance::Tanh`], [`Tolerance::Rcp`],
/// [`Tolerance::Sigmoid`]), within twice their bound. Cases are paired in order; a differing
/// case list is reported, not skipped.
pub fn compare(gpu: &[ConformanceOutput], emu: &[ConformanceOutput]) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    if gpu.len() != emu.len() {
        mismatches.push(Mismatch {
            case: "all cases".into(),
            buffer: "outputs",
            index: None,
            got: format!("{} cases from the GPU", gpu.len()),
            want: format!("{} cases from the emulator", emu.len()),
        });
    }
    for (g, e) in gpu.iter().zip(emu) {
        let case = g.case.name();
        if g.case != e.case || g.outputs.len() != e.outputs.len() {
            mismatches.push(Mismatch {
                case: case.clone(),
                buffer: "outputs",
                index: None,
                got: format!("{} with {} buffers", case, g.outputs.len()),
                want: format!("{} with {} buffers", e.case.name(), e.outputs.len()),
            });
            continue;
        }
        for (go, eo) in g.outputs.iter().zip(&e.outputs) {
            if let Some(m) = shape_mismatch(&case, go, eo.name, eo.values.len()) {
                mismatches.push(m);
                continue;
            }
            for i in 0..eo.values.len() {
                let ok = match (&go.values, &eo.values, eo.tolerance) {
                    (_, _, Tolerance::Exact) => go.values.bits(i) == eo.values.bits(i),
                    (Values::F32(a), Values::F32(b), t) => approx_agree(t, a[i], b[i]),
                    _ => false,
                };
                if !ok {
                    mismatches.push(Mismatch {
                        case: case.clone(),
                        buffer: go.name,
                        index: Some(i),
                        got: go.values.show(i),
                        want: eo.values.show(i),
                    });
                }
            }
        }
    }
    mismatches
}

/// One line of a conformance report.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// `emulator`, `emulator plant` or `gpu`.
    pub backend: &'static str,
    /// The case, and what it was checked against.
    pub case: String,
    /// Whether it passed.
    pub passed: bool,
    /// How (the mismatch count and the first mismatches, an error, how a plant was caught).
    pub detail: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "ok" } else { "FAIL" };
        write!(
            f,
            "{:15} {:56} {verdict:4}  {}",
            self.backend, self.case, self.detail
        )
    }
}

/// A verdict from a mismatch list.
fn judge(backend: &'static str, case: String, mismatches: &[Mismatch]) -> Verdict {
    let first: Vec<String> = mismatches.iter().take(3).map(ToString::to_string).collect();
    Verdict {
        backend,
        case,
        passed: mismatches.is_empty(),
        detail: match mismatches.len() {
            0 => String::new(),
            n => format!("{n} mismatches; first: {}", first.join("; ")),
        },
    }
}

fn failed(backend: &'static str, case: String, e: &Error) -> Verdict {
    Verdict {
        backend,
        case,
        passed: false,
        detail: e.to_string(),
    }
}

/// The whole conformance report, for `sinkless check`: every case on the emulator against the
/// ISA, every planted bug caught, and, with a GPU, every case on it against the ISA and against
/// the emulator. One verdict per line; print them and fail on any `!passed`.
pub fn verdicts(emu: &Emulator, gpu: Option<&CudaBackend>) -> Vec<Verdict> {
    let mut v = Vec::new();
    for case in cases() {
        let name = case.name();
        let emu_out = run_emulator(emu, &case);
        v.push(match &emu_out {
            Ok(out) => judge(
                "emulator",
                name.clone(),
                &check_against_isa(std::slice::from_ref(out)),
            ),
            Err(e) => failed("emulator", name.clone(), e),
        });
        let Some(gpu) = gpu else { continue };
        if !case.runs_on(gpu) {
            let (major, minor) = gpu.compute_capability();
            v.push(Verdict {
                backend: "gpu",
                case: name,
                passed: true,
                detail: format!("skipped: needs sm_90, this GPU is sm_{major}{minor}"),
            });
            continue;
        }
        match run_cuda(gpu, &case) {
            Ok(out) => {
                let isa = check_against_isa(std::slice::from_ref(&out));
                v.push(judge("gpu", format!("{name} vs ISA"), &isa));
                if let Ok(e) = &emu_out {
                    let m = compare(std::slice::from_ref(&out), std::slice::from_ref(e));
                    v.push(judge("gpu", format!("{name} vs emulator"), &m));
                }
            }
            Err(e) => v.push(failed("gpu", name, &e)),
        }
    }
    for plant in Plant::ALL {
        let (passed, detail) = match plant.verify(emu, 1) {
            Ok(how) => (true, format!("caught: {how}")),
            Err(why) => (false, why),
        };
        v.push(Verdict {
            backend: "emulator plant",
            case: plant.case(1).name(),
            passed,
            detail,
        });
    }
    v
}
