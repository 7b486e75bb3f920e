//! The Markdown table of a benchmark run: run facts, the two ceilings, then one row per
//! (pass, head dim, causal, seqlen) with TFLOP/s of every implementation and the ratio of each
//! of ours to each baseline of the same activation.
//!
//! Columns come from the data: "ours" is every implementation whose name does not start with
//! `torch` (`sinkless` on a GPU, `reference-f64` or `emulator` in the dry run); baselines are the
//! `torch-*` ones, in the order flash, cuDNN, efficient, eager.

use super::json::{Object, Value};
use super::{AttnResult, AttnShape, Pass, Record, Status};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Only the longest sequence length of each (pass, head dim, causal) group, and no table of
    /// kernel variants: the README's headline.
    pub headline: bool,
}

/// An implementation's short column name.
pub fn short_name(implementation: &str) -> &str {
    match implementation {
        "torch-flash" => "flash",
        "torch-cudnn" => "cuDNN",
        "torch-efficient" => "efficient",
        "torch-eager" => "eager",
        "reference-f64" => "ref-f64",
        other => other,
    }
}

/// Whether an implementation is a PyTorch baseline.
pub fn is_baseline(implementation: &str) -> bool {
    implementation.starts_with("torch")
}

/// Sort key of an implementation: ours first, then the baselines in a fixed order.
pub fn impl_order(implementation: &str) -> (usize, &str) {
    let rank = match implementation {
        "sinkless" => 0,
        "emulator" => 1,
        "reference-f64" => 2,
        "torch-flash" => 10,
        "torch-cudnn" => 11,
        "torch-efficient" => 12,
        "torch-eager" => 13,
        i if is_baseline(i) => 14,
        _ => 3,
    };
    (rank, implementation)
}

/// Sort key of an activation: softmax, then sigmoid, then anything else.
pub fn activation_order(activation: &str) -> (usize, &str) {
    let rank = match activation {
        "softmax" => 0,
        "sigmoid" => 1,
        _ => 2,
    };
    (rank, activation)
}

/// Every run record merged into one (the first value of each key wins).
pub fn run_facts(records: &[Record]) -> Object {
    let mut facts = Object::new();
    for r in records {
        if let Record::Run(o) = r {
            for (k, v) in o.iter() {
                if k != "kind" && facts.get(k).is_none() {
                    facts.push(k, v.clone());
                }
            }
        }
    }
    facts
}

fn fact(facts: &Object, key: &str) -> Option<String> {
    match facts.get(key)? {
        Value::Str(s) if !s.is_empty() => Some(s.clone()),
        Value::Num(x) => Some(format!("{x}")),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A row of the table.
type RowKey = (Pass, usize, bool, usize, usize, usize);

fn row_key(s: &AttnShape, pass: Pass) -> RowKey {
    (pass, s.head_dim, s.causal, s.seqlen, s.batch, s.heads)
}

/// A column of the table: an implementation and an activation.
type Column = (String, String);

fn cell(a: Option<&AttnResult>) -> String {
    match a {
        None => "—".into(),
        Some(a) => match (&a.status, a.tflops()) {
            (Status::Ok, Some(t)) => format_tflops(t),
            (Status::Unsupported(_), _) => "n/a".into(),
            _ => "fail".into(),
        },
    }
}

/// TFLOP/s, readable from a GPU's hundreds down to the dry run's CPU numbers (1e-4 and less).
pub fn format_tflops(t: f64) -> String {
    if t >= 100.0 {
        format!("{t:.0}")
    } else if t >= 1.0 {
        format!("{t:.1}")
    } else if t >= 0.01 {
        format!("{t:.3}")
    } else {
        format!("{t:.1e}")
    }
}

/// The Markdown report of `records`: facts, ceilings, the attention table and the failures.
pub fn markdown(records: &[Record], opts: &TableOptions) -> String {
    let mut out = String::new();
    let facts = run_facts(records);
    let get = |k: &str| fact(&facts, k);
    let _ = writeln!(
        out,
        "**{}**{}{}{}",
        get("gpu").unwrap_or_else(|| "unknown GPU".into()),
        get("driver").map_or(String::new(), |d| format!(", driver {d}")),
        get("commit").map_or(String::new(), |c| format!(", commit `{c}`")),
        get("date").map_or(String::new(), |d| format!(", {d}")),
    );
    let mut details = Vec::new();
    if let Some(n) = get("sm_count") {
        details.push(format!("{n} SMs"));
    }
    if let (Some(c), Some(m)) = (get("sm_clock_mhz"), get("max_sm_clock_mhz")) {
        details.push(format!("SM clock {c} MHz (max {m})"));
    }
    if let Some(c) = get("mem_clock_mhz") {
        details.push(format!("memory clock {c} MHz"));
    }
    if let Some(t) = get("torch") {
        details.push(format!("PyTorch {t}"));
    }
    if let Some(m) = get("mode") {
        details.push(format!("mode: {m}"));
    }
    if !details.is_empty() {
        let _ = writeln!(out, "\n{}", details.join(" · "));
    }

    let throughputs: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Throughput(t) => Some(t),
            _ => None,
        })
        .collect();
    if !throughputs.is_empty() {
        let _ = writeln!(out, "\n| measured | by | size | rate | median ms |");
        let _ = writeln!(out, "|---|---|---|--:|--:|");
        for t in throughputs {
            let rate = match (&t.status, t.value) {
                (Status::Ok, Some(v)) => format!("{v:.1} {}", t.unit),
                (Status::Ok, None) => "—".into(),
                (Status::Unsupported(m), _) => format!("n/a ({m})"),
                (Status::Failed(m), _) => format!("failed ({m})"),
            };
            let ms = t
                .stats
                .map_or("—".into(), |s| format!("{:.3}", s.median_ms));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {rate} | {ms} |",
                t.name, t.implementation, t.detail
            );
        }
    }

    let (variants, attention): (Vec<&AttnResult>, Vec<&AttnResult>) = records
        .iter()
        .filter_map(|r| match r {
            Record::Attention(a) => Some(a),
            _ => None,
        })
        .partition(|a| variant_of(&a.implementation).is_some());
    let variant_section = if variants.is_empty() || opts.headline {
        String::new()
    } else {
        variant_table(&variants)
    };
    if attention.is_empty() {
        if variants.is_empty() {
            let _ = writeln!(out, "\nno attention measurements in these results");
        }
        out.push_str(&variant_section);
        return out;
    }

    // Later records of the same cell replace earlier ones (a rerun appended to the file).
    let mut cells: BTreeMap<(RowKey, Column), &AttnResult> = BTreeMap::new();
    for a in &attention {
        let col = (a.implementation.clone(), a.activation.clone());
        cells.insert((row_key(&a.shape, a.pass), col), a);
    }
    let mut rows: Vec<RowKey> = cells.keys().map(|(r, _)| *r).collect();
    rows.dedup();
    if opts.headline {
        let mut longest: BTreeMap<(Pass, usize, bool), usize> = BTreeMap::new();
        for r in &rows {
            let e = longest.entry((r.0, r.1, r.2)).or_default();
            *e = (*e).max(r.3);
        }
        rows.retain(|r| longest[&(r.0, r.1, r.2)] == r.3);
    }
    let mut columns: Vec<Column> = cells.keys().map(|(_, c)| c.clone()).collect();
    columns.sort_by(|a, b| {
        (activation_order(&a.1), impl_order(&a.0)).cmp(&(activation_order(&b.1), impl_order(&b.0)))
    });
    columns.dedup();
    let ratios: Vec<(Column, Column)> = columns
        .iter()
        .filter(|o| !is_baseline(&o.0))
        .flat_map(|o| {
            columns
                .iter()
                .filter(move |b| is_baseline(&b.0) && b.1 == o.1)
                .map(move |b| (o.clone(), b.clone()))
        })
        .collect();

    // Each of ours: sigmoid over softmax on the same shape.
    let activation_ratios: Vec<(Column, Column)> = columns
        .iter()
        .filter(|c| !is_baseline(&c.0) && c.1 == "sigmoid")
        .filter_map(|sig| {
            let soft = (sig.0.clone(), "softmax".to_string());
            columns.contains(&soft).then(|| (sig.clone(), soft))
        })
        .collect();
    let ratios: Vec<(Column, Column)> = ratios.into_iter().chain(activation_ratios).collect();

    let dtype = attention[0].dtype.as_str();
    let runs: Vec<usize> = attention
        .iter()
        .filter_map(|a| a.stats.map(|s| s.runs))
        .collect();
    let _ = writeln!(
        out,
        "\nTFLOP/s of attention in {dtype} (FlashAttention's count: forward 4·b·h·s²·d, halved when \
         causal; backward 2.5× forward), median of {}–{} runs{}; `a/b` is a's rate over b's \
         (above 1: a is faster); b·s = {} tokens per shape.\n",
        runs.iter().min().unwrap_or(&0),
        runs.iter().max().unwrap_or(&0),
        if get("mode").as_deref() == Some("dry-run") {
            ", wall clock on the CPU"
        } else {
            ", CUDA events, L2 flushed before each"
        },
        attention[0].shape.batch * attention[0].shape.seqlen,
    );
    let mut header = String::from("| pass | hd | causal | seqlen | b×h |");
    let mut rule = String::from("|---|--:|---|--:|--:|");
    for (i, a) in &columns {
        let _ = write!(header, " {} {} |", short_name(i), a);
        rule.push_str("--:|");
    }
    for ((o, oa), (b, ba)) in &ratios {
        if o == b {
            let _ = write!(header, " {} {oa}/{ba} |", short_name(o));
        } else {
            let _ = write!(header, " {}/{} |", short_name(o), short_name(b));
        }
        rule.push_str("--:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for r in &rows {
        let (pass, hd, causal, seqlen, batch, heads) = *r;
        let _ = write!(
            out,
            "| {} | {hd} | {} | {seqlen} | {batch}×{heads} |",
            pass.name(),
            if causal { "yes" } else { "no" }
        );
        for c in &columns {
            let _ = write!(out, " {} |", cell(cells.get(&(*r, c.clone())).copied()));
        }
        for (o, b) in &ratios {
            let t = |c: &Column| cells.get(&(*r, c.clone())).and_then(|a| a.tflops());
            match (t(o), t(b)) {
                (Some(x), Some(y)) if y > 0.0 => {
                    let _ = write!(out, " {:.2} |", x / y);
                }
                _ => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }

    let problems: Vec<&AttnResult> = attention
        .iter()
        .copied()
        .filter(|a| a.status != Status::Ok)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(
            out,
            "\n{} measurement(s) did not run (`n/a`: unsupported, `fail`: failed); the first:",
            problems.len()
        );
        for a in problems.iter().take(8) {
            let _ = writeln!(
                out,
                "- {} {} {} {}: {}",
                a.implementation,
                a.activation,
                a.pass.name(),
                a.shape,
                status_message(&a.status).unwrap_or("")
            );
        }
    }
    out.push_str(&variant_section);
    out
}

/// The implementation and variant name of a kernel-variant record (`sinkless/rcp` is `rcp` of
/// `sinkless`), or `None` for a plain implementation.
pub(crate) fn variant_of(implementation: &str) -> Option<(&str, &str)> {
    implementation.split_once('/')
}

/// The comparison of kernel variants: per pass, activation and shape, each variant's TFLOP/s and
/// its rate over the default kernels timed in the same step (`sinkless bench --variants`).
fn variant_table(records: &[&AttnResult]) -> String {
    type Key = (String, Pass, (usize, String), usize, bool, usize);
    let mut out = String::new();
    let mut cells: BTreeMap<(Key, String), &AttnResult> = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    for a in records {
        let Some((base, name)) = variant_of(&a.implementation) else {
            continue;
        };
        let (rank, act) = activation_order(&a.activation);
        let key = (
            base.to_string(),
            a.pass,
            (rank, act.to_string()),
            a.shape.head_dim,
            a.shape.causal,
            a.shape.seqlen,
        );
        cells.insert((key, name.to_string()), a);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    // in `KernelVariant` order, names it does not know last
    names.sort_by_key(|n| {
        let v = crate::KernelVariant::from_name(n);
        (v.is_none(), v, *n)
    });
    let _ = writeln!(
        out,
        "\nKernel variants (`sinkless bench --variants`, see `KernelVariant`; `+grid`: the same \
         kernels in grid order, `BlockOrder::Grid`): TFLOP/s, and in parentheses the rate over \
         `default` on the same shape in the same step.\n"
    );
    let mut header = String::from("| by | pass | activation | hd | causal | seqlen |");
    let mut rule = String::from("|---|---|---|--:|---|--:|");
    for n in &names {
        let _ = write!(header, " {n} |");
        rule.push_str("--:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut keys: Vec<&Key> = cells.keys().map(|(k, _)| k).collect();
    keys.dedup();
    for key in keys {
        let (base, pass, (_, act), hd, causal, seqlen) = key;
        let _ = write!(
            out,
            "| {base} | {} | {act} | {hd} | {} | {seqlen} |",
            pass.name(),
            if *causal { "yes" } else { "no" }
        );
        let get = |n: &str| cells.get(&(key.clone(), n.to_string())).copied();
        let default = get("default").and_then(AttnResult::tflops);
        for n in &names {
            let c = get(n);
            let rate = match (c.and_then(AttnResult::tflops), default) {
                (Some(x), Some(d)) if *n != "default" && d > 0.0 => format!(" ({:.2})", x / d),
                _ => String::new(),
            };
            let _ = write!(out, " {}{rate} |", cell(c));
        }
        out.push('\n');
    }
    out
}

fn status_message(s: &Status) -> Option<&str> {
    match s {
        Status::Ok => None,
        Status::Unsupported(m) | Status::Failed(m) => Some(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Stats, Throughput};

    fn attn(implementation: &str, activation: &str, pass: Pass, seqlen: usize, ms: f64) -> Record {
        Record::Attention(AttnResult {
            implementation: implementation.into(),
            activation: activation.into(),
            pass,
            dtype: "bf16".into(),
            shape: AttnShape {
                batch: 16_384 / seqlen,
                seqlen,
                heads: 16,
                head_dim: 128,
                causal: false,
            },
            stats: Stats::of(&[ms]),
            status: Status::Ok,
        })
    }

    fn sample() -> Vec<Record> {
        let mut run = Object::new();
        run.push("gpu", "NVIDIA H200")
            .push("driver", "580.159.04")
            .push("commit", "abc1234")
            .push("sm_count", 132usize);
        let mut r = vec![Record::Run(run)];
        for seqlen in [1024, 4096] {
            r.push(attn("sinkless", "softmax", Pass::Forward, seqlen, 1.0));
            r.push(attn("torch-flash", "softmax", Pass::Forward, seqlen, 2.0));
            r.push(attn("torch-eager", "sigmoid", Pass::Forward, seqlen, 4.0));
        }
        r.push(Record::Attention(AttnResult {
            stats: None,
            status: Status::Unsupported("no cuDNN".into()),
            ..match attn("torch-cudnn", "softmax", Pass::Forward, 4096, 0.0) {
                Record::Attention(a) => a,
                _ => unreachable!(),
            }
        }));
        r.push(Record::Throughput(Throughput {
            name: "matmul".into(),
            implementation: "torch".into(),
            detail: "8192³ bf16".into(),
            stats: Stats::of(&[1.4]),
            value: Some(785.0),
            unit: "TFLOP/s".into(),
            status: Status::Ok,
        }));
        r
    }

    #[test]
    fn table_has_columns_ratios_and_problems() {
        let t = markdown(&sample(), &TableOptions::default());
        assert!(
            t.starts_with("**NVIDIA H200**, driver 580.159.04, commit `abc1234`"),
            "{t}"
        );
        assert!(t.contains("132 SMs"));
        assert!(
            t.contains("| matmul | torch | 8192³ bf16 | 785.0 TFLOP/s | 1.400 |"),
            "{t}"
        );
        let header = t.lines().find(|l| l.starts_with("| pass")).unwrap();
        assert_eq!(
            header,
            "| pass | hd | causal | seqlen | b×h | sinkless softmax | flash softmax | cuDNN softmax \
             | eager sigmoid | sinkless/flash | sinkless/cuDNN |"
        );
        // 4·4·16·4096²·128 = 0.55 PFLOP in 1 ms (sinkless), 2 ms (flash), 4 ms (eager).
        let row = t
            .lines()
            .find(|l| l.starts_with("| fwd | 128 | no | 4096"))
            .unwrap();
        assert_eq!(
            row,
            "| fwd | 128 | no | 4096 | 4×16 | 550 | 275 | n/a | 137 | 2.00 | — |"
        );
        assert!(t.contains("1 measurement(s) did not run"));
        assert!(t.contains("torch-cudnn softmax fwd b=4 s=4096 h=16 d=128: no cuDNN"));
        // Every table line has the same number of cells as the header.
        let cols = header.matches('|').count();
        for l in t.lines().filter(|l| l.starts_with("| fwd")) {
            assert_eq!(l.matches('|').count(), cols, "{l}");
        }
    }

    #[test]
    fn sigmoid_over_softmax_and_the_variant_table() {
        let mut r = sample();
        for seqlen in [1024, 4096] {
            r.push(attn("sinkless", "sigmoid", Pass::Forward, seqlen, 0.8));
            r.push(attn(
                "sinkless/default",
                "sigmoid",
                Pass::Forward,
                seqlen,
                1.0,
            ));
            r.push(attn("sinkless/rcp", "sigmoid", Pass::Forward, seqlen, 0.5));
            r.push(attn(
                "sinkless/default",
                "softmax",
                Pass::Forward,
                seqlen,
                2.0,
            ));
            r.push(attn("sinkless/n32", "softmax", Pass::Forward, seqlen, 2.5));
        }
        let t = markdown(&r, &TableOptions::default());
        // the variants stay out of the main table, which gains sigmoid/softmax for ours
        let header = t.lines().find(|l| l.starts_with("| pass")).unwrap();
        assert!(
            !header.contains("default") && !header.contains("rcp") && !header.contains("n32"),
            "{header}"
        );
        assert!(header.ends_with("| sinkless sigmoid/softmax |"), "{header}");
        let row = t
            .lines()
            .find(|l| l.starts_with("| fwd | 128 | no | 4096"))
            .unwrap();
        assert!(row.ends_with("| 1.25 |"), "{row}");
        let vheader = t.lines().find(|l| l.starts_with("| by |")).unwrap();
        assert_eq!(
            vheader,
            "| by | pass | activation | hd | causal | seqlen | default | rcp | n32 |"
        );
        let rows: Vec<_> = t
            .lines()
            .filter(|l| l.starts_with("| sinkless |"))
            .collect();
        assert_eq!(
            rows,
            [
                "| sinkless | fwd | softmax | 128 | no | 1024 | 68.7 | — | 55.0 (0.80) |",
                "| sinkless | fwd | softmax | 128 | no | 4096 | 275 | — | 220 (0.80) |",
                "| sinkless | fwd | sigmoid | 128 | no | 1024 | 137 | 275 (2.00) | — |",
                "| sinkless | fwd | sigmoid | 128 | no | 4096 | 550 | 1100 (2.00) | — |",
            ]
        );
    }

    #[test]
    fn headline_keeps_the_longest_sequence() {
        let t = markdown(&sample(), &TableOptions { headline: true });
        let rows: Vec<_> = t.lines().filter(|l| l.starts_with("| fwd")).collect();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].starts_with("| fwd | 128 | no | 4096"));
    }

    #[test]
    fn empty_results_say_so() {
        let t = markdown(&[], &TableOptions::default());
        assert!(t.contains("unknown GPU") && t.contains("no attention measurements"));
    }
}
