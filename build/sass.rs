//! SASS as `cuobjdump -sass` prints it, read for the kernel report: each instruction's opcode,
//! and the kernel's main loop measured two ways. Shared by `build.rs` and `sinkless sass`
//! (`report.rs`), which reads any other listing the same way.

/// The SASS instruction classes the kernel report counts: an instruction is of class `C` when
/// its opcode is `C` or starts with `C.`.
pub const CLASSES: [&str; 10] = [
    "HMMA",
    "HGMMA",
    "UTMALDG",
    "LDSM",
    "LDGSTS",
    "MUFU.EX2",
    "MUFU.RCP",
    "LDL",
    "STL",
    "USETMAXREG",
];

/// One function of a listing: its name, the target it was compiled for, its count of each of
/// [`CLASSES`] (in that order) and its main loop ([`main_loop`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function<'a> {
    pub name: &'a str,
    pub arch: &'a str,
    pub classes: [u64; CLASSES.len()],
    pub main_loop: Option<(u64, u64)>,
}

/// Every function of a `cuobjdump -sass` listing, of a fatbin (a target's section starts with
/// `arch = sm_90a`) or of a single cubin (`code for sm_90a`).
pub fn functions(listing: &str) -> Vec<Function<'_>> {
    type Open<'a> = Option<(&'a str, &'a str, Vec<Instr<'a>>)>;
    fn close<'a>(f: Open<'a>, out: &mut Vec<Function<'a>>) {
        if let Some((name, arch, body)) = f {
            let mut classes = [0; CLASSES.len()];
            for i in &body {
                let of = |c: &&str| {
                    i.op == *c || i.op.strip_prefix(c).is_some_and(|r| r.starts_with('.'))
                };
                if let Some(c) = CLASSES.iter().position(of) {
                    classes[c] += 1;
                }
            }
            out.push(Function {
                name,
                arch,
                classes,
                main_loop: main_loop(&body),
            });
        }
    }
    let mut out = Vec::new();
    let mut arch = "";
    let mut current: Open = None;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(a) = t
            .strip_prefix("arch = ")
            .or_else(|| t.strip_prefix("code for "))
        {
            close(current.take(), &mut out);
            arch = a.trim();
        } else if let Some(name) = t.strip_prefix("Function : ") {
            close(current.take(), &mut out);
            current = Some((name.trim(), arch, Vec::new()));
        } else if let Some((_, _, body)) = &mut current {
            body.extend(instr(t));
        }
    }
    close(current, &mut out);
    out
}

/// A SASS line such as `/*0120*/  @!P0 HMMA.16816.F32 R4, ... ;` split into its address (`0120`)
/// and the instruction after it.
pub fn sass_line(line: &str) -> Option<(&str, &str)> {
    let (at, text) = line.strip_prefix("/*")?.split_once("*/")?;
    Some((at.trim(), text.trim_start()))
}

/// How control leaves an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// On to the next instruction (calls return there too).
    Next,
    /// A branch that may be taken or not (a predicate or a condition operand), to this address;
    /// also a predicated `CALL.REL.NOINC`, with which nvcc leaves a loop on sm_80.
    Either(u64),
    /// A branch always taken, to this address.
    Jump(u64),
    /// Nowhere in this function: an unpredicated `EXIT` or `RET`.
    Stop,
}

/// One instruction of a function: its byte address, its opcode with its modifiers
/// (`HMMA.16816.F32`; the predicate left off), how control leaves it, and whether it is the work
/// a usual step does in full: a tensor-core product (`HMMA`, `HGMMA`) or a copy from global to
/// shared memory (`LDGSTS`, the TMA's `UTMALDG`, `UBLKCP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instr<'a> {
    pub at: u64,
    pub op: &'a str,
    pub flow: Flow,
    pub work: bool,
}

/// The instruction of a SASS line such as `/*0120*/  @!P0 HMMA.16816.F32 R4, ... ;`, or `None`
/// for a line that holds none.
pub fn instr(line: &str) -> Option<Instr<'_>> {
    let (at, text) = sass_line(line)?;
    let at = u64::from_str_radix(at, 16).ok()?;
    let text = text.split(';').next().unwrap_or(text).trim();
    let (predicated, rest) = match text.split_once(' ') {
        Some((p, rest)) if p.starts_with('@') => (p != "@PT", rest.trim_start()),
        _ => (false, text),
    };
    let (op, operands) = rest.split_once(' ').unwrap_or((rest, ""));
    let base = op.split('.').next().unwrap_or(op);
    // a branch's target: its last operand (another one before it is a condition, as in BRA.DIV)
    let target =
        || u64::from_str_radix(operands.rsplit(',').next()?.trim().strip_prefix("0x")?, 16).ok();
    let flow = match base {
        "BRA" if predicated || operands.contains(',') => Flow::Either(target()?),
        "BRA" => Flow::Jump(target()?),
        // a loop's way out on sm_80: the threads whose predicate holds leave for the target
        "CALL" if predicated && op.starts_with("CALL.REL.NOINC") => Flow::Either(target()?),
        "EXIT" | "RET" if !predicated => Flow::Stop,
        _ => Flow::Next,
    };
    let work = matches!(base, "HMMA" | "HGMMA" | "LDGSTS" | "UTMALDG" | "UBLKCP");
    Some(Instr { at, op, flow, work })
}

/// The kernel's main loop, its widest backward branch, measured two ways (16-byte instructions,
/// as on sm_80 and sm_90): `(span, path)`, with span every instruction from the branch's target
/// to the branch itself (the loop body, all of its branches included) and path the length of
/// the usual trip around: of the ways from the target to the branch that do the most work
/// ([`Instr::work`]: every product of the head-dim bucket, and the next tile's copies, which
/// the last step skips), the shortest (inner loops left at once). For the attention kernels
/// that is a step with no mask, no rescale and whole tiles, which take the longer sides of
/// their branches. `None` without a loop.
///
/// A back edge is a branch to an earlier address, but a jump always taken from code placed
/// after an unconditional `EXIT` between them is the way back from a slow path kept out of line
/// (an mbarrier wait's retry loop, a divergent shuffle), and a jump to itself is the padding
/// after the function's end: neither closes a loop, where a widest-jump rule took the first for
/// one wider than the main loop. (nvcc closes a loop with a conditional branch, or on sm_80
/// with a predicated `CALL.REL.NOINC` out of it and a jump back.)
pub fn main_loop(instrs: &[Instr]) -> Option<(u64, u64)> {
    let stops: Vec<u64> = instrs
        .iter()
        .filter(|i| i.flow == Flow::Stop)
        .map(|i| i.at)
        .collect();
    let (head, tail) = instrs
        .iter()
        .filter_map(|i| match i.flow {
            Flow::Either(to) if to <= i.at => Some((to, i.at)),
            Flow::Jump(to) if to < i.at && !stops.iter().any(|s| (to..i.at).contains(s)) => {
                Some((to, i.at))
            }
            _ => None,
        })
        .max_by_key(|&(to, at)| at - to)?;
    let span = (tail - head) / 16 + 1;
    let body: Vec<&Instr> = instrs
        .iter()
        .filter(|i| (head..=tail).contains(&i.at))
        .collect();
    let index = |at: u64| body.binary_search_by_key(&at, |i| i.at).ok();
    // Without the inner loops' back edges the body is acyclic, its edges going to higher
    // addresses: the best way to each instruction, (work, instructions) with more work and then
    // fewer instructions better, follows from its predecessors' in address order.
    let better = |a: (u64, u64), b: Option<(u64, u64)>| match b {
        None => true,
        Some(b) => a.0 > b.0 || (a.0 == b.0 && a.1 < b.1),
    };
    let mut best: Vec<Option<(u64, u64)>> = vec![None; body.len()];
    best[0] = Some((u64::from(body[0].work), 1));
    // n + 1 < body.len(): the last instruction is the back edge
    for n in 0..body.len() - 1 {
        let Some((work, len)) = best[n] else {
            continue;
        };
        let next = Some(n + 1);
        let successors = match body[n].flow {
            Flow::Next => [next, None],
            Flow::Either(to) => [next, index(to)],
            Flow::Jump(to) => [index(to), None],
            Flow::Stop => [None, None],
        };
        for m in successors.into_iter().flatten().filter(|&m| m > n) {
            let way = (work + u64::from(body[m].work), len + 1);
            if better(way, best[m]) {
                best[m] = Some(way);
            }
        }
    }
    Some((span, best[body.len() - 1].map_or(span, |(_, len)| len)))
}
