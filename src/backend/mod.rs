//! Where kernels run: on a GPU through cudarc, or on the CPU through the SIMT emulator. Both
//! launch the same [`plan`](crate::plan) output.

pub mod cuda;
pub mod emulator;
