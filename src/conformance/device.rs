//! The conformance launches, written once over a small backend trait: upload the inputs, take
//! their addresses for the params struct, launch, download every output.

use super::{inputs, ConformanceCase, Fault, Kernel, Output, Plant, Tolerance, Values};
use crate::backend::emulator::{Emulator, HostBuffer};
use crate::backend::watch::sync_limit;
use crate::config::DType;
use crate::error::{Error, Result};
use crate::ffi;
use crate::plan::{self, Launch, Params};
use crate::tma;
use crate::CudaBackend;
use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, ValidAsZeroBits};

/// What every output buffer starts as: all ones, a bit pattern no conformance output takes
/// (NaNs come out canonical, `0x7fff` / `0x7fffffff`), so an element a kernel never wrote shows.
const POISON16: u16 = u16::MAX;
/// See [`POISON16`].
const POISON32: u32 = u32::MAX;

/// An element type a conformance buffer holds.
pub(super) trait Word:
    Copy + Default + DeviceRepr + ValidAsZeroBits + Unpin + 'static
{
}
impl Word for u16 {}
impl Word for u32 {}
impl Word for f32 {}

/// Where a conformance kernel runs: the four operations each launch needs.
pub(super) trait Device {
    /// A buffer of the backend's memory.
    type Buf<T: Word>;
    /// A copy of `data` in the backend's memory.
    fn upload<T: Word>(&self, data: &[T]) -> Result<Self::Buf<T>>;
    /// The address kernels see.
    fn addr<T: Word>(&self, buf: &Self::Buf<T>) -> u64;
    /// Runs one launch.
    fn launch(&self, launch: &Launch) -> Result<()>;
    /// The buffer's contents, after every queued launch finished.
    fn download<T: Word>(&self, buf: &Self::Buf<T>) -> Result<Vec<T>>;
}

impl Device for Emulator {
    type Buf<T: Word> = HostBuffer<T>;
    fn upload<T: Word>(&self, data: &[T]) -> Result<HostBuffer<T>> {
        Ok(HostBuffer::from_slice(data))
    }
    fn addr<T: Word>(&self, buf: &HostBuffer<T>) -> u64 {
        buf.addr()
    }
    fn launch(&self, launch: &Launch) -> Result<()> {
        Emulator::launch(self, launch)
    }
    fn download<T: Word>(&self, buf: &HostBuffer<T>) -> Result<Vec<T>> {
        Ok(buf.to_vec())
    }
}

fn cuda_err(during: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Cuda {
        during,
        message: format!("{e:?}"),
    }
}

impl Device for CudaBackend {
    type Buf<T: Word> = CudaSlice<T>;
    fn upload<T: Word>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        self.stream()
            .clone_htod(data)
            .map_err(cuda_err("copying conformance inputs to the GPU"))
    }
    fn addr<T: Word>(&self, buf: &CudaSlice<T>) -> u64 {
        // Everything runs on the one stream, so the guard's event adds no ordering.
        buf.device_ptr(self.stream()).0
    }
    fn launch(&self, launch: &Launch) -> Result<()> {
        CudaBackend::launch(self, launch)
    }
    fn download<T: Word>(&self, buf: &CudaSlice<T>) -> Result<Vec<T>> {
        self.synchronize_within(sync_limit())?;
        self.stream()
            .clone_dtoh(buf)
            .map_err(cuda_err("copying conformance outputs from the GPU"))
    }
}

/// Queues on `gpu`'s stream a kernel that runs until `release[0]` is non-zero, then sets
/// `done[0]` to 1: a kernel that hangs for as long as the caller likes, for testing
/// [`CudaBackend::synchronize_within`] and what follows a timeout. The release has to come from
/// another stream (one created non-blocking), since this one is busy. GPU only.
///
/// # Errors
/// [`Error::Cuda`] for a failed launch; the backend's errors after a timeout.
pub fn queue_spin(
    gpu: &CudaBackend,
    release: &CudaSlice<u32>,
    done: &mut CudaSlice<u32>,
) -> Result<()> {
    let p = ffi::sinkless_conf_spin_params {
        release: release.device_ptr(gpu.stream()).0 as *const u32,
        done: done.device_ptr(gpu.stream()).0 as *mut u32,
    };
    gpu.launch(&launch("spin", x(1), x(32), 0, Params::ConfSpin(p))?)
}

/// A launch of conformance kernel `name`.
fn launch(
    name: &str,
    grid: [u32; 3],
    block: [u32; 3],
    smem: usize,
    params: Params,
) -> Result<Launch> {
    Ok(Launch {
        kernel: plan::kernel(format!("sinkless_conf_{name}"))?,
        grid,
        block,
        smem,
        params,
    })
}

/// A row of `x` threads or blocks.
fn x(n: u32) -> [u32; 3] {
    [n, 1, 1]
}

/// Dynamic shared memory of `conf_mma` with `ldmatrix` (`conformance_params.h`): A's 16 rows
/// padded to `k + 8` elements, B's `k` rows of 8.
pub(super) fn mma_smem(k: u32) -> usize {
    (16 * (k as usize + 8) + 8 * k as usize) * 2
}

/// The kernel's `plant` field for a case.
fn plant_field(plant: Option<Plant>) -> u32 {
    match plant {
        None => ffi::SINKLESS_CONF_PLANT_NONE,
        Some(Plant::SkipSync) => ffi::SINKLESS_CONF_PLANT_SKIP_SYNC,
        Some(Plant::ExitEarly) => ffi::SINKLESS_CONF_PLANT_EXIT_EARLY,
        Some(Plant::DivergentBarrier) => ffi::SINKLESS_CONF_PLANT_DIVERGENT_BARRIER,
        Some(Plant::WarpExit) => ffi::SINKLESS_CONF_PLANT_WARP_EXIT,
        Some(Plant::SkipWait) => ffi::SINKLESS_CONF_PLANT_SKIP_WAIT,
        Some(Plant::SkipMbarrierWait) => ffi::SINKLESS_CONF_PLANT_SKIP_MBARRIER_WAIT,
        Some(Plant::SkipProxyFence) => ffi::SINKLESS_CONF_PLANT_SKIP_PROXY_FENCE,
        Some(Plant::LdmatrixBankConflict) => ffi::SINKLESS_CONF_PLANT_LDMATRIX_BANK_CONFLICT,
        Some(Plant::PlainSharedStore) => ffi::SINKLESS_CONF_PLANT_PLAIN_SHARED_STORE,
        Some(Plant::PlainSharedLoad) => ffi::SINKLESS_CONF_PLANT_PLAIN_SHARED_LOAD,
        Some(Plant::StoreAfterLoad) => ffi::SINKLESS_CONF_PLANT_STORE_AFTER_LOAD,
        Some(Plant::SameWarpStoreAfterLoad) => ffi::SINKLESS_CONF_PLANT_SAME_WARP_STORE_AFTER_LOAD,
        Some(Plant::SharedBankConflict) => ffi::SINKLESS_CONF_PLANT_SHARED_BANK_CONFLICT,
        Some(Plant::StoreUnderWgmma) => ffi::SINKLESS_CONF_PLANT_STORE_UNDER_WGMMA,
        Some(Plant::MisplacedB) => ffi::SINKLESS_CONF_PLANT_MISPLACED_B,
        Some(Plant::ArriveBeforeStore) => ffi::SINKLESS_CONF_PLANT_ARRIVE_BEFORE_STORE,
        Some(Plant::StoreAfterLdmatrix) => ffi::SINKLESS_CONF_PLANT_STORE_AFTER_LDMATRIX,
        Some(Plant::DescriptorOverflow) => ffi::SINKLESS_CONF_PLANT_DESCRIPTOR_OVERFLOW,
        Some(_) => ffi::SINKLESS_CONF_PLANT_NONE,
    }
}

/// The uploaded operands of an `m x k x n` product (`inputs::mma`) and the addresses the kernel
/// reads them at; the buffers live as long as this does.
struct Operands<D: Device> {
    a: *const u16,
    b: *const u16,
    c: *const f32,
    _bufs: (D::Buf<u16>, D::Buf<u16>, D::Buf<f32>),
}

impl<D: Device> Operands<D> {
    /// The operands, and D poisoned.
    fn new(
        dev: &D,
        dtype: DType,
        dims: (usize, usize, usize),
        seed: u64,
    ) -> Result<(Self, D::Buf<f32>)> {
        let m = inputs::mma(dtype, dims, seed);
        let bufs = (
            dev.upload(&m.a_bits)?,
            dev.upload(&m.b_bits)?,
            dev.upload(&m.c)?,
        );
        let d = dev.upload(&vec![f32::from_bits(POISON32); dims.0 * dims.2])?;
        Ok((
            Operands {
                a: dev.addr(&bufs.0) as *const u16,
                b: dev.addr(&bufs.1) as *const u16,
                c: dev.addr(&bufs.2) as *const f32,
                _bufs: bufs,
            },
            d,
        ))
    }
}

/// Runs one case on `dev` and returns its raw outputs, in the order of the params struct.
pub(super) fn run<D: Device>(dev: &D, case: &ConformanceCase) -> Result<Vec<Output>> {
    case.kernel.check()?;
    let seed = case.seed;
    let poisoned32 = |n: usize| dev.upload(&vec![POISON32; n]);
    let poisoned16 = |n: usize| dev.upload(&vec![POISON16; n]);
    let poisoned_f32 = |n: usize| dev.upload(&vec![f32::from_bits(POISON32); n]);
    Ok(match case.kernel {
        Kernel::Index { grid, block } => {
            let threads = block.iter().product::<u32>() as usize;
            let blocks = grid.iter().product::<u32>() as usize;
            let out = poisoned32(threads * blocks * 8)?;
            let p = ffi::sinkless_conf_index_params {
                out: dev.addr(&out) as *mut u32,
            };
            dev.launch(&launch("index", grid, block, 0, Params::ConfIndex(p))?)?;
            vec![Output::exact("out", Values::U32(dev.download(&out)?))]
        }
        Kernel::Reduce { blocks } => {
            let input = dev.upload(&inputs::reduce(blocks, seed))?;
            let out = poisoned32(blocks as usize)?;
            let p = ffi::sinkless_conf_reduce_params {
                in_: dev.addr(&input) as *const u32,
                out: dev.addr(&out) as *mut u32,
                plant: plant_field(case.plant),
            };
            let l = launch("reduce", x(blocks), x(128), 512, Params::ConfReduce(p))?;
            dev.launch(&l)?;
            vec![Output::exact("out", Values::U32(dev.download(&out)?))]
        }
        Kernel::CpAsync { blocks } => {
            let src = inputs::cp_async(blocks, seed);
            let dst = poisoned32(src.len())?;
            let src = dev.upload(&src)?;
            let p = ffi::sinkless_conf_cp_async_params {
                src: dev.addr(&src) as *const u32,
                dst: dev.addr(&dst) as *mut u32,
                plant: plant_field(case.plant),
            };
            let l = launch("cp_async", x(blocks), x(128), 8192, Params::ConfCpAsync(p))?;
            dev.launch(&l)?;
            vec![Output::exact("dst", Values::U32(dev.download(&dst)?))]
        }
        Kernel::Ldmatrix => {
            let src = dev.upload(&inputs::ldmatrix(seed))?;
            let out = poisoned32(6 * 32 * 4)?;
            let p = ffi::sinkless_conf_ldmatrix_params {
                src: dev.addr(&src) as *const u16,
                out: dev.addr(&out) as *mut u32,
            };
            dev.launch(&launch(
                "ldmatrix",
                x(1),
                x(32),
                ffi::SINKLESS_CONF_LDMATRIX_SMEM as usize,
                Params::ConfLdmatrix(p),
            )?)?;
            vec![Output::exact("out", Values::U32(dev.download(&out)?))]
        }
        Kernel::Mma { dtype, k, ldmatrix } => {
            let (ops, d) = Operands::new(dev, dtype, (16, k as usize, 8), seed)?;
            let p = ffi::sinkless_conf_mma_params {
                a: ops.a,
                b: ops.b,
                c: ops.c,
                d: dev.addr(&d) as *mut f32,
                k,
                use_ldmatrix: u32::from(ldmatrix),
                plant: plant_field(case.plant),
            };
            let name = match dtype {
                DType::F16 => "mma_f16",
                DType::BF16 => "mma_bf16",
            };
            let smem = if ldmatrix { mma_smem(k) } else { 0 };
            dev.launch(&launch(name, x(1), x(32), smem, Params::ConfMma(p))?)?;
            vec![Output::exact("d", Values::F32(dev.download(&d)?))]
        }
        Kernel::Wgmma {
            dtype,
            k,
            n,
            form,
            row0,
            block,
            two_groups,
        } => {
            let (ops, d) = Operands::new(dev, dtype, (64, k as usize, n as usize), seed)?;
            let p = ffi::sinkless_conf_wgmma_params {
                a: ops.a,
                b: ops.b,
                c: ops.c,
                d: dev.addr(&d) as *mut f32,
                k,
                n,
                form: form.code(),
                row0,
                block,
                groups: if two_groups { 2 } else { 1 },
                plant: plant_field(case.plant),
            };
            let name = match dtype {
                DType::F16 => "wgmma_f16",
                DType::BF16 => "wgmma_bf16",
            };
            let smem = ffi::SINKLESS_CONF_WGMMA_SMEM as usize;
            dev.launch(&launch(name, x(1), x(128), smem, Params::ConfWgmma(p))?)?;
            vec![Output::exact("d", Values::F32(dev.download(&d)?))]
        }
        Kernel::Tma { dims, boxed } => {
            let t = inputs::tma(dims, boxed, seed);
            let box_bytes = 2 * boxed.iter().product::<u32>();
            let loads = ffi::SINKLESS_CONF_TMA_LOADS as usize;
            let data = dev.upload(&t.data)?;
            let out = poisoned16(loads * box_bytes as usize / 2)?;
            let named = poisoned32(64)?;
            let p = ffi::sinkless_conf_tma_params {
                map: tma::map(dev.addr(&data), &dims.map(u64::from), &t.strides, &boxed),
                out: dev.addr(&out) as *mut u16,
                named: dev.addr(&named) as *mut u32,
                coords: t.coords,
                box_bytes,
                plant: plant_field(case.plant),
            };
            let smem = ffi::SINKLESS_CONF_TMA_SMEM as usize;
            dev.launch(&launch("tma", x(1), x(128), smem, Params::ConfTma(p))?)?;
            vec![
                Output::exact("out", Values::U16(dev.download(&out)?)),
                Output::exact("named", Values::U32(dev.download(&named)?)),
            ]
        }
        Kernel::Shfl => {
            let input = dev.upload(&inputs::shfl())?;
            let out = poisoned32(ffi::SINKLESS_CONF_SHFL_CASES as usize * 64)?;
            let p = ffi::sinkless_conf_shfl_params {
                in_: dev.addr(&input) as *const u32,
                out: dev.addr(&out) as *mut u32,
            };
            dev.launch(&launch("shfl", x(1), x(64), 0, Params::ConfShfl(p))?)?;
            vec![Output::exact("out", Values::U32(dev.download(&out)?))]
        }
        Kernel::Math { n } => {
            let len = n as usize;
            let input = dev.upload(&inputs::math(n, seed))?;
            let (ex2, tanh, rcp) = (poisoned_f32(len)?, poisoned_f32(len)?, poisoned_f32(len)?);
            let (sigmoid, sigmoid3) = (poisoned_f32(len)?, poisoned_f32(len)?);
            let (f16, bf16) = (poisoned16(len)?, poisoned16(len)?);
            let (f16x2, bf16x2) = (poisoned32(len)?, poisoned32(len)?);
            let p = ffi::sinkless_conf_math_params {
                in_: dev.addr(&input) as *const f32,
                ex2: dev.addr(&ex2) as *mut f32,
                tanh: dev.addr(&tanh) as *mut f32,
                rcp: dev.addr(&rcp) as *mut f32,
                sigmoid: dev.addr(&sigmoid) as *mut f32,
                sigmoid3: dev.addr(&sigmoid3) as *mut f32,
                f16: dev.addr(&f16) as *mut u16,
                bf16: dev.addr(&bf16) as *mut u16,
                f16x2: dev.addr(&f16x2) as *mut u32,
                bf16x2: dev.addr(&bf16x2) as *mut u32,
                n,
            };
            dev.launch(&launch("math", x(8), x(128), 0, Params::ConfMath(p))?)?;
            vec![
                Output::approx("ex2", dev.download(&ex2)?, Tolerance::Ex2),
                Output::approx("tanh", dev.download(&tanh)?, Tolerance::Tanh),
                Output::approx("rcp", dev.download(&rcp)?, Tolerance::Rcp),
                Output::approx(
                    "sigmoid",
                    dev.download(&sigmoid)?,
                    Tolerance::Sigmoid { degree: 4 },
                ),
                Output::approx(
                    "sigmoid3",
                    dev.download(&sigmoid3)?,
                    Tolerance::Sigmoid { degree: 3 },
                ),
                Output::exact("f16", Values::U16(dev.download(&f16)?)),
                Output::exact("bf16", Values::U16(dev.download(&bf16)?)),
                Output::exact("f16x2", Values::U32(dev.download(&f16x2)?)),
                Output::exact("bf16x2", Values::U32(dev.download(&bf16x2)?)),
            ]
        }
        Kernel::Widen { n } => {
            let input = inputs::widen(n);
            let len = input.len();
            // A fault plant sizes one buffer so that the kernel runs one access past its end,
            // onto the guard page: the input one element short of `n` (outputs one longer, so
            // the read is the first bad access), or the f16 output four elements short.
            let (n, f16_len) = match case.plant.and_then(Plant::fault) {
                Some(Fault::ReadPastEnd) => (n + 1, len + 1),
                Some(Fault::WritePastEnd) => (n, len - 4),
                None => (n, len),
            };
            let input = dev.upload(&input)?;
            let f16 = poisoned_f32(f16_len)?;
            let bf16 = poisoned_f32(f16_len.max(len))?;
            let p = ffi::sinkless_conf_widen_params {
                in_: dev.addr(&input) as *const u16,
                f16: dev.addr(&f16) as *mut f32,
                bf16: dev.addr(&bf16) as *mut f32,
                n,
            };
            dev.launch(&launch("widen", x(16), x(128), 0, Params::ConfWiden(p))?)?;
            vec![
                Output::exact("f16", Values::F32(dev.download(&f16)?)),
                Output::exact("bf16", Values::F32(dev.download(&bf16)?)),
            ]
        }
        Kernel::Atomic {
            blocks,
            threads,
            nsums,
            npairs,
        } => {
            // The kernel adds into its buffers, so they start at zero rather than poisoned.
            let sums = dev.upload(&vec![0f32; nsums as usize])?;
            let pairs = dev.upload(&vec![0f32; 2 * npairs as usize])?;
            let p = ffi::sinkless_conf_atomic_params {
                sums: dev.addr(&sums) as *mut f32,
                pairs: dev.addr(&pairs) as *mut f32,
                nsums,
                npairs,
            };
            let l = launch("atomic", x(blocks), x(threads), 0, Params::ConfAtomic(p))?;
            dev.launch(&l)?;
            vec![
                Output::exact("sums", Values::F32(dev.download(&sums)?)),
                Output::exact("pairs", Values::F32(dev.download(&pairs)?)),
            ]
        }
    })
}
