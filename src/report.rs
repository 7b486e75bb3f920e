//! The kernel report: per kernel and target, what ptxas said (registers, shared memory, stack,
//! spills) and what the SASS holds (tensor-core instructions, local-memory traffic, the length of
//! the main loop), recorded by `build.rs` when the kernels were compiled.
//!
//! [`KernelReport::problems`] lists what must never ship: spills, local-memory loads or stores,
//! a kernel missing the instruction classes it was written for (`HMMA` on the mma.sync path),
//! and wgmma products that ptxas had to patch or serialise.

use std::fmt;

/// One (kernel, target) row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRow {
    /// Kernel symbol.
    pub kernel: String,
    /// Target (`sm_80`, `sm_90a`).
    pub target: String,
    /// Registers per thread.
    pub registers: u32,
    /// Static shared memory in bytes (dynamic shared memory is set per launch).
    pub smem_static: u32,
    /// Stack frame in bytes.
    pub stack: u32,
    /// Bytes of spill stores.
    pub spill_stores: u32,
    /// Bytes of spill loads.
    pub spill_loads: u32,
    /// Instruction classes the kernel must contain.
    pub expect: Vec<String>,
    /// ptxas notes that it injected a `warpgroup.wait`/`warpgroup.arrive` or serialised the
    /// wgmma products: the program touches registers of a product in flight, or ptxas could not
    /// follow the products, and they no longer overlap the code around them; or that it ignored
    /// a `setmaxnreg` (the warpgroups keep the entry budget of registers).
    pub wgmma_fixups: u32,
    /// Counts of SASS instruction classes, then `loop` and `path`: the instructions of the
    /// kernel's longest loop (its widest backward branch), which for the attention kernels is one
    /// step of the main loop, every branch of it included, and the fewest of them one trip
    /// around runs (the usual step: no mask, no rescale, no tail). `None` where the SASS could
    /// not be read.
    pub sass: Option<Vec<(String, u32)>>,
}

impl KernelRow {
    fn count(&self, class: &str) -> Option<u32> {
        self.sass
            .as_ref()
            .map(|s| s.iter().find(|(c, _)| c == class).map_or(0, |(_, n)| *n))
    }
}

/// Registers a thread of a kernel that moves registers with `setmaxnreg` must start with: the
/// warp-specialised forwards (`fwd_traits` in `attn_fwd.cu`: 384 threads, a producer warpgroup
/// of 24 registers and two consumer warpgroups of 240).
pub const SETMAXNREG_ENTRY: u32 = 168;

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelReport {
    /// Rows, in instance-table order.
    pub rows: Vec<KernelRow>,
}

impl KernelReport {
    /// The report of this build, or `None` when it compiled no GPU kernels.
    pub fn current() -> Option<KernelReport> {
        Self::parse(crate::backend::cuda::KERNEL_REPORT)
    }

    /// Parses the tab-separated text `build.rs` writes.
    pub fn parse(text: &str) -> Option<KernelReport> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next()?.split('\t').collect();
        if header.first() != Some(&"kernel") {
            return None;
        }
        let classes = &header[9..];
        let mut rows = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() != header.len() {
                return None;
            }
            let num = |i: usize| f[i].parse::<u32>().ok();
            let sass = if f[9..].contains(&"?") {
                None
            } else {
                Some(
                    classes
                        .iter()
                        .zip(&f[9..])
                        .map(|(c, v)| (c.to_string(), v.parse().unwrap_or(0)))
                        .collect(),
                )
            };
            rows.push(KernelRow {
                kernel: f[0].into(),
                target: f[1].into(),
                registers: num(2)?,
                smem_static: num(3)?,
                stack: num(4)?,
                spill_stores: num(5)?,
                spill_loads: num(6)?,
                expect: if f[7] == "-" {
                    Vec::new()
                } else {
                    f[7].split(',').map(String::from).collect()
                },
                wgmma_fixups: num(8)?,
                sass,
            });
        }
        Some(KernelReport { rows })
    }

    /// Everything that must not ship, one line each; empty when the kernels are clean.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rows {
            let at = format!("{} ({})", r.kernel, r.target);
            if r.spill_stores > 0 || r.spill_loads > 0 {
                out.push(format!(
                    "{at}: spills {} bytes stored, {} loaded",
                    r.spill_stores, r.spill_loads
                ));
            }
            if r.wgmma_fixups > 0 {
                out.push(format!(
                    "{at}: ptxas patched or serialised its wgmma products or ignored a \
                     setmaxnreg {} times (registers of a product in flight are touched before \
                     its wgmma.wait_group, or the kernel was compiled as relocatable code)",
                    r.wgmma_fixups
                ));
            }
            for class in ["LDL", "STL"] {
                if let Some(n) = r.count(class).filter(|&n| n > 0) {
                    out.push(format!("{at}: {n} {class} (local memory) instructions"));
                }
            }
            // setmaxnreg: the warp-specialised kernels' 384 threads start with what ptxas
            // allocated, and the consumers' increase to 240 waits until the producer's decrease to
            // 24 has freed enough: 128 * 24 + 256 * 240 = 65536 - 1024 needs all 168 a thread
            // (65536 / 384, rounded down to a multiple of 8). With fewer it waits forever.
            if r.count("USETMAXREG").is_some_and(|n| n > 0) && r.registers != SETMAXNREG_ENTRY {
                out.push(format!(
                    "{at}: moves registers with setmaxnreg but starts with {} registers a thread, \
                     not {SETMAXNREG_ENTRY}: the consumers' setmaxnreg.inc would wait forever",
                    r.registers
                ));
            }
            for class in &r.expect {
                if r.count(class) == Some(0) {
                    out.push(format!(
                        "{at}: expected {class} instructions, the SASS has none"
                    ));
                }
            }
        }
        out
    }
}

impl fmt::Display for KernelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.kernel.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let classes: Vec<String> = self
            .rows
            .iter()
            .find_map(|r| r.sass.clone())
            .map(|s| s.into_iter().map(|(c, _)| c).collect())
            .unwrap_or_default();
        write!(
            f,
            "{:width$}  {:7} {:>4} {:>6} {:>5} {:>6}",
            "kernel", "target", "regs", "smem", "stack", "spills"
        )?;
        for c in &classes {
            write!(f, " {c:>w$}", w = c.len().max(6))?;
        }
        writeln!(f)?;
        for r in &self.rows {
            write!(
                f,
                "{:width$}  {:7} {:>4} {:>6} {:>5} {:>6}",
                r.kernel,
                r.target,
                r.registers,
                r.smem_static,
                r.stack,
                r.spill_stores + r.spill_loads
            )?;
            for c in &classes {
                let w = c.len().max(6);
                match r.count(c) {
                    Some(n) => write!(f, " {n:>w$}")?,
                    None => write!(f, " {:>w$}", "?")?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

// build.rs's SASS reader, for `sinkless sass` and its tests
#[path = "../build/sass.rs"]
mod sass;

/// The kernel report's SASS columns for every function of a `cuobjdump -sass` listing of any
/// code, such as another library's kernels built by the same compiler for the same target, so
/// that their main loops can be set beside this crate's (`sinkless sass`,
/// `scripts/fa2-sass.sh`): target, registers and stack frame (from `resources`, the same
/// file's `cuobjdump -res-usage`, where it names the function; `?` otherwise), the count of each
/// instruction class, the main loop's span and path (see [`KernelRow::sass`]), and the name.
/// ptxas' spill counts are not in a listing: the stack frame and the `LDL`/`STL` columns show
/// spilling.
pub fn listing_table(sass: &str, resources: &str) -> String {
    // -res-usage: " Function NAME:" then "  REG:255 STACK:160 SHARED:0 LOCAL:0 ..."
    let mut usage: Vec<(&str, &str, &str)> = Vec::new();
    let mut name: Option<&str> = None;
    for line in resources.lines() {
        let t = line.trim();
        if let Some(n) = t.strip_prefix("Function ") {
            name = n.strip_suffix(':');
        } else if let Some(n) = name.take() {
            let field = |key: &str| {
                t.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or("?")
            };
            usage.push((n, field("REG:"), field("STACK:")));
        }
    }
    let mut out = format!("{:7} {:>4} {:>5}", "target", "regs", "stack");
    for c in sass::CLASSES {
        out.push_str(&format!(" {c:>8}"));
    }
    out.push_str(&format!(" {:>5} {:>5}  function\n", "loop", "path"));
    for f in sass::functions(sass) {
        // a fatbin lists a function once per target, and -res-usage in the same order
        let (regs, stack) = usage
            .iter()
            .position(|u| u.0 == f.name)
            .map_or(("?", "?"), |i| {
                let (_, r, s) = usage.remove(i);
                (r, s)
            });
        out.push_str(&format!("{:7} {regs:>4} {stack:>5}", f.arch));
        for n in f.classes {
            out.push_str(&format!(" {n:>8}"));
        }
        let (span, path) = f
            .main_loop
            .map_or(("-".to_string(), "-".to_string()), |(s, p)| {
                (s.to_string(), p.to_string())
            });
        out.push_str(&format!(" {span:>5} {path:>5}  {}\n", f.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "kernel\ttarget\tregisters\tsmem_static\tstack\tspill_stores\tspill_loads\texpect\twgmma_fixups\tHMMA\tHGMMA\tLDL\tSTL\n\
        k_ok\tsm_80\t96\t0\t0\t0\t0\tHMMA\t0\t64\t0\t0\t0\n\
        k_spill\tsm_90a\t255\t0\t32\t16\t8\t-\t0\t0\t0\t2\t0\n\
        k_nohmma\tsm_80\t40\t0\t0\t0\t0\tHMMA\t0\t0\t0\t0\t0\n\
        k_patched\tsm_90a\t168\t0\t0\t0\t0\tHGMMA\t2\t0\t16\t0\t0\n";

    #[test]
    fn problems_name_spills_local_memory_missing_hmma_and_patched_wgmma() {
        let r = KernelReport::parse(SAMPLE).unwrap();
        assert_eq!(r.rows.len(), 4);
        let p = r.problems();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].contains("k_spill (sm_90a): spills 16 bytes stored, 8 loaded"));
        assert!(p[1].contains("2 LDL"));
        assert!(p[2].contains("k_nohmma (sm_80): expected HMMA"));
        assert!(p[3].contains(
            "k_patched (sm_90a): ptxas patched or serialised its wgmma products or ignored a \
             setmaxnreg 2 times"
        ));
    }

    /// A loop as cuobjdump prints one: 0x10 is its head, 0xd0 its back edge. The masked side
    /// (0x40..0x70) is longer than the unmasked one (0x80), a predicated EXIT and a call fall
    /// through, an inner loop (0x90 <- 0xa0) is left at once, and the next step's copy (0xc0) is
    /// skipped by the last step only. After the function's end, a wait's retry loop (0x100 <-
    /// 0x110) jumps back into the loop (0x120 -> 0x20): wider, but no loop.
    const LOOP: &str = "\
        /*0000*/                   MOV R1, c[0x0][0x28] ;\n\
        /*0010*/                   HMMA.16816.F32.BF16 R4, R8, R12, R4 ;\n\
        /*0020*/                   ISETP.GE.AND P0, PT, R2, 0x40, PT ;\n\
        /*0030*/               @P0 BRA 0x80 ;\n\
        /*0040*/                   FSEL R4, R4, -INF , P1 ;\n\
        /*0050*/               @P2 EXIT ;\n\
        /*0060*/                   CALL.REL.NOINC 0x200 ;\n\
        /*0070*/                   BRA 0x90 ;\n\
        /*0080*/                   MUFU.EX2 R4, R4 ;\n\
        /*0090*/                   IADD3 R2, R2, 0x1, RZ ;\n\
        /*00a0*/              @!P3 BRA 0x90 ;\n\
        /*00b0*/              @!P5 BRA 0xd0 ;\n\
        /*00c0*/                   LDGSTS.E.BYPASS.128 [R3], desc[UR4][R4.64] ;\n\
        /*00d0*/               @P4 BRA 0x10 ;\n\
        /*00e0*/                   EXIT ;\n\
        /*00f0*/                   BRA 0xf0;\n\
        /*0100*/                   SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4], R2 ;\n\
        /*0110*/              @!P0 BRA 0x100 ;\n\
        /*0120*/                   BRA 0x20 ;\n";

    #[test]
    fn the_main_loop_is_the_widest_backward_branch_and_its_path_the_usual_way_around() {
        let body: Vec<sass::Instr> = LOOP.lines().filter_map(|l| sass::instr(l.trim())).collect();
        assert_eq!(body.len(), 19);
        // span: 0x10..=0xd0; path: 0x10, 0x20, 0x30, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0
        assert_eq!(sass::main_loop(&body), Some((13, 9)));
        let edit =
            |f: &dyn Fn(sass::Instr) -> sass::Instr| body.iter().map(|&i| f(i)).collect::<Vec<_>>();
        // without the short side the path runs through the masked one
        let long = edit(&|i| match i.flow {
            sass::Flow::Either(0x80) => sass::Instr {
                flow: sass::Flow::Next,
                ..i
            },
            _ => i,
        });
        assert_eq!(sass::main_loop(&long), Some((13, 12)));
        // were the copy no work the shortest way would skip it
        let no_work = edit(&|i| sass::Instr { work: false, ..i });
        assert_eq!(sass::main_loop(&no_work), Some((13, 8)));
        // a loop closed by a jump always taken (sm_80) is the same loop
        let jump = edit(&|i| match i.flow {
            sass::Flow::Either(0x10) => sass::Instr {
                flow: sass::Flow::Jump(0x10),
                ..i
            },
            _ => i,
        });
        assert_eq!(sass::main_loop(&jump), Some((13, 9)));
        assert_eq!(sass::main_loop(&body[..3]), None);
    }

    #[test]
    fn sass_lines_give_their_opcode_and_flow() {
        let line = "/*9d30*/  @!P0 BRA 0x1fa0 ;";
        assert_eq!(sass::sass_line(line), Some(("9d30", "@!P0 BRA 0x1fa0 ;")));
        fn op(l: &str) -> Option<&str> {
            sass::instr(l).map(|i| i.op)
        }
        assert_eq!(op(line), Some("BRA"));
        assert_eq!(
            op("/*0010*/  HMMA.16816.F32 R4, R8 ;"),
            Some("HMMA.16816.F32")
        );
        assert_eq!(
            op("/*0020*/  @PT LDGSTS.E.BYPASS.128 [R3], desc[UR4][R4.64] ;"),
            Some("LDGSTS.E.BYPASS.128")
        );
        assert_eq!(op("/*0030*/  BRA 0x30;"), Some("BRA"));
        assert_eq!(op("/*0040*/  EXIT ;"), Some("EXIT"));
        assert_eq!(op("Function : f"), None);
        let flow = |l: &str| sass::instr(l).map(|i| i.flow);
        assert_eq!(flow(line), Some(sass::Flow::Either(0x1fa0)));
        assert_eq!(flow("/*0010*/  BRA 0x40 ;"), Some(sass::Flow::Jump(0x40)));
        assert_eq!(
            flow("/*0010*/  @PT BRA 0x40 ;"),
            Some(sass::Flow::Jump(0x40))
        );
        assert_eq!(
            flow("/*0010*/  BRA.DIV ~URZ, 0x40 ;"),
            Some(sass::Flow::Either(0x40))
        );
        assert_eq!(
            flow("/*0010*/  @P0 BRA.U.ANY 0x40 ;"),
            Some(sass::Flow::Either(0x40))
        );
        assert_eq!(
            flow("/*0010*/  @P1 CALL.REL.NOINC 0x6920 ;"),
            Some(sass::Flow::Either(0x6920))
        );
        assert_eq!(
            flow("/*0010*/  CALL.REL.NOINC 0x200 ;"),
            Some(sass::Flow::Next)
        );
        assert_eq!(flow("/*0010*/  EXIT ;"), Some(sass::Flow::Stop));
        assert_eq!(
            flow("/*0010*/  RET.ABS.NODEC R20 0x0 ;"),
            Some(sass::Flow::Stop)
        );
        assert_eq!(flow("/*0010*/  @!P1 EXIT ;"), Some(sass::Flow::Next));
        assert_eq!(flow("        Function : k"), None);
        let work = |l: &str| sass::instr(l).map(|i| i.work);
        assert_eq!(
            work("/*0010*/  @P1 LDGSTS.E.BYPASS.128 [R3], desc[UR4][R4.64] ;"),
            Some(true)
        );
        assert_eq!(work("/*0010*/  UTMALDG.2D [UR8], [UR4] ;"), Some(true));
        assert_eq!(
            work("/*0010*/  HGMMA.64x128x16.F32.BF16 R24, gdesc[UR4], R24 ;"),
            Some(true)
        );
        assert_eq!(
            work("/*0010*/  HMMA.16816.F32.BF16 R4, R8, R12, R4 ;"),
            Some(true)
        );
        assert_eq!(
            work("/*0010*/  LDG.E.128 R4, desc[UR4][R2.64] ;"),
            Some(false)
        );
    }

    #[test]
    fn a_setmaxnreg_kernel_must_start_with_every_register_its_warpgroups_trade() {
        let report = |regs: u32| {
            KernelReport::parse(&format!(
                "kernel\ttarget\tregisters\tsmem_static\tstack\tspill_stores\tspill_loads\texpect\t\
                 wgmma_fixups\tHGMMA\tUSETMAXREG\nk_ws\tsm_90a\t{regs}\t0\t0\t0\t0\tHGMMA\t0\t32\t2\n\
                 k_plain\tsm_90a\t160\t0\t0\t0\t0\tHGMMA\t0\t32\t0\n"
            ))
            .unwrap()
        };
        assert!(report(168).problems().is_empty());
        let p = report(160).problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("k_ws (sm_90a): moves registers with setmaxnreg but starts with 160")
        );
    }

    #[test]
    fn a_listing_of_other_code_gets_the_same_columns() {
        // a cubin's listing (a target per file) with two functions, the second without a loop,
        // and -res-usage for the first only
        let listing = format!(
            "\tcode for sm_90a\n\t\tFunction : k_loop\n{LOOP}\n\t\tFunction : k_flat\n\
             /*0000*/   LDSM.16.M88.4 R4, [R2] ;\n/*0010*/   STL [R1], R4 ;\n/*0020*/   EXIT ;\n"
        );
        let resources = "Resource usage:\n Function k_loop:\n  REG:168 STACK:8 SHARED:0 LOCAL:0\n";
        let table = listing_table(&listing, resources);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert_eq!(lines[0][..3], ["target", "regs", "stack"]);
        assert_eq!(lines[0].last(), Some(&"function"));
        // target regs stack, the ten classes (HMMA 1, LDGSTS 1, MUFU.EX2 1), loop 13, path 9
        assert_eq!(
            lines[1],
            [
                "sm_90a", "168", "8", "1", "0", "0", "0", "1", "1", "0", "0", "0", "0", "13", "9",
                "k_loop"
            ]
        );
        assert_eq!(
            lines[2],
            [
                "sm_90a", "?", "?", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0", "-", "-",
                "k_flat"
            ]
        );
    }

    #[test]
    fn a_build_without_nvcc_has_no_report() {
        assert!(KernelReport::parse(
            "nvcc not found at build time: no GPU kernels were compiled.\n"
        )
        .is_none());
    }

    #[test]
    fn this_builds_report_is_clean() {
        match KernelReport::current() {
            Some(r) => assert!(
                r.problems().is_empty(),
                "kernel report problems:\n{}",
                r.problems().join("\n")
            ),
            None => eprintln!("skipped: this build compiled no GPU kernels (nvcc not found)"),
        }
    }
}
