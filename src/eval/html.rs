//! The report as one self-contained HTML page: inline CSS and SVG, no script, no network (no
//! external URL at all; thumbnails are `data:` URIs), readable without JavaScript.
//!
//! Every text that comes from the report (labels, names, paths) is escaped, in elements and in
//! attributes; element ids built from labels keep only `[A-Za-z0-9_-]`. Undefined figures
//! (`None`, NaN, infinities) show as an en dash.

mod svg;

use std::fmt::Write as _;

use super::compare::Comparison;
use super::report::{EvalReport, Example, ExampleKind, LabelReport, StreamReport};
use svg::Plot;

/// Renders `report` (and its comparison with a baseline, when given) as one HTML page.
pub fn render(report: &EvalReport, comparison: Option<&Comparison>) -> String {
    let mut out = String::with_capacity(64 << 10);
    let title = format!(
        "prescreen eval: {} {} ({}) on {}",
        report.model.id, report.model.version, report.model.variant, report.set.path
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    header(&mut out, report);
    summary(&mut out, report);
    cost(&mut out, report);
    if let Some(c) = comparison {
        compared(&mut out, c);
    }
    let ids = label_ids(report.labels.iter().map(|l| l.label.as_str()));
    for (l, lid) in report.labels.iter().zip(&ids) {
        label_figures(&mut out, report, l, lid);
    }
    out.push_str("<h2>Streams</h2>\n");
    for (i, s) in report.streams.iter().enumerate() {
        timeline(&mut out, report, i, s);
    }
    examples(&mut out, &report.examples);
    out.push_str("</body></html>\n");
    out
}

const STYLE: &str = "body{font:14px/1.4 sans-serif;margin:1.5em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}\
td.l,th.l{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top}\
figcaption{font-size:12px;max-width:420px}\
figure[id^=timeline-] figcaption{max-width:1000px}.up{color:#0550ae}.down{color:#953800}\
ul.names{columns:3;font-size:12px}.cards{display:flex;flex-wrap:wrap;gap:8px}\
.card{border:1px solid #ccc;padding:4px;width:170px;font-size:12px}\
.card img,.nothumb{width:160px;height:120px;object-fit:contain;background:#ddd;display:block}\
svg text{font:11px sans-serif}";

/// HTML-escapes `s` for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An element id from a label: `[A-Za-z0-9_-]` kept, anything else `_`.
pub fn id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

const DASH: &str = "<span title=\"not defined: no positives or no negatives\">\u{2013}</span>";

/// A number with `digits` decimals, or the dash when undefined.
fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => DASH.into(),
    }
}

/// A number with its sign always written (`+0.0100`; zero has none), or the dash when undefined.
fn signed(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(0.0) => format!("{:.digits$}", 0.0),
        Some(v) if v.is_finite() => format!("{v:+.digits$}"),
        _ => DASH.into(),
    }
}

/// A fraction as a percentage (`0.95` as `95%`), or the dash when undefined.
fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{}%", num(Some(v * 100.0), 0))
    } else {
        DASH.into()
    }
}

/// An `f32` from the report with `digits` decimals, or the dash when undefined.
fn num32(v: f32, digits: usize) -> String {
    num(Some(f64::from(v)), digits)
}

fn header(out: &mut String, r: &EvalReport) {
    let m = &r.model;
    let s = &r.settings;
    let _ = writeln!(
        out,
        "<p>Model <b>{}</b> {} ({}, sha256 {}…), labels {}.<br>Policy {} (version {}).<br>\
         Set {}: {} stream(s), {} image(s).<br>Segments match at {} overlap; sweep target \
         recall {}, grid step {}; {} bins; false-flag intervals at {} confidence.</p>",
        escape(&m.id),
        escape(&m.version),
        escape(&m.variant),
        escape(m.sha256.get(..12).unwrap_or(&m.sha256)),
        escape(&m.labels.join(", ")),
        escape(&r.policy.path),
        escape(&r.policy.version),
        escape(&r.set.path),
        r.set.streams,
        r.set.images,
        percent(s.min_overlap),
        num(Some(s.target_recall), 2),
        num(Some(s.sweep_step), 3),
        s.bins,
        percent(s.confidence)
    );
}

fn summary(out: &mut String, r: &EvalReport) {
    out.push_str(
        "<h2>Summary</h2>\n<table><tr><th class=\"l\">label</th><th>frames +/−</th>\
         <th>AP</th><th>ROC AUC</th><th>ECE</th><th>false flags per frame at enter</th>\
         <th>segment precision</th><th>segment recall</th><th>fragmentation</th>\
         <th>latency median ms</th><th>latency p95 ms</th><th>false flags</th>\
         <th>per clean stream-hour [interval]</th><th class=\"l\">proposal</th></tr>\n",
    );
    for l in &r.labels {
        let (f, s) = (&l.frames, &l.segments);
        let proposal = match &l.proposal {
            None => DASH.to_string(),
            Some(p) => {
                let mut text = format!(
                    "enter {}, exit {}: replay recall {}, {} false flag(s)",
                    num32(p.enter, 2),
                    num32(p.exit, 2),
                    num(Some(p.replay_recall), 3),
                    p.replay_false_flags,
                );
                if p.engine_recall.is_some() || p.engine_false_flags.is_some() {
                    let _ = write!(text, "; engine recall {}", num(p.engine_recall, 3));
                    if let Some(n) = p.engine_false_flags {
                        let _ = write!(text, ", {n} false flag(s)");
                    }
                    let _ = write!(text, ", {} per hour", num(p.engine_false_flags_per_hour, 2));
                }
                text
            }
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} [{}, {}]</td>\
             <td class=\"l\">{}</td></tr>",
            escape(&l.label),
            f.positives,
            f.negatives,
            num(f.average_precision, 3),
            num(f.roc_auc, 3),
            num(f.expected_calibration_error, 3),
            num(f.false_flag_rate_at_enter, 4),
            num(s.precision, 3),
            num(s.recall, 3),
            num(s.fragmentation, 2),
            num(s.latency_median_ms, 0),
            num(s.latency_p95_ms, 0),
            s.false_flags,
            num(s.false_flags_per_hour, 2),
            num(s.false_flags_per_hour_lower, 2),
            num(s.false_flags_per_hour_upper, 2),
            proposal
        );
    }
    out.push_str("</table>\n");
}

fn cost(out: &mut String, r: &EvalReport) {
    let c = &r.cost;
    let _ = writeln!(
        out,
        "<h2>Cost</h2>\n<table><tr><th>stream seconds</th><th>frames seen</th>\
         <th>frames scored</th><th>scored per stream-second</th>\
         <th>engine ms per stream-second</th><th>images scored</th>\
         <th>frames too blurred or small</th><th>images too blurred or small</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\
         <p>Engine time depends on the machine: compare it only between runs on one machine.</p>",
        num(Some(c.stream_seconds), 1),
        c.frames_seen,
        c.frames_scored,
        num(c.frames_scored_per_stream_second, 2),
        num(c.engine_ms_per_stream_second, 1),
        c.images_scored,
        c.frames_low_quality,
        c.images_low_quality
    );
}

fn compared(out: &mut String, c: &Comparison) {
    out.push_str(
        "<h2 id=\"baseline\">Compared with the baseline</h2>\n<p>Colour shows only the direction \
         of a change (<span class=\"up\">up</span>, <span class=\"down\">down</span>), not \
         whether it is better: for some figures lower is better.</p>\n<table><tr><th class=\"l\">\
         figure</th><th>baseline</th><th>this run</th><th>delta</th><th>relative</th></tr>\n",
    );
    for row in &c.rows {
        let class = if row.delta > 0.0 {
            " class=\"up\""
        } else if row.delta < 0.0 {
            " class=\"down\""
        } else {
            ""
        };
        let relative = match row.relative_delta.filter(|r| r.is_finite()) {
            Some(r) => signed(Some(r * 100.0), 1) + "%",
            None => DASH.into(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td{class}>{}</td><td{class}>{}</td>\
             </tr>",
            escape(&row.name),
            num(Some(row.baseline), 4),
            num(Some(row.current), 4),
            signed(Some(row.delta), 4),
            relative
        );
    }
    out.push_str("</table>\n");
    for (names, side) in [
        (&c.only_in_baseline, "Only in the baseline"),
        (&c.only_in_current, "Only in this run"),
    ] {
        if !names.is_empty() {
            let _ = write!(out, "<p>{side}:</p><ul class=\"names\">");
            for n in names {
                let _ = write!(out, "<li>{}</li>", escape(n));
            }
            out.push_str("</ul>\n");
        }
    }
}

/// Colours of the labels' score traces, by the label's place in the report.
const TRACE_COLOURS: [&str; 5] = ["#0969da", "#8250df", "#bf8700", "#1b7c83", "#57606a"];

/// Element ids for `labels`, in order: each label's [`id`], with `-2`, `-3`… appended when an
/// earlier label already took it (`a b` and `a_b` both sanitise to `a_b`).
fn label_ids<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken = std::collections::BTreeSet::new();
    labels
        .into_iter()
        .map(|label| {
            let base = id(label);
            let mut candidate = base.clone();
            let mut n = 1;
            while !taken.insert(candidate.clone()) {
                n += 1;
                candidate = format!("{base}-{n}");
            }
            candidate
        })
        .collect()
}

fn figure(out: &mut String, fig_id: &str, svg: &str, caption: &str) {
    let _ = writeln!(
        out,
        "<figure id=\"{fig_id}\">{svg}<figcaption>{caption}</figcaption></figure>"
    );
}

fn label_figures(out: &mut String, r: &EvalReport, l: &LabelReport, lid: &str) {
    let f = &l.frames;
    let name = escape(&l.label);
    let _ = writeln!(out, "<h2>Label {name}</h2>");
    // Precision/recall.
    let mut p = Plot::new("recall", "precision");
    p.line(f.pr_curve.iter().map(|c| (c.x, c.y)), "#1f6feb");
    figure(
        out,
        &format!("pr-{lid}"),
        &p.finish(),
        &format!(
            "{name}: precision against recall over all thresholds (frames); average precision {}.",
            num(f.average_precision, 3)
        ),
    );
    // ROC.
    let mut p = Plot::new("false-positive rate", "true-positive rate");
    if !f.roc_curve.is_empty() {
        p.dashed([(0.0, 0.0), (1.0, 1.0)], "#999");
    }
    p.line(f.roc_curve.iter().map(|c| (c.x, c.y)), "#1f6feb");
    figure(
        out,
        &format!("roc-{lid}"),
        &p.finish(),
        &format!("{name}: ROC curve (frames); area {}.", num(f.roc_auc, 3)),
    );
    // Reliability.
    let mut p = Plot::new("mean score", "fraction positive");
    let total: u64 = f.reliability.iter().map(|b| b.count).sum();
    if total > 0 {
        p.dashed([(0.0, 0.0), (1.0, 1.0)], "#999");
        for b in &f.reliability {
            if let (Some(rate), true) = (b.positive_rate, b.count > 0) {
                let opacity = 0.25 + 0.75 * (b.count as f64 / total as f64).sqrt();
                p.bar(b.lower, b.upper, rate, "#1f6feb", opacity);
                p.dot(
                    b.mean_score.unwrap_or((b.lower + b.upper) / 2.0),
                    rate,
                    "#b42318",
                );
            }
        }
    }
    figure(
        out,
        &format!("reliability-{lid}"),
        &p.finish(),
        &format!(
            "{name}: reliability diagram: per score bin, the fraction of positives (bar, darker \
             with more frames) and the bin's mean score (dot); a calibrated model follows the \
             diagonal. ECE {}, MCE {}.",
            num(f.expected_calibration_error, 3),
            num(f.maximum_calibration_error, 3)
        ),
    );
    // Histograms.
    let mut p = Plot::new("score", "frames (each normalised to its maximum)");
    let bins = f.histogram_positives.len().max(f.histogram_negatives.len());
    for (counts, colour, shift) in [
        (&f.histogram_negatives, "#1a7f37", 0.0),
        (&f.histogram_positives, "#b42318", 0.5),
    ] {
        let max = counts.iter().copied().max().unwrap_or(0);
        if max == 0 {
            continue;
        }
        for (i, &c) in counts.iter().enumerate() {
            let w = 1.0 / bins as f64;
            let x0 = i as f64 * w + shift * w;
            p.bar(x0, x0 + w / 2.0, c as f64 / max as f64, colour, 0.8);
        }
    }
    if let Some(t) = r.policy.thresholds.iter().find(|t| t.label == l.label) {
        if f.positives + f.negatives > 0 {
            p.vertical(t.enter as f64, "#000", "enter");
        }
    }
    figure(
        out,
        &format!("histogram-{lid}"),
        &p.finish(),
        &format!(
            "{name}: score histograms of negatives (green, {}) and positives (red, {}), each \
             scaled to its own largest bin; the line is the policy's enter threshold.",
            f.negatives, f.positives
        ),
    );
}

fn timeline(out: &mut String, r: &EvalReport, index: usize, s: &StreamReport) {
    let seconds = (s.duration_us as f64 / 1e6).max(1e-3);
    let mut p = Plot::wide("stream time (s)", "score", seconds);
    for t in &s.truths {
        p.band(
            t.start_us as f64 / 1e6,
            t.end_us as f64 / 1e6,
            0.0,
            1.0,
            "#f2c94c",
            0.45,
        );
    }
    for g in &s.segments {
        let colour = if g.matched { "#1a7f37" } else { "#cf222e" };
        p.band(
            g.start_us as f64 / 1e6,
            g.end_us as f64 / 1e6,
            1.02,
            1.1,
            colour,
            0.9,
        );
    }
    let colour_of = |k: usize, label: &str| {
        let k = r.labels.iter().position(|l| l.label == label).unwrap_or(k);
        TRACE_COLOURS[k % TRACE_COLOURS.len()]
    };
    for (k, trace) in s.traces.iter().enumerate() {
        let colour = colour_of(k, &trace.label);
        p.line(
            trace
                .points
                .iter()
                .map(|&(t, v)| (t as f64 / 1e6, v as f64)),
            colour,
        );
        if let Some(th) = r.policy.thresholds.iter().find(|t| t.label == trace.label) {
            p.horizontal(th.enter as f64, colour, "enter");
            p.horizontal(th.exit as f64, colour, "exit");
        }
    }
    let labels: Vec<String> = (s.traces.iter().enumerate())
        .map(|(k, t)| {
            format!(
                "<span style=\"color:{}\">\u{25a0} {}</span>",
                colour_of(k, &t.label),
                escape(&t.label)
            )
        })
        .collect();
    let caption = format!(
        "{}: {:.1} s, {} frames seen, {} scored, {} segment(s). Scores of {} over time, with \
         each label's enter and exit thresholds dashed; ground truth shaded yellow; segments \
         above the plot, green when they match a truth, red when they overlap none (false \
         flags).",
        escape(&s.name),
        seconds,
        s.frames_seen,
        s.frames_scored,
        s.segments.len(),
        labels.join(", ")
    );
    figure(out, &format!("timeline-{index}"), &p.finish(), &caption);
}

fn examples(out: &mut String, examples: &[Example]) {
    out.push_str("<h2>Worst false flags and misses</h2>\n");
    if examples.is_empty() {
        out.push_str("<p>None.</p>\n");
        return;
    }
    for (kind, title) in [
        (
            ExampleKind::FalseFlag,
            "False flags (segments overlapping no truth)",
        ),
        (ExampleKind::Miss, "Misses (truths no segment matched)"),
        (ExampleKind::FlaggedImage, "Clean images at or above enter"),
        (ExampleKind::MissedImage, "Positive images below enter"),
    ] {
        let of_kind: Vec<&Example> = examples.iter().filter(|e| e.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h3>{title}</h3><div class=\"cards\">");
        for e in of_kind {
            let picture = match &e.thumbnail_jpeg_base64 {
                Some(b64) => format!(
                    "<img alt=\"evidence\" src=\"data:image/jpeg;base64,{}\">",
                    escape(b64)
                ),
                None => "<div class=\"nothumb\">no thumbnail</div>".into(),
            };
            let span = if e.end_us > e.start_us {
                format!(
                    "{:.2}–{:.2} s, ",
                    e.start_us as f64 / 1e6,
                    e.end_us as f64 / 1e6
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "<div class=\"card\">{picture}<b>{}</b> {}<br>{span}score {}</div>",
                escape(&e.label),
                escape(&e.source),
                num(Some(e.score as f64), 3)
            );
        }
        out.push_str("</div>\n");
    }
}

#[cfg(test)]
mod tests;
