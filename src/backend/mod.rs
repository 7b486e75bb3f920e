//! Where kernels run: on a GPU through cudarc, or on the CPU through the SIMT emulator. Both
//! run the same launch sequences (`src/plan.rs`).

pub mod cuda;
pub mod emulator;
mod recent;
pub mod watch;
