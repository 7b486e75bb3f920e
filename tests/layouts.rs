//! Every tensor in a layout of its own ([`sinkless::check::LayoutCase`]): q, k, v, o, dO, dQ, dK
//! and dV each in a layout of its own give, bit for bit, what the packed layout gives, and leave
//! every element outside their views alone; on the emulator, the default kernels in f16 and bf16,
//! the wgmma ones in bf16.

use half::{bf16, f16};
use sinkless::check::{failures, layout_cases};
use sinkless::{Emulator, KernelVariant};

#[test]
fn every_tensor_in_a_layout_of_its_own() {
    let emu = Emulator::new();
    let mut bad = Vec::new();
    let cases = layout_cases();
    assert!(cases.len() >= 8);
    for (i, case) in cases.iter().enumerate() {
        let seed = 40 + i as u64;
        bad.extend(failures(&[case.run::<bf16, _>(&emu, seed).unwrap()]));
        if case.opts.variant == KernelVariant::Default {
            bad.extend(failures(&[case.run::<f16, _>(&emu, seed).unwrap()]));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
