//! `prescreen demo`: screens the sample stream (real photographs filmed by a simulated hand-held
//! camera) and prints a table per shot, or the segments under a policy.

use anyhow::Result;
use indicatif::ProgressBar;
use prescreen::stream::SampleStream;

use crate::args::ModelArgs;
use crate::engine_run::EngineRun;
use crate::progress::{progress, say};
use crate::run::Run;

/// The arguments of `prescreen demo`.
#[derive(clap::Args)]
pub(super) struct DemoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Seconds each photograph is on screen.
    #[arg(long, default_value_t = 1.0)]
    shot_seconds: f64,
    /// Screen every Nth frame.
    #[arg(long, default_value_t = 1)]
    every: u32,
    /// Tint these intervals of the stream red, in seconds (e.g. `4-7,12-14`): a stream with
    /// known flagged intervals for the test classifier (`--model-dir models/redness`).
    #[arg(long, value_parser = parse_intervals)]
    red: Option<Intervals>,
    /// Blur every frame along the camera's motion over this many pixels (a fast pan): out of
    /// focus frames, which the policy's quality gate keeps from being evidence.
    #[arg(long, default_value_t = 0)]
    motion_blur: u32,
}

impl DemoArgs {
    /// Runs the demo as the arguments say.
    pub(super) fn run(self) -> Result<()> {
        let Self {
            model,
            shot_seconds,
            every,
            red,
            motion_blur,
        } = self;
        demo(
            &model,
            shot_seconds,
            every,
            red.as_ref().map(|r| &r.0[..]),
            motion_blur,
        )
    }
}

/// Time intervals in seconds, as `--red` takes them (one value, so clap does not split it).
#[derive(Clone, Debug)]
struct Intervals(Vec<(f64, f64)>);

fn parse_intervals(s: &str) -> Result<Intervals, String> {
    s.split(',')
        .map(|part| {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| format!("{part:?} is not START-END"))?;
            let (a, b): (f64, f64) = (
                a.trim()
                    .parse()
                    .map_err(|_| format!("bad start in {part:?}"))?,
                b.trim()
                    .parse()
                    .map_err(|_| format!("bad end in {part:?}"))?,
            );
            if a >= 0.0 && b > a {
                Ok((a, b))
            } else {
                Err(format!("{part:?}: need 0 <= START < END"))
            }
        })
        .collect::<Result<_, _>>()
        .map(Intervals)
}

fn demo(
    args: &ModelArgs,
    shot_seconds: f64,
    every: u32,
    red: Option<&[(f64, f64)]>,
    motion_blur: u32,
) -> Result<()> {
    let mut stream = SampleStream::new(prescreen::PHOTO_DIR, 1920, 1080, 30, shot_seconds)?
        .with_red_intervals(red.unwrap_or_default())
        .with_motion_blur(motion_blur);
    if let Some(red) = red {
        eprintln!("red intervals (s): {red:?}");
    }
    if motion_blur > 1 {
        eprintln!("motion blur: {motion_blur} px, across in even shots, down in odd ones");
    }
    let total = stream.len();
    if let Some(policy) = &args.policy {
        eprintln!(
            "sample stream: {total} frames of 1920x1080 NV12 at 30 fps, through the live engine"
        );
        let mut run = EngineRun::new(args, policy)?;
        let bar = progress(total as u64);
        for i in 0..total {
            run.submit(&stream.frame(i)?, &bar)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        return run.finish(args.timeline.as_deref());
    }
    let mut run = Run::new(args)?;
    eprintln!(
        "sample stream: {} photographs, {total} frames of 1920x1080 NV12 at {} fps ({:.0} s), screening every {}",
        total / ((shot_seconds * stream.fps() as f64).round() as u32).max(1),
        stream.fps(),
        total as f64 / stream.fps() as f64,
        every.max(1)
    );
    eprintln!("per shot: the label with the highest mean probability, then each label's highest");
    let labels = run.labels.clone();
    println!("{}", shot_header(&labels));
    let bar = progress(total as u64);
    let (mut shot, mut shot_scores) = (String::new(), Vec::<Vec<f32>>::new());
    let flush = |shot: &str, scores: &[Vec<f32>], bar: &ProgressBar| {
        if !scores.is_empty() {
            say(bar, shot_row(shot, &labels, scores));
        }
    };
    for i in (0..total).step_by(every.max(1) as usize) {
        let name = stream.photo_name(i).to_string();
        if name != shot {
            flush(&shot, &shot_scores, &bar);
            shot = name;
            shot_scores.clear();
        }
        let frame = stream.frame(i)?;
        shot_scores.push(run.screen(&frame, &shot)?);
        bar.set_position(i as u64 + 1);
    }
    flush(&shot, &shot_scores, &bar);
    bar.finish_and_clear();
    run.finish()
}

/// Column width of one label in the demo's per-shot table.
fn label_width(label: &str) -> usize {
    label.len().max(6)
}

/// The demo's per-shot table header: shot, frames, top label, then one column per label.
fn shot_header(labels: &[String]) -> String {
    let mut line = format!("{:<20} {:>6}  {:<8}", "shot", "frames", "top");
    for l in labels {
        line.push_str(&format!(" {l:>w$}", w = label_width(l)));
    }
    line
}

/// One shot's row: how many frames were scored, the label with the highest mean probability
/// over them, and each label's highest probability. `scores` holds one probability vector per
/// frame (at least one), in `labels` order.
fn shot_row(shot: &str, labels: &[String], scores: &[Vec<f32>]) -> String {
    let mut max = vec![0f32; labels.len()];
    let mut sum = vec![0f64; labels.len()];
    for p in scores {
        for (i, &v) in p.iter().enumerate().take(labels.len()) {
            max[i] = max[i].max(v);
            sum[i] += f64::from(v);
        }
    }
    let top = (0..labels.len())
        .max_by(|&a, &b| sum[a].total_cmp(&sum[b]))
        .map_or("-", |i| labels[i].as_str());
    let mut line = format!("{shot:<20} {:>6}  {top:<8}", scores.len());
    for (l, m) in labels.iter().zip(&max) {
        line.push_str(&format!(" {m:>w$.4}", w = label_width(l)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{shot_header, shot_row};

    /// The top label is the one with the highest mean, which need not hold the highest single
    /// score; every column lines up under its header.
    #[test]
    fn the_shot_table_gives_the_top_label_by_mean_and_each_labels_highest() {
        let labels: Vec<String> = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]
            .map(String::from)
            .to_vec();
        let scores = [
            vec![0.2, 0.0, 0.8, 0.0, 0.0],
            vec![0.0, 0.0, 0.6, 0.3, 0.1],
            vec![0.0, 0.1, 0.0, 0.9, 0.0],
        ];
        let row = shot_row("coffee", &labels, &scores);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["coffee", "3", "Neutral", "0.2000", "0.1000", "0.8000", "0.9000", "0.1000"]
        );
        let header = shot_header(&labels);
        assert_eq!(header.len(), row.len());
        for l in &labels {
            let end = header.find(l.as_str()).unwrap() + l.len();
            assert_eq!(
                &row[end - 1..end],
                "0",
                "{l} column ends off its header:\n{header}\n{row}"
            );
        }
        let two = ["sfw".to_string(), "nsfw".to_string()];
        let row = shot_row("page", &two, &[vec![0.75, 0.25]]);
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["page", "1", "sfw", "0.7500", "0.2500"]
        );
        assert_eq!(shot_header(&two).len(), row.len());
    }
}
