//! The emulator catches the mistakes it exists to catch: each planted bug of the conformance
//! kernels (`plant` in `conformance_params.h`) fails in its specific way, never passes silently
//! and never hangs.

use sinkless::conformance::{
    check_against_isa, run_emulator, Caught, ConformanceOutput, Plant, EMULATOR_BANK_CONFLICT,
    EMULATOR_CONFIG, EMULATOR_DEADLOCK, EMULATOR_OUT_OF_BOUNDS, EMULATOR_PLAIN_SHARED_ACCESS,
    EMULATOR_PROXY, EMULATOR_RACE,
};
use sinkless::{Emulator, Error, Result, Target};
use std::sync::mpsc;
use std::time::Duration;

/// Runs a plant's case on a separate thread, so that a hang fails the test instead of stalling
/// the suite.
fn run_bounded(plant: Plant, emu: Emulator, seed: u64) -> Result<ConformanceOutput> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_emulator(&emu, &plant.case(seed)));
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{}: the launch hung", plant.name()))
}

/// Runs `plant` under the schedule of `seed` and checks that the launch fails in `kernel` with
/// `code` and a message holding every one of `needles`.
fn expect_emulator_error(plant: Plant, seed: u64, kernel: &str, code: i32, needles: &[&str]) {
    assert_eq!(plant.caught(), Caught::Emulator { code });
    match run_bounded(plant, Emulator::new().with_seed(seed), seed) {
        Err(Error::Emulator {
            kernel: k,
            code: c,
            message,
        }) => {
            assert_eq!((k.as_str(), c), (kernel, code), "seed {seed}: {message}");
            for n in needles {
                assert!(message.contains(n), "seed {seed}: no {n:?} in {message}");
            }
        }
        other => panic!(
            "{} seed {seed}: expected error {code}, got {other:?}",
            plant.name()
        ),
    }
}

/// wgmma operands staged with plain stores and no `fence.proxy.async`: the async proxy's image
/// of shared memory never saw them, so the first operand read fails the launch, whatever the
/// schedule.
#[test]
fn a_missing_proxy_fence_fails_the_first_wgmma_operand_read() {
    for seed in [1, 2, 3] {
        expect_emulator_error(
            Plant::SkipProxyFence,
            seed,
            "sinkless_conf_wgmma_bf16",
            EMULATOR_PROXY,
            &["wgmma A operand reads shared byte", "fence.proxy.async"],
        );
    }
}

/// A missing ordering fails as a race under every schedule tried, not only a lucky one, whichever
/// of the two accesses comes first in the emulator's schedule (the later one fails).
#[test]
fn missing_orderings_fail_as_races_for_every_seed() {
    let barrier = "a __syncthreads, a named barrier or an mbarrier must order";
    for (plant, kernel, needle) in [
        // a thread reads a partial sum another warp writes, with no barrier between
        (Plant::SkipSync, "sinkless_conf_reduce", barrier),
        // warp 1 overwrites the partial sums warp 0 reads after the last barrier
        (Plant::StoreAfterLoad, "sinkless_conf_reduce", barrier),
        // each lane of warp 0 clears the word the next lane read, with no __syncwarp between
        (
            Plant::SameWarpStoreAfterLoad,
            "sinkless_conf_reduce",
            "a __syncwarp (or a barrier) must come between",
        ),
        // stage 0 is read while its copies are in flight, or after another thread's wait
        // landed them with no barrier after that wait
        (Plant::SkipWait, "sinkless_conf_cp_async", "ld.shared"),
        // the threads that skip the wait read the buffer before the copy is issued (the copy
        // then fails, writing over their reads) or while it is in flight
        (Plant::SkipMbarrierWait, "sinkless_conf_tma", "shared byte"),
    ] {
        for seed in 1..=8 {
            expect_emulator_error(plant, seed, kernel, EMULATOR_RACE, &["shared byte", needle]);
        }
    }
}

/// Plain loads and stores would escape the order checks, so the emulator keeps shared memory
/// where a kernel cannot reach it: the first plain access faults and fails the launch, naming
/// the byte and the kind of access, although the sums would be right.
#[test]
fn a_plain_shared_access_fails_the_launch_at_once() {
    for (plant, access) in [
        (Plant::PlainSharedStore, "a plain write of shared byte"),
        (Plant::PlainSharedLoad, "a plain read of shared byte"),
    ] {
        for seed in [1, 2, 3] {
            expect_emulator_error(
                plant,
                seed,
                "sinkless_conf_reduce",
                EMULATOR_PLAIN_SHARED_ACCESS,
                &[access, "ptx::ld_shared", "ptx::st_shared"],
            );
        }
    }
}

/// A store into B's tile while the product that reads it is in flight fails at the store,
/// whatever the schedule, before the product retires.
#[test]
fn a_store_under_a_wgmma_in_flight_fails_at_the_store() {
    for seed in [1, 2, 3] {
        expect_emulator_error(
            Plant::StoreUnderWgmma,
            seed,
            "sinkless_conf_wgmma_f16",
            EMULATOR_RACE,
            &[
                "st.shared writes shared bytes",
                "wgmma group 0 of warpgroup 0, still in flight",
                "wait for it (wgmma.wait_group) first",
            ],
        );
    }
}

/// Stores made after the arrival at the named barrier that hands them over are not ordered
/// before the readers' `ldmatrix`, though in the emulator they always land first.
#[test]
fn a_store_after_its_barrier_fails_the_reading_ldmatrix() {
    for seed in [1, 2, 3] {
        expect_emulator_error(
            Plant::ArriveBeforeStore,
            seed,
            "sinkless_conf_tma",
            EMULATOR_RACE,
            &[
                "ldmatrix by threads",
                "and no reader has acquired a release of that thread made after the write",
            ],
        );
    }
}

/// A store after other warps' `ldmatrix` of the same bytes, with no barrier between, fails at
/// the store.
#[test]
fn a_store_after_another_warps_ldmatrix_fails_at_the_store() {
    for seed in [1, 2, 3] {
        expect_emulator_error(
            Plant::StoreAfterLdmatrix,
            seed,
            "sinkless_conf_tma",
            EMULATOR_RACE,
            &[
                "st.shared writes shared bytes",
                "was read by warp 2 (ldmatrix or ld.shared)",
            ],
        );
    }
}

/// A's rows packed 128 bytes apart: rows 0 and 1 of the first `ldmatrix` matrix share a bank
/// slot, which fails the launch rather than passing slowly.
#[test]
fn an_ldmatrix_bank_conflict_fails_the_launch() {
    expect_emulator_error(
        Plant::LdmatrixBankConflict,
        1,
        "sinkless_conf_mma_f16",
        EMULATOR_BANK_CONFLICT,
        &["ldmatrix matrix 0: rows 0 and 1", "bank conflict"],
    );
}

/// Inputs stored 32 words apart: lanes 0-3 of each store share bank 0 (four wavefronts where one
/// would do), which fails the launch when the warp next converges, although the sum is right.
#[test]
fn a_shared_store_bank_conflict_fails_the_launch() {
    for seed in [1, 2, 3] {
        expect_emulator_error(
            Plant::SharedBankConflict,
            seed,
            "sinkless_conf_reduce",
            EMULATOR_BANK_CONFLICT,
            &[
                "st.shared of 4 bytes by warp 0",
                "lanes 0 and 1 touch shared bytes 0 and 128, two words of bank 0",
                "4 wavefronts where 1 would do",
            ],
        );
    }
}

/// A barrier reached by only part of a block is reported as a deadlock, whichever way the
/// threads go missing: exited before a `__syncthreads`, waiting at a different one, or one lane
/// gone from the warp's shuffles.
#[test]
fn partial_barriers_are_deadlocks_not_hangs() {
    for plant in [Plant::ExitEarly, Plant::DivergentBarrier, Plant::WarpExit] {
        assert_eq!(
            plant.caught(),
            Caught::Emulator {
                code: EMULATOR_DEADLOCK
            }
        );
        for seed in [1, 2] {
            match run_bounded(plant, Emulator::new().with_seed(seed), seed) {
                Err(Error::Emulator { code, message, .. }) => {
                    assert_eq!(code, EMULATOR_DEADLOCK, "{}: {message}", plant.name());
                    assert!(message.contains("deadlock"), "{}: {message}", plant.name());
                }
                other => panic!("{}: expected a deadlock, got {other:?}", plant.name()),
            }
        }
    }
}

/// Global buffers end at a guard page: one element read or written past the end is an error
/// naming the access, not a silent neighbour.
#[test]
fn accesses_past_the_end_of_a_global_buffer_fault() {
    for (plant, access) in [(Plant::ReadPastEnd, "read"), (Plant::WritePastEnd, "write")] {
        assert_eq!(
            plant.caught(),
            Caught::Emulator {
                code: EMULATOR_OUT_OF_BOUNDS
            }
        );
        match run_bounded(plant, Emulator::new(), 1) {
            Err(Error::Emulator { code, message, .. }) => {
                assert_eq!(code, EMULATOR_OUT_OF_BOUNDS, "{}: {message}", plant.name());
                assert!(
                    message.contains(&format!("out-of-bounds {access}"))
                        && message.contains("past the end"),
                    "{}: {message}",
                    plant.name()
                );
            }
            other => panic!(
                "{}: expected an out-of-bounds error, got {other:?}",
                plant.name()
            ),
        }
    }
}

/// Shared memory over the target's limit is refused before the launch, with the numbers; the
/// same launch fits sm_90 (see the conformance tests).
#[test]
fn shared_memory_over_the_target_limit_is_refused() {
    assert_eq!(Plant::SharedMemoryOverLimit.caught(), Caught::SharedMemory);
    match run_bounded(Plant::SharedMemoryOverLimit, Emulator::new(), 1) {
        Err(Error::SharedMemory {
            kernel,
            requested,
            limit,
        }) => {
            assert_eq!(kernel, "sinkless_conf_mma_bf16");
            // A's 16 rows padded to k + 8 elements, B's k rows of 8, 2 bytes each
            assert_eq!(requested, (16 * (4096 + 8) + 8 * 4096) * 2);
            assert_eq!(limit, Target::Sm80.max_smem());
        }
        other => panic!("expected Error::SharedMemory, got {other:?}"),
    }
}

/// A descriptor whose start address was moved past its 14-bit field (by `desc_advance`) carries
/// into the bits between the fields: the product fails at its issue instead of reading
/// wherever the truncated address points.
#[test]
fn a_descriptor_that_overflows_its_field_fails_the_product() {
    expect_emulator_error(
        Plant::DescriptorOverflow,
        1,
        "sinkless_conf_wgmma_f16",
        EMULATOR_CONFIG,
        &["wgmma A descriptor", "bits 14-15 or 30-31 set"],
    );
}

/// B's descriptors one place off (a column block on, where the decoys sit) break no rule the
/// emulator checks, so the launch succeeds; the sums come out wrong almost everywhere, which is
/// what makes the wgmma cases able to tell a misread leading or stride offset on a GPU.
#[test]
fn a_misplaced_wgmma_operand_gives_wrong_sums() {
    assert_eq!(Plant::MisplacedB.caught(), Caught::WrongValues);
    let out = run_bounded(Plant::MisplacedB, Emulator::new(), 1)
        .unwrap_or_else(|e| panic!("misplaced_b: the launch failed: {e}"));
    let wrong = check_against_isa(&[out]);
    assert!(
        wrong.len() > 64 * 64 * 3 / 4,
        "only {} of 4096 sums wrong",
        wrong.len()
    );
    assert!(wrong.iter().all(|m| m.buffer == "d"), "{}", wrong[0]);
}

/// Every plant through the verdict the `check` command prints, and the emulator still works
/// after all of them.
#[test]
fn every_plant_is_caught_and_the_emulator_recovers() {
    let emu = Emulator::new();
    for plant in Plant::ALL {
        if let Err(why) = plant.verify(&emu, 3) {
            panic!("{}: {why}", plant.name());
        }
    }
    let healthy = sinkless::conformance::run_all_emulator(&emu).unwrap();
    let wrong = check_against_isa(&healthy);
    assert!(wrong.is_empty(), "after the plants: {}", wrong[0]);
}
