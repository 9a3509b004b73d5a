//! A small plot for the report's figures: data coordinates mapped onto an SVG's pixels, axes with
//! ticks, and the few marks the figures use. Numbers only; the caller escapes nothing here
//! because nothing here is text from the report but the axis titles, which are constants.

use std::fmt::Write as _;

/// A plot being drawn: `x` over `[0, x_max]`, `y` over `[0, 1]` (with a little room above for
/// the timelines' segment bars).
pub struct Plot {
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
    body: String,
    x_title: &'static str,
    y_title: &'static str,
    marks: usize,
}

const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 36.0;

impl Plot {
    /// A square plot of `[0, 1]` by `[0, 1]`.
    pub fn new(x_title: &'static str, y_title: &'static str) -> Self {
        Self::sized(x_title, y_title, 320.0, 280.0, 1.0, 1.0)
    }

    /// A wide plot for a timeline of `seconds`, with room above 1.0 for segment bars.
    pub fn wide(x_title: &'static str, y_title: &'static str, seconds: f64) -> Self {
        Self::sized(x_title, y_title, 1100.0, 220.0, seconds, 1.12)
    }

    fn sized(
        x_title: &'static str,
        y_title: &'static str,
        width: f64,
        height: f64,
        x_max: f64,
        y_max: f64,
    ) -> Self {
        Self {
            width,
            height,
            x_max: if x_max.is_finite() && x_max > 0.0 {
                x_max
            } else {
                1.0
            },
            y_max,
            body: String::new(),
            x_title,
            y_title,
            marks: 0,
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + x.clamp(0.0, self.x_max) / self.x_max * (self.width - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let h = self.height - TOP - BOTTOM;
        TOP + h - y.clamp(0.0, self.y_max) / self.y_max * h
    }

    /// A polyline through the finite points.
    pub fn line(&mut self, points: impl IntoIterator<Item = (f64, f64)>, colour: &str) {
        let mut d = String::new();
        for (x, y) in points {
            if x.is_finite() && y.is_finite() {
                let _ = write!(d, "{:.1},{:.1} ", self.px(x), self.py(y));
            }
        }
        if !d.is_empty() {
            let _ = write!(
                self.body,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                d.trim_end()
            );
            self.marks += 1;
        }
    }

    /// A dashed reference line (not counted as data).
    pub fn dashed(&mut self, points: [(f64, f64); 2], colour: &str) {
        let [(x0, y0), (x1, y1)] = points;
        let _ = write!(
            self.body,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" \
             stroke-dasharray=\"4 3\"/>",
            self.px(x0),
            self.py(y0),
            self.px(x1),
            self.py(y1)
        );
    }

    /// A bar over `[x0, x1]` from 0 to `y`.
    pub fn bar(&mut self, x0: f64, x1: f64, y: f64, colour: &str, opacity: f64) {
        self.band(x0, x1, 0.0, y, colour, opacity);
    }

    /// A filled rectangle over `[x0, x1]` by `[y0, y1]`.
    pub fn band(&mut self, x0: f64, x1: f64, y0: f64, y1: f64, colour: &str, opacity: f64) {
        if ![x0, x1, y0, y1, opacity].iter().all(|v| v.is_finite()) {
            return;
        }
        let (l, r) = (self.px(x0), self.px(x1));
        let (t, b) = (self.py(y1), self.py(y0));
        let _ = write!(
            self.body,
            "<rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" \
             fill-opacity=\"{opacity:.2}\"/>",
            (r - l).max(1.0),
            (b - t).max(0.5)
        );
        self.marks += 1;
    }

    /// A dot at `(x, y)`.
    pub fn dot(&mut self, x: f64, y: f64, colour: &str) {
        if x.is_finite() && y.is_finite() {
            let _ = write!(
                self.body,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                self.px(x),
                self.py(y)
            );
        }
    }

    /// A vertical rule at `x`, named.
    pub fn vertical(&mut self, x: f64, colour: &str, name: &'static str) {
        if x.is_finite() {
            let px = self.px(x);
            // The name on the side with more room, so that it stays inside the plot.
            let (text_x, anchor) = if px > self.width / 2.0 {
                (px - 3.0, "end")
            } else {
                (px + 3.0, "start")
            };
            let _ = write!(
                self.body,
                "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" \
                 stroke=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                 text-anchor=\"{anchor}\">{name}</text>",
                self.py(0.0),
                text_x,
                TOP + 10.0
            );
        }
    }

    /// A horizontal rule at `y`, named (`exit` at the left end, so that it never covers an
    /// `enter` at the same height, which is named at the right end).
    pub fn horizontal(&mut self, y: f64, colour: &str, name: &'static str) {
        if y.is_finite() {
            let py = self.py(y);
            let text_x = if name == "exit" {
                LEFT + 4.0
            } else {
                self.width - RIGHT - 34.0
            };
            let _ = write!(
                self.body,
                "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" \
                 stroke=\"{colour}\" stroke-dasharray=\"2 3\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                 fill=\"{colour}\">{name}</text>",
                self.width - RIGHT,
                text_x,
                py - 2.0
            );
        }
    }

    /// The SVG element: axes, ticks, titles, then the marks (or "no data" when there are none).
    pub fn finish(self) -> String {
        let mut s = format!(
            "<svg width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" role=\"img\">",
            w = self.width,
            h = self.height
        );
        let (x0, y0) = (self.px(0.0), self.py(0.0));
        let (x1, y1) = (self.px(self.x_max), self.py(1.0));
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
             stroke=\"#ccc\"/>",
            x1 - x0,
            y0 - y1
        );
        for (v, label) in ticks(1.0) {
            let py = self.py(v);
            let _ = write!(
                s,
                "<line x1=\"{:.1}\" y1=\"{py:.1}\" x2=\"{x0:.1}\" y2=\"{py:.1}\" stroke=\"#888\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                x0 - 4.0,
                LEFT - 6.0,
                py + 4.0
            );
        }
        for (v, label) in ticks(self.x_max) {
            let px = self.px(v);
            let _ = write!(
                s,
                "<line x1=\"{px:.1}\" y1=\"{y0:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                y0 + 4.0,
                y0 + 15.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text transform=\"translate(11 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            (x0 + x1) / 2.0,
            self.height - 4.0,
            self.x_title,
            (y0 + y1) / 2.0,
            self.y_title
        );
        if self.marks == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\">no data</text>",
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0
            );
        }
        s.push_str(&self.body);
        s.push_str("</svg>");
        s
    }
}

/// Ticks over `[0, max]` at a round step (1, 2 or 5 times a power of ten, about five of them),
/// each with its label at the step's precision.
pub fn ticks(max: f64) -> Vec<(f64, String)> {
    if !(max.is_finite() && max > 0.0) {
        return vec![(0.0, "0".into())];
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = magnitude
        * match raw / magnitude {
            n if n <= 1.0 => 1.0,
            n if n <= 2.0 => 2.0,
            n if n <= 5.0 => 5.0,
            _ => 10.0,
        };
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    let count = (max / step + 1e-9).floor() as usize;
    (0..=count)
        .map(|k| {
            let v = k as f64 * step;
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}
