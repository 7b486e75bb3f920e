//! TFLOP/s against sequence length, one panel per (pass, head dim, causal), one line per
//! implementation and activation: `sinkless plot results.jsonl... outdir` writes
//! `outdir/tflops.svg`.
//!
//! SVG only, through plotters' SVG backend without fonts: text stays `<text>` elements that the
//! browser (or GitHub's README view) renders, so no font files or image codecs are built.

use super::table::{activation_order, impl_order, is_baseline, short_name};
use super::{AttnResult, BenchError, Pass, Record};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One panel: pass, head dim, causal.
type Panel = (Pass, usize, bool);
/// One line: implementation, activation.
type Series = (String, String);
/// Every panel's lines: (seqlen, TFLOP/s) points.
type PanelData = BTreeMap<Panel, BTreeMap<Series, Vec<(f64, f64)>>>;

/// Colours by implementation: ours warm, baselines cool and grey.
fn colour(implementation: &str) -> RGBColor {
    match implementation {
        "sinkless" | "emulator" => RGBColor(0xd6, 0x27, 0x28),
        "reference-f64" => RGBColor(0xff, 0x7f, 0x0e),
        "torch-flash" => RGBColor(0x1f, 0x77, 0xb4),
        "torch-cudnn" => RGBColor(0x2c, 0xa0, 0x2c),
        "torch-efficient" => RGBColor(0x94, 0x67, 0xbd),
        "torch-eager" => RGBColor(0x7f, 0x7f, 0x7f),
        _ => RGBColor(0x8c, 0x56, 0x4b),
    }
}

fn seqlen_label(s: f64) -> String {
    let n = s.round() as u64;
    if n >= 1024 && n % 1024 == 0 {
        format!("{}k", n / 1024)
    } else {
        n.to_string()
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> BenchError {
    BenchError::Plot(format!("{e:?}"))
}

/// Draws `tflops.svg` into `outdir` (created if missing) and returns its path.
///
/// # Errors
/// [`BenchError::Io`] if `outdir` cannot be created, [`BenchError::Plot`] if drawing fails or
/// `records` hold no timed attention measurement.
pub fn plot(records: &[Record], outdir: &Path) -> Result<PathBuf, BenchError> {
    let mut data: PanelData = BTreeMap::new();
    for r in records {
        let Record::Attention(a) = r else { continue };
        // kernel variants (`sinkless/rcp`, ...) have their own table, not lines here
        if super::table::variant_of(&a.implementation).is_some() {
            continue;
        }
        let Some(t) = a.tflops() else { continue };
        let AttnResult { shape, pass, .. } = a;
        data.entry((*pass, shape.head_dim, shape.causal))
            .or_default()
            .entry((a.implementation.clone(), a.activation.clone()))
            .or_default()
            .push((shape.seqlen as f64, t));
    }
    if data.is_empty() {
        return Err(BenchError::Plot(
            "no timed attention measurement to plot".into(),
        ));
    }
    std::fs::create_dir_all(outdir).map_err(|e| BenchError::Io {
        path: outdir.to_owned(),
        message: e.to_string(),
    })?;
    let path = outdir.join("tflops.svg");
    let cols = data.len().min(4);
    let rows = data.len().div_ceil(cols);
    let mut token_counts: Vec<usize> = records
        .iter()
        .filter_map(|r| match r {
            Record::Attention(a) => Some(a.shape.batch * a.shape.seqlen),
            _ => None,
        })
        .collect();
    token_counts.sort_unstable();
    token_counts.dedup();
    let tokens = match token_counts[..] {
        [n] => n.to_string(),
        _ => "varying".to_owned(),
    };
    draw(&data, &path, (rows, cols), &tokens)?;
    Ok(path)
}

fn draw(
    data: &PanelData,
    path: &Path,
    (rows, cols): (usize, usize),
    tokens: &str,
) -> Result<(), BenchError> {
    // 420 x 340 pixels a panel, 40 for the title.
    let size = (
        u32::try_from(cols * 420).unwrap_or(u32::MAX),
        u32::try_from(rows * 340 + 40).unwrap_or(u32::MAX),
    );
    let title = format!(
        "TFLOP/s against sequence length, {} tokens per shape (higher is better)",
        tokens
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(&title, ("sans-serif", 20)).map_err(plot_err)?;
    let areas = root.split_evenly((rows, cols));
    for (area, ((pass, hd, causal), lines)) in areas.iter().zip(data) {
        let seqlens: Vec<f64> = {
            let mut v: Vec<f64> = lines.values().flatten().map(|p| p.0).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        };
        let (lo, hi) = (seqlens[0].log2(), seqlens[seqlens.len() - 1].log2());
        // Headroom above the highest line for the legend.
        let ymax = lines.values().flatten().map(|p| p.1).fold(0.0f64, f64::max) * 1.6;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{} hd={hd} {}",
                    match pass {
                        Pass::Forward => "forward",
                        Pass::Backward => "backward",
                        Pass::BackwardDeterministic => "deterministic backward",
                    },
                    if *causal { "causal" } else { "non-causal" }
                ),
                ("sans-serif", 16),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(lo - 0.3..hi + 0.3, 0.0..ymax.max(1e-9))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(seqlens.len() + 1)
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 {
                    seqlen_label(x.exp2())
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| {
                if ymax >= 16.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.3}")
                }
            })
            .x_desc("seqlen")
            .y_desc("TFLOP/s")
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_err)?;
        let mut series: Vec<_> = lines.iter().collect();
        series.sort_by(|(a, _), (b, _)| {
            (activation_order(&a.1), impl_order(&a.0))
                .cmp(&(activation_order(&b.1), impl_order(&b.0)))
        });
        for ((implementation, activation), points) in series {
            let mut pts: Vec<(f64, f64)> = points.iter().map(|(s, t)| (s.log2(), *t)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = colour(implementation);
            // Sigmoid lines are thinner, softmax thicker: the same implementation keeps its
            // colour across activations.
            let width = if activation == "sigmoid" { 1 } else { 3 };
            let style = c.stroke_width(width);
            let label = format!(
                "{} {activation}{}",
                short_name(implementation),
                if is_baseline(implementation) {
                    ""
                } else {
                    " (ours)"
                }
            );
            chart
                .draw_series(LineSeries::new(pts, style).point_size(3))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{AttnShape, Stats, Status};

    #[test]
    fn writes_an_svg_with_every_series() {
        let mut records = Vec::new();
        for pass in [Pass::Forward, Pass::Backward] {
            for (implementation, activation) in [
                ("sinkless", "softmax"),
                ("torch-flash", "softmax"),
                ("sinkless", "sigmoid"),
                ("torch-eager", "sigmoid"),
            ] {
                for seqlen in [512, 2048, 16_384] {
                    records.push(Record::Attention(AttnResult {
                        implementation: implementation.into(),
                        activation: activation.into(),
                        pass,
                        dtype: "bf16".into(),
                        shape: AttnShape {
                            batch: 16_384 / seqlen,
                            seqlen,
                            heads: 16,
                            head_dim: 128,
                            causal: true,
                        },
                        stats: Stats::of(&[seqlen as f64 / 1e4]),
                        status: Status::Ok,
                    }));
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("sinkless-plot-{}", std::process::id()));
        let path = plot(&records, &dir).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for text in [
            "forward hd=128 causal",
            "backward hd=128 causal",
            "flash softmax",
            "sinkless sigmoid (ours)",
            "16k",
            "TFLOP/s",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        assert!(svg.matches("<polyline").count() >= 8);
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        let e = plot(&[], Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(e, BenchError::Plot(_)));
    }
}
