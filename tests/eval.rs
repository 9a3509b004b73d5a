//! `prescreen eval` against sets whose ground truth is known by construction: the test classifier
//! (models/redness) on streams with red intervals and on red and clean images. The real engine,
//! the real binary, real files; the HTML report rendered by headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prescreen::eval::generate::{make_set, SetKind, RED_STREAMS};
use prescreen::eval::report::{EvalReport, ExampleKind, ReadError};
use prescreen::eval::run::{evaluate, proposed_policy_toml, EvalOptions, Sources};
use prescreen::eval::set::{LabelledSet, SetError};
use prescreen_runtime::inference::model::Model;
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::policy::Policy;

fn redness() -> (Model, Policy) {
    let root = common::root();
    let model = Model::load_dir(
        root.join("models/redness"),
        Variant::Float,
        &prescreen_runtime::LoadOptions::default(),
    )
    .expect("models/redness is built by `make model`");
    let policy = Policy::load(root.join("models/policies/redness.toml")).unwrap();
    (model, policy)
}

fn prescreen() -> Command {
    let mut c = common::command(env!("CARGO_BIN_EXE_prescreen"));
    c.current_dir(common::root()).env_remove("RUST_LOG");
    c
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// The generated redness set: three 20-second streams (two with red intervals, one clean) and
/// twenty photographs, half tinted red.
#[test]
fn eval_measures_the_redness_set_as_it_was_built() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root();
    make_set(
        dir.path(),
        SetKind::Redness,
        &root.join(prescreen::PHOTO_DIR),
        160,
        90,
        1.0,
    )
    .unwrap();
    let set = LabelledSet::open(dir.path()).unwrap();
    assert_eq!(set.streams.len(), RED_STREAMS.len());
    assert_eq!(set.images.len(), 20);
    let (model, policy) = redness();
    let sources = Sources {
        set: "redness-set",
        policy: "models/policies/redness.toml",
    };
    let report = evaluate(&model, &policy, &set, &sources, &EvalOptions::default()).unwrap();

    assert_eq!(report.labels.len(), 1);
    let red = &report.labels[0];
    assert_eq!(red.label, "red");
    // Frame level: red frames and images score high, the others low.
    let f = &red.frames;
    assert_eq!(f.positives + f.negatives, report.cost.frames_scored + 20);
    assert!(f.positives > 20 && f.negatives > 20, "{f:?}");
    assert!(f.roc_auc.unwrap() > 0.95, "ROC AUC {:?}", f.roc_auc);
    assert!(f.average_precision.unwrap() > 0.9);
    assert_eq!(
        f.histogram_positives.iter().sum::<u64>() + f.histogram_negatives.iter().sum::<u64>(),
        f.positives + f.negatives
    );
    assert_eq!(f.reliability.len(), 10);
    // Segment level: every red interval is found, soon after it starts.
    let s = &red.segments;
    assert_eq!(s.truths, 3);
    assert_eq!(s.matched_truths, 3, "{s:?}");
    assert_eq!(s.recall, Some(1.0));
    // The policy samples at 5 fps and needs 300 ms above `enter`: an opening within a second.
    let p95 = s.latency_p95_ms.unwrap();
    assert!((0.0..1000.0).contains(&p95), "latency p95 {p95} ms");
    assert!(s.clean_hours > 0.0);
    assert_eq!(
        s.false_flags_per_hour.unwrap(),
        s.false_flags as f64 / s.clean_hours
    );
    assert!(s.false_flags_per_hour_upper.unwrap() > s.false_flags_per_hour.unwrap());
    // The proposal reaches the target in the replay and is run through the engine again.
    let proposal = red.proposal.as_ref().expect("a proposal");
    assert!(proposal.replay_recall >= 0.9);
    assert!(proposal.exit <= proposal.enter);
    assert!(proposal.engine_recall.is_some() && proposal.engine_false_flags.is_some());
    // Streams: the timelines' data, relative to each stream's start.
    let two = &report.streams[0];
    assert_eq!(two.truths.len(), 2);
    assert_eq!(two.truths[0].start_us, 4_000_000);
    assert!(two
        .segments
        .iter()
        .any(|g| g.matched && g.start_us < 7_000_000));
    assert_eq!(two.duration_us, 20_000_000);
    assert_eq!(report.streams[2].truths.len(), 0);
    // Cost: the policy's sampling (5 fps, bursts to 10, scene gate) decides how much is scored.
    assert_eq!(report.cost.frames_seen, 3 * 600);
    let per_second = report.cost.frames_scored_per_stream_second.unwrap();
    assert!((1.0..=10.5).contains(&per_second), "{per_second} frames/s");
    assert_eq!(report.cost.stream_seconds, 60.0);
    // Examples carry thumbnails.
    for e in &report.examples {
        assert!(
            e.thumbnail_jpeg_base64.is_some(),
            "{:?} without a thumbnail",
            e.kind
        );
        if e.kind == ExampleKind::FalseFlag {
            assert!(!report.streams.iter().any(|st| st.truths.iter().any(|t| {
                st.name == e.source && t.start_us < e.end_us && e.start_us < t.end_us
            })));
        }
    }
    // The proposed policy loads, with the proposed thresholds and the figures in its comment.
    let original =
        std::fs::read_to_string(common::root().join("models/policies/redness.toml")).unwrap();
    let proposed = proposed_policy_toml(&original, &report).unwrap();
    let parsed = Policy::parse(&proposed).unwrap();
    assert_eq!(parsed.labels["red"].enter, proposal.enter);
    assert_eq!(parsed.labels["red"].exit, proposal.exit);
    assert!(parsed.version.ends_with("-eval"));
    assert!(proposed.starts_with("# Proposed by `prescreen eval`"));
    // The JSON goes back and forth.
    let json = serde_json::to_vec(&report).unwrap();
    let back: EvalReport = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.figures(), report.figures());
    assert_eq!(back.figures()["red.segment.recall"], 1.0);
}

fn png(path: &Path, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    prescreen::eval::generate::flat(64, 48, rgb)
        .save(path)
        .unwrap();
}

/// A hand-written set: one stream with a red interval the file marks too late (so the engine's
/// segment opens before the truth), per-label image folders and a CSV manifest.
fn hand_written_set(dir: &Path) {
    std::fs::create_dir_all(dir.join("streams")).unwrap();
    common::red_stream(&dir.join("streams/one.y4m"), 8, (2.0, 5.0));
    png(&dir.join("images/red/a.png"), [230, 20, 20]);
    png(&dir.join("images/red/b.png"), [200, 60, 40]);
    png(&dir.join("images/clean/c.png"), [20, 200, 20]);
    png(&dir.join("images/clean/d.png"), [120, 120, 120]);
    png(&dir.join("more/e.png"), [250, 0, 0]);
    png(&dir.join("more/f.png"), [0, 0, 250]);
    std::fs::write(
        dir.join("more.csv"),
        "path,labels\nmore/e.png,red\nmore/f.png,\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("eval-set.toml"),
        r#"format = "prescreen-eval-set"
version = 1

[[images]]
folder = "images"

[[images]]
manifest = "more.csv"

[[streams]]
path = "streams/one.y4m"
truth = [{ label = "red", start_s = 2.5, end_s = 5.0 }]
"#,
    )
    .unwrap();
}

/// The command end to end: results written, a second run compared with the first, and the HTML
/// report rendered by headless Chromium with every figure present.
#[test]
fn the_eval_command_writes_compares_and_renders_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    hand_written_set(&set);
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let run = |out: &Path, policy: &Path, baseline: Option<&Path>| -> Output {
        let mut c = prescreen();
        c.arg("eval")
            .arg(&set)
            .args(["--model-dir", "models/redness", "--policy"])
            .arg(policy)
            .arg("--out")
            .arg(out);
        if let Some(b) = baseline {
            c.arg("--baseline").arg(b);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "eval failed: {}", text(&o.stderr));
        o
    };
    let policy = common::root().join("models/policies/redness.toml");
    let o = run(&first, &policy, None);
    let stdout = text(&o.stdout);
    assert!(stdout.contains("red: segments 1 for 1 truths"), "{stdout}");
    for f in ["eval.json", "eval.html", "proposed-policy.toml"] {
        assert!(first.join(f).is_file(), "{f} missing");
    }
    let report = EvalReport::read(&first.join("eval.json")).unwrap();
    assert_eq!(report.set.images, 6);
    assert_eq!(report.labels[0].frames.positives, {
        // 3 red images + the stream's scored frames inside [2.5 s, 5 s).
        let st = &report.streams[0];
        3 + st.traces[0]
            .points
            .iter()
            .filter(|(t, _)| (2_500_000..5_000_000).contains(t))
            .count() as u64
    });
    // The segment opens before the truth starts: latency 0, not negative.
    assert_eq!(report.labels[0].segments.latency_median_ms, Some(0.0));

    // The proposed policy runs, compared with the first run.
    let o = run(
        &second,
        &first.join("proposed-policy.toml"),
        Some(&first.join("eval.json")),
    );
    let stdout = text(&o.stdout);
    assert!(stdout.contains("compared with the baseline"), "{stdout}");
    let html = std::fs::read_to_string(second.join("eval.html")).unwrap();
    assert!(html.contains("baseline"));

    // Headless Chromium renders the page; the figures are in the rendered document.
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: CI installs it (.ci/run)"
        );
        eprintln!("SKIPPED the rendering: no chromium on this machine (apt install chromium)");
        return;
    };
    let page = second.join("eval.html");
    let url = format!("file://{}", page.display());
    let profile = dir.path().join("chromium-profile");
    let headless = |extra: &[&str]| -> Output {
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = headless(&["--dump-dom"]);
    assert!(dom.status.success(), "chromium: {}", text(&dom.stderr));
    let dom = text(&dom.stdout);
    for id in [
        "pr-red",
        "roc-red",
        "reliability-red",
        "histogram-red",
        "timeline-0",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "figure {id} not rendered"
        );
    }
    assert!(dom.matches("<svg").count() >= 5);
    // A screenshot for people, kept out of git under target/.
    let shot = common::root().join("target/eval-report.png");
    let o = headless(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,3000",
    ]);
    assert!(
        o.status.success(),
        "chromium screenshot: {}",
        text(&o.stderr)
    );
    let png = image::open(&shot)
        .expect("the screenshot is a PNG")
        .to_rgb8();
    assert_eq!(png.dimensions(), (1280, 3000));
    // Not a blank page: many distinct colours.
    let mut colours: Vec<[u8; 3]> = png.pixels().step_by(97).map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 8, "the screenshot looks blank");
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// What is refused is refused before the run, with the reason, and nothing is written.
#[test]
fn eval_refuses_bad_sets_baselines_and_settings_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    png(&set.join("nudity/a.png"), [1, 2, 3]);
    png(&set.join("clean/b.png"), [1, 2, 3]);
    // A set naming a label the model does not have.
    let (model, policy) = redness();
    let opened = LabelledSet::open(&set).unwrap();
    let err = opened
        .check_labels(&model.manifest().output.labels)
        .unwrap_err();
    assert!(matches!(err, SetError::UnknownLabel { .. }), "{err:?}");
    let sources = Sources {
        set: "s",
        policy: "p",
    };
    let err = evaluate(&model, &policy, &opened, &sources, &EvalOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("nudity"), "{err:#}");

    let out = dir.path().join("out");
    let eval = |args: &[&str]| -> Output {
        prescreen()
            .arg("eval")
            .arg(&set)
            .args(["--model-dir", "models/redness"])
            .args(["--policy", "models/policies/redness.toml", "--out"])
            .arg(&out)
            .args(args)
            .output()
            .unwrap()
    };
    let o = eval(&[]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("nudity"), "{}", text(&o.stderr));
    // A baseline of another version.
    let old = dir.path().join("old.json");
    std::fs::write(&old, r#"{"format":"prescreen-eval-report","version":99}"#).unwrap();
    assert!(matches!(
        EvalReport::read(&old),
        Err(ReadError::Version { version: 99, .. })
    ));
    let o = eval(&["--baseline", old.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("version 99"),
        "{}",
        text(&o.stderr)
    );
    // Settings without a meaning.
    for bad in [
        ["--min-overlap", "0"],
        ["--target-recall", "2"],
        ["--bins", "0"],
    ] {
        let o = eval(&bad);
        assert!(!o.status.success(), "{bad:?} accepted");
        assert!(text(&o.stderr).contains(bad[0]), "{}", text(&o.stderr));
    }
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}
