//! A timeline of scores per label with thresholds and flagged segments shaded, as SVG: shows a
//! person why a segment opened.

use crate::eval::html::escape;
use std::fmt::Write;

/// One label's series and thresholds.
pub struct Series<'a> {
    /// Label name.
    pub label: &'a str,
    /// `(timestamp_us, score)` of scored frames.
    pub points: &'a [(i64, f32)],
    /// Enter threshold, if the policy flags this label.
    pub enter: Option<f32>,
    /// Exit threshold.
    pub exit: Option<f32>,
}

/// One colour per label (a model with more labels reuses them in order).
const COLORS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// Horizontal room of one label in the legend, in pixels.
const LEGEND_STEP: f64 = 110.0;
/// Labels per legend row (the key takes the rest of the first row).
const LEGEND_PER_ROW: usize = 5;

/// Renders the series and segments (`(label, start_us, end_us)`) over `duration_us` as SVG.
pub fn svg(series: &[Series<'_>], segments: &[(String, i64, i64)], duration_us: i64) -> String {
    let rows = series.len().div_ceil(LEGEND_PER_ROW).max(1);
    let (w, h, left, top, plot_h) = (1000.0, 312.0 + 12.0 * rows as f64, 50.0, 20.0, 250.0);
    let plot_w = w - left - 20.0;
    let dur = duration_us.max(1) as f64;
    let x = |t: i64| left + plot_w * (t as f64 / dur).clamp(0.0, 1.0);
    let y = |s: f32| top + plot_h * (1.0 - s.clamp(0.0, 1.0) as f64);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##);
    for (label, a, b) in segments {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="#ff9896" fill-opacity="0.35"><title>{} segment {:.2}s-{:.2}s</title></rect>"##,
            x(*a),
            (x(*b) - x(*a)).max(1.0),
            escape(label),
            *a as f64 / 1e6,
            *b as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    for tick in 0..=4 {
        let s = tick as f32 / 4.0;
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{s:.2}</text>"##,
            left - 5.0,
            y(s) + 4.0
        );
    }
    let seconds = (dur / 1e6).ceil() as i64;
    let step = ((seconds / 10).max(1)) as usize;
    for sec in (0..=seconds).step_by(step) {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{sec}s</text>"##,
            x(sec * 1_000_000),
            top + plot_h + 16.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        for (th, dash) in [(s.enter, "6,3"), (s.exit, "2,3")] {
            if let Some(v) = th {
                let _ = writeln!(
                    out,
                    r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-dasharray="{dash}"/>"##,
                    left + plot_w,
                    y(v),
                    y(v)
                );
            }
        }
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"##,
            path.join(" ")
        );
    }
    // The legend: the labels on a line of their own (as many as fit), the key below them.
    for (i, s) in series.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" fill="{}">{}</text>"##,
            left + 10.0 + LEGEND_STEP * (i % LEGEND_PER_ROW) as f64,
            top + plot_h + 32.0 + 12.0 * (i / LEGEND_PER_ROW) as f64,
            COLORS[i % COLORS.len()],
            escape(s.label)
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" fill="#666" text-anchor="end">dashed: enter, dotted: exit, shaded: segments</text>"##,
        w - 20.0,
        top + plot_h + 32.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every label gets its own colour and a legend entry, escaped, however many labels the model
    /// has (nsfwjs has five); the legend grows a row instead of running into the key.
    #[test]
    fn every_label_is_drawn_and_named() {
        let labels = [
            "Drawing", "Hentai", "Neutral", "Porn", "Sexy", "a & <b>", "g",
        ];
        let points = [(0i64, 0.2f32), (1_000_000, 0.9)];
        let series: Vec<Series<'_>> = labels
            .iter()
            .map(|&label| Series {
                label,
                points: &points,
                enter: Some(0.8),
                exit: Some(0.5),
            })
            .collect();
        let svg = svg(&series, &[("Porn".into(), 0, 1_000_000)], 2_000_000);
        assert_eq!(svg.matches("<polyline").count(), labels.len());
        for (i, label) in labels.iter().enumerate() {
            let entry = format!(r#"fill="{}">{}</text>"#, COLORS[i], escape(label));
            assert!(svg.contains(&entry), "no legend entry for {label}");
        }
        assert!(svg.contains("a &amp; &lt;b&gt;") && !svg.contains("<b>"));
        // Seven labels: two legend rows, so the picture is one row taller than with five.
        assert!(svg.contains(r#"height="336""#), "{}", &svg[..200]);
        let five = super::svg(&series[..5], &[], 2_000_000);
        assert!(five.contains(r#"height="324""#));
    }
}
