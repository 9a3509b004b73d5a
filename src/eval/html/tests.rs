use super::*;
use crate::eval::compare::{compare, ComparisonRow};
use crate::eval::report::*;
use std::collections::BTreeMap;

fn frames(positives: u64, curve: bool) -> FrameFigures {
    let point = |x: f64, y: f64| CurvePoint {
        threshold: Some(0.5),
        x,
        y,
    };
    FrameFigures {
        positives,
        negatives: 10,
        average_precision: curve.then_some(0.9),
        roc_auc: if curve { Some(0.95) } else { Some(f64::NAN) },
        expected_calibration_error: Some(0.05),
        maximum_calibration_error: None,
        negatives_at_enter: 1,
        false_flag_rate_at_enter: Some(0.1),
        positives_below_enter: 0,
        pr_curve: if curve {
            vec![point(0.0, 1.0), point(0.5, 0.9), point(1.0, 0.6)]
        } else {
            vec![]
        },
        roc_curve: if curve {
            vec![point(0.0, 0.0), point(0.2, 0.8), point(1.0, 1.0)]
        } else {
            vec![]
        },
        reliability: vec![
            ReliabilityBin {
                lower: 0.0,
                upper: 0.5,
                count: 8,
                mean_score: Some(0.1),
                positive_rate: Some(0.0),
            },
            ReliabilityBin {
                lower: 0.5,
                upper: 1.0,
                count: 2,
                mean_score: Some(0.9),
                positive_rate: Some(1.0),
            },
        ],
        histogram_positives: vec![0, positives],
        histogram_negatives: vec![9, 1],
    }
}

fn segments() -> SegmentFigures {
    SegmentFigures {
        truths: 2,
        segments: 3,
        matched_truths: 2,
        matched_segments: 2,
        precision: Some(2.0 / 3.0),
        recall: Some(1.0),
        fragmentation: Some(1.0),
        latency_median_ms: Some(300.0),
        latency_p95_ms: Some(f64::INFINITY),
        false_flags: 1,
        clean_hours: 0.01,
        false_flags_per_hour: Some(100.0),
        false_flags_per_hour_lower: Some(2.5),
        false_flags_per_hour_upper: Some(557.0),
    }
}

const ODD: &str = "<b>&\"'";

fn report() -> EvalReport {
    let label = |name: &str, positives: u64| LabelReport {
        label: name.into(),
        frames: frames(positives, positives > 0),
        segments: segments(),
        proposal: (positives > 0).then_some(Proposal {
            enter: 0.9,
            exit: 0.6,
            replay_recall: 1.0,
            replay_false_flags: 0,
            engine_recall: Some(1.0),
            engine_false_flags: Some(0),
            engine_false_flags_per_hour: Some(0.0),
        }),
    };
    let stream = |name: &str| StreamReport {
        name: name.into(),
        duration_us: 10_000_000,
        frames_seen: 300,
        frames_scored: 50,
        truths: vec![LabelledInterval {
            label: "red".into(),
            start_us: 2_000_000,
            end_us: 4_000_000,
        }],
        segments: vec![PredictedSegment {
            label: "red".into(),
            start_us: 2_100_000,
            end_us: 4_000_000,
            opened_us: 2_400_000,
            peak: 0.99,
            matched: true,
        }],
        traces: vec![ScoreTrace {
            label: "red".into(),
            points: vec![(0, 0.1), (2_200_000, 0.95), (9_000_000, 0.05)],
        }],
    };
    let example = |kind, thumb: Option<&str>| Example {
        kind,
        label: ODD.into(),
        source: "streams/<one>.y4m".into(),
        start_us: 1_000_000,
        end_us: 2_000_000,
        score: 0.97,
        thumbnail_jpeg_base64: thumb.map(String::from),
    };
    EvalReport {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        model: ModelInfo {
            id: "redness".into(),
            version: "1.0.0".into(),
            variant: "float".into(),
            sha256: "ab".repeat(32),
            labels: vec!["other".into(), "red".into(), ODD.into()],
        },
        policy: PolicyInfo {
            path: "models/policies/redness.toml".into(),
            version: "v1".into(),
            thresholds: vec![Thresholds {
                label: "red".into(),
                enter: 0.8,
                exit: 0.5,
            }],
        },
        set: SetInfo {
            path: "set".into(),
            streams: 2,
            images: 4,
        },
        settings: Settings {
            min_overlap: 0.5,
            target_recall: 0.9,
            bins: 2,
            sweep_step: 0.05,
            confidence: 0.95,
        },
        labels: vec![label("red", 5), label(ODD, 0)],
        streams: vec![stream("streams/a.y4m"), stream("streams/b.y4m")],
        cost: Cost {
            stream_seconds: 20.0,
            frames_seen: 600,
            frames_scored: 100,
            frames_scored_per_stream_second: Some(5.0),
            engine_ms_per_stream_second: None,
            images_scored: 4,
            frames_low_quality: 7,
            images_low_quality: 1,
        },
        examples: vec![
            example(ExampleKind::FalseFlag, Some("AAAA")),
            example(ExampleKind::Miss, None),
        ],
    }
}

#[test]
fn escape_covers_the_five_characters() {
    assert_eq!(escape("<script>&\"'x"), "&lt;script&gt;&amp;&quot;&#39;x");
    assert_eq!(id("a b<c>-_9"), "a_b_c_-_9");
}

#[test]
fn every_figure_is_present_once_with_its_id() {
    let html = render(&report(), None);
    let odd = id(ODD);
    for fig in [
        "pr-red".to_string(),
        "roc-red".into(),
        "reliability-red".into(),
        "histogram-red".into(),
        format!("pr-{odd}"),
        format!("roc-{odd}"),
        format!("reliability-{odd}"),
        format!("histogram-{odd}"),
        "timeline-0".into(),
        "timeline-1".into(),
    ] {
        assert_eq!(
            html.matches(&format!("id=\"{fig}\"")).count(),
            1,
            "figure {fig}"
        );
    }
    // The label without positives has empty curves.
    assert!(html.contains("no data"));
}

#[test]
fn the_page_is_self_contained_and_escapes_report_text() {
    let html = render(&report(), None);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"));
    assert!(!html.contains(ODD));
    assert!(html.contains(&escape(ODD)));
    assert!(html.contains("streams/&lt;one&gt;.y4m"));
    assert!(!html.contains("NaN") && !html.contains("inf"));
    assert!(html.contains("data:image/jpeg;base64,AAAA"));
    assert!(html.contains("no thumbnail"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn the_comparison_appears_only_when_given() {
    let r = report();
    assert!(!render(&r, None).contains("Compared with the baseline"));
    let mut old: BTreeMap<String, f64> = r.figures();
    old.insert("red.segment.recall".into(), 0.5);
    old.insert("gone.figure".into(), 1.0);
    let c = compare(&old, &r.figures());
    let html = render(&r, Some(&c));
    assert!(html.contains("Compared with the baseline"));
    assert!(html.contains("red.segment.recall"));
    // 0.5 -> 1.0: up by 0.5, +100 %, coloured by its sign only.
    assert!(html.contains("<td class=\"up\">+0.5000</td><td class=\"up\">+100.0%</td>"));
    assert!(html.contains("Only in the baseline:</p><ul class=\"names\"><li>gone.figure</li>"));
    assert!(!html.contains("Only in this run"));
    // Unchanged figures carry no sign.
    assert!(html.contains("<td>0.0000</td><td>0.0%</td>"));
    assert!(!html.contains("+0.0000"));
}

#[test]
fn non_finite_figures_show_as_a_dash() {
    let mut r = report();
    r.settings.min_overlap = f64::NAN;
    r.settings.target_recall = f64::INFINITY;
    r.cost.stream_seconds = f64::NEG_INFINITY;
    r.cost.frames_scored_per_stream_second = Some(f64::NAN);
    r.policy.thresholds[0].enter = f32::NAN;
    let l = &mut r.labels[0];
    l.proposal.as_mut().unwrap().enter = f32::INFINITY;
    l.proposal.as_mut().unwrap().replay_recall = f64::NAN;
    l.frames.pr_curve[1].y = f64::NAN;
    l.frames.reliability[0].mean_score = Some(f64::INFINITY);
    l.frames.reliability[1].positive_rate = Some(f64::NAN);
    l.segments.false_flags_per_hour_upper = Some(f64::NAN);
    r.examples[0].score = f32::NAN;
    let c = Comparison {
        rows: vec![ComparisonRow {
            name: "x".into(),
            baseline: f64::NAN,
            current: f64::INFINITY,
            delta: f64::NAN,
            relative_delta: Some(f64::NEG_INFINITY),
        }],
        ..Comparison::default()
    };
    let html = render(&r, Some(&c));
    let lower = html.to_lowercase();
    assert!(!lower.contains("nan") && !lower.contains("inf"));
    assert!(html.contains(DASH));
    // A relative delta that is undefined is a dash, not a dash with a per cent sign.
    assert!(!html.contains(&format!("{DASH}%")));
}

#[test]
fn labels_that_sanitise_alike_get_distinct_ids() {
    assert_eq!(
        label_ids(["a b", "a_b", "a-2", "a?b", ""]),
        ["a_b", "a_b-2", "a-2", "a_b-3", ""]
    );
    let mut r = report();
    r.labels[1].label = "r d".into();
    r.labels.push(r.labels[1].clone());
    let html = render(&r, None);
    for fig in ["pr-r_d", "pr-r_d-2", "histogram-r_d-2"] {
        assert_eq!(html.matches(&format!("id=\"{fig}\"")).count(), 1, "{fig}");
    }
}

#[test]
fn ticks_fall_on_round_numbers() {
    let labels = |max| svg::ticks(max).into_iter().map(|t| t.1).collect::<Vec<_>>();
    assert_eq!(labels(1.0), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    assert_eq!(labels(10.0), ["0", "2", "4", "6", "8", "10"]);
    assert_eq!(labels(7.3), ["0", "2", "4", "6"]);
    assert_eq!(labels(0.03), ["0.00", "0.01", "0.02", "0.03"]);
    assert_eq!(labels(f64::NAN), ["0"]);
    // The timeline of a 10 s stream is ticked in whole seconds.
    let html = render(&report(), None);
    assert!(html.contains(">10</text>"));
}
