//! Hostile configuration and files: every number of a policy and a manifest has a range and a
//! clear error; a policy never switches screening off silently; files that are not regular files
//! (FIFOs, devices, links to them) are refused at once instead of hanging or eating memory; and
//! every report the runtime builds is one its own JSON Schema accepts. TESTING.md lists each case.

mod common;

use std::path::Path;

use prescreen_runtime::inference::model::Model;
use prescreen_runtime::manifest::{Manifest, Variant};
use prescreen_runtime::policy::{Category, Policy};
use prescreen_runtime::reporting::outbox::{Outbox, OutboxOptions};
use prescreen_runtime::reporting::report::{
    ModelInfo, Report, ReportContext, JSON_SCHEMA, MAX_DEVICE_CLASS_CHARS, MAX_EVIDENCE,
    MAX_LABEL_CHARS, MAX_STREAM_ID_CHARS,
};
use prescreen_runtime::session::{Session, SessionConfig};
use prescreen_runtime::stream::engine::{Engine, EngineOptions, Thumbnail};
use prescreen_runtime::stream::segmenter::Segment;
use prescreen_runtime::{Error, ErrorKind};
use proptest::prelude::*;

fn default_policy() -> String {
    std::fs::read_to_string(common::root().join("models/policies/default.toml")).unwrap()
}

fn policy_with(from: &str, to: &str) -> Result<Policy, String> {
    let text = default_policy();
    assert!(text.contains(from), "default.toml has no {from:?}");
    Policy::parse(&text.replacen(from, to, 1))
}

/// Each absurd number is refused with an error that names what is wrong; the edges of each range
/// are accepted.
#[test]
fn policy_numbers_outside_their_ranges_are_refused_by_name() {
    let refused = [
        (
            "min_duration_ms = 1000",
            "min_duration_ms = 18446744073709551615",
            "min_duration_ms",
        ),
        ("pre_roll_ms = 1000", "pre_roll_ms = 3600001", "pre_roll_ms"),
        (
            "post_roll_ms = 1000",
            "post_roll_ms = 9223372036854775807",
            "post_roll_ms",
        ),
        (
            "merge_gap_ms = 3000",
            "merge_gap_ms = 3600001",
            "merge_gap_ms",
        ),
        (
            "max_interval_ms = 2000",
            "max_interval_ms = 18446744073709551615",
            "max_interval_ms",
        ),
        (
            "max_interval_ms = 2000",
            "max_interval_ms = 0",
            "max_interval_ms",
        ),
        ("base_fps = 2.0", "base_fps = 1e-300", "base_fps"),
        ("base_fps = 2.0", "base_fps = 0.0", "base_fps"),
        ("base_fps = 2.0", "base_fps = nan", "base_fps"),
        ("burst_fps = 6.0", "burst_fps = inf", "base_fps"),
        ("size = 192", "size = 100000", "evidence.size"),
        ("size = 192", "size = 8", "evidence.size"),
        ("thumbnails = 3", "thumbnails = 65", "evidence.thumbnails"),
        ("jpeg_quality = 80", "jpeg_quality = 0", "jpeg_quality"),
        ("threshold = 0.015", "threshold = nan", "threshold"),
        ("enter = 0.80", "enter = nan", "label nsfw"),
        ("window = 3", "window = 0", "window"),
        (
            "min_sharpness = 0.04",
            "min_sharpness = 0.5",
            "min_sharpness",
        ),
        (
            "min_sharpness = 0.04",
            "min_sharpness = -0.01",
            "min_sharpness",
        ),
        (
            "min_sharpness = 0.04",
            "min_sharpness = nan",
            "min_sharpness",
        ),
        ("min_side = 112", "min_side = 4000", "min_side"),
        (
            "version = \"default-2026-12-03.2\"",
            "version = \"\"",
            "version",
        ),
        (
            "[labels.nsfw]\nenter = 0.80\nexit = 0.50\nwatch = 0.30\ncategory = \"Explicit\"\n",
            "",
            "no label",
        ),
    ];
    for (from, to, named) in refused {
        match policy_with(from, to) {
            Err(e) => assert!(e.contains(named), "{to}: {e}"),
            Ok(_) => panic!("{to} was accepted"),
        }
    }
    for (from, to) in [
        ("min_duration_ms = 1000", "min_duration_ms = 3600000"),
        ("max_interval_ms = 2000", "max_interval_ms = 60000"),
        ("base_fps = 2.0", "base_fps = 0.1"),
        ("size = 192", "size = 512"),
        ("thumbnails = 3", "thumbnails = 64"),
        ("thumbnails = 3", "thumbnails = 0"),
        ("min_sharpness = 0.04", "min_sharpness = 0.05"),
        ("min_sharpness = 0.04", "min_sharpness = 0.0"),
        ("min_side = 112", "min_side = 200"),
    ] {
        policy_with(from, to).unwrap_or_else(|e| panic!("{to}: {e}"));
    }
    // The quality gate is optional: a policy without it judges every frame.
    let start = default_policy().find("[quality]").unwrap();
    let end = default_policy().find("[evidence]").unwrap();
    let mut without = default_policy();
    without.replace_range(start..end, "");
    assert!(!Policy::parse(&without).unwrap().quality.enabled);
    // A policy file that is not UTF-8 text is a policy error, not a panic.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(Policy::load(&path).unwrap_err().kind(), ErrorKind::Policy);
}

fn redness() -> Model {
    Model::load_dir(
        common::root().join("models/redness"),
        Variant::Float,
        &prescreen_runtime::LoadOptions::default(),
    )
    .unwrap()
}

/// A policy for another model's labels would flag nothing: the engine, and so every session and
/// the harness, refuses to start with it and names the label.
#[test]
fn a_policy_label_the_model_lacks_is_refused_at_start() {
    let policy = Policy::load(common::root().join("models/policies/default.toml")).unwrap();
    match Engine::start(
        &redness(),
        &policy,
        EngineOptions::default(),
        Box::new(|_| {}),
    ) {
        Err(e @ Error::PolicyLabel { .. }) => {
            assert_eq!(e.kind(), ErrorKind::Policy);
            let text = e.to_string();
            assert!(
                text.contains("\"nsfw\"") && text.contains("redness"),
                "{text}"
            );
        }
        other => panic!("expected a policy label error, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let config = SessionConfig::new(
        common::root().join("models/redness"),
        common::root().join("models/policies/default.toml"),
        dir.path(),
        "s",
    );
    let e = Session::open(&config, Box::new(|_| {})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Policy, "{e}");
}

/// The golden tolerance decides whether a wrong model is refused: it must be finite, above zero
/// and at most 0.1. Labels must be distinct, non-empty and printable.
#[test]
fn manifest_tolerances_and_labels_outside_their_ranges_are_refused() {
    for to in ["inf", "nan", "-1.0", "0.0", "0.5", "1e30"] {
        let text =
            common::manifest_variant(&[("tolerance = 0.0005", &format!("tolerance = {to}"))]);
        let e = Manifest::parse(&text).expect_err(to);
        assert!(e.contains("tolerance"), "{to}: {e}");
    }
    let text = common::manifest_variant(&[("tolerance = 0.0005", "tolerance = 0.1")]);
    Manifest::parse(&text).unwrap();
    for labels in [
        r#"["nsfw", "nsfw"]"#,
        r#"["", "nsfw"]"#,
        "[\"a\\u0007\", \"b\"]",
    ] {
        let text = common::manifest_variant(&[(
            "labels = [\"sfw\", \"nsfw\"]",
            &format!("labels = {labels}"),
        )]);
        assert!(Manifest::parse(&text).is_err(), "{labels} accepted");
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o600) }, 0);
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

/// A model file, a manifest or a policy that is a FIFO (opening it would wait for a writer
/// forever) or a link to /dev/zero (endless bytes) is an I/O error at once.
#[test]
fn model_manifest_and_policy_files_that_are_not_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read_to_string(common::root().join("models/redness/model.toml")).unwrap();
    std::fs::write(dir.path().join("model.toml"), &real).unwrap();
    let model = dir.path().join("redness.onnx");
    for hostile in ["fifo", "zero"] {
        let _ = std::fs::remove_file(&model);
        if hostile == "fifo" {
            mkfifo(&model);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &model).unwrap();
        }
        match Model::load_dir(
            dir.path(),
            Variant::Float,
            &prescreen_runtime::LoadOptions::default(),
        ) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{hostile}")
            }
            other => panic!("{hostile}: {other:?}"),
        }
    }
    let manifest_dir = tempfile::tempdir().unwrap();
    mkfifo(&manifest_dir.path().join("model.toml"));
    assert!(matches!(
        Manifest::load(manifest_dir.path()),
        Err(Error::Io { .. })
    ));
    let policy = dir.path().join("policy.toml");
    std::os::unix::fs::symlink("/dev/zero", &policy).unwrap();
    assert_eq!(Policy::load(&policy).unwrap_err().kind(), ErrorKind::Policy);
}

/// Files planted in the outbox's pending/ that are a FIFO or a link to /dev/zero are quarantined
/// when it opens; opening neither hangs nor reads them.
#[test]
fn outbox_files_that_are_not_regular_files_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    drop(Outbox::open(dir.path(), OutboxOptions::default()).unwrap());
    let pending = dir.path().join("pending");
    mkfifo(&pending.join(format!("{}.json", "a".repeat(32))));
    std::os::unix::fs::symlink(
        "/dev/zero",
        pending.join(format!("{}.json", "b".repeat(32))),
    )
    .unwrap();
    let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
    assert!(outbox.pending().is_empty());
    assert_eq!(outbox.metrics().quarantined, 2);
    assert_eq!(std::fs::read_dir(&pending).unwrap().count(), 0);
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Strings around a limit, with multi-byte characters (the schema counts characters).
fn text(max: usize) -> impl Strategy<Value = String> {
    (
        0..max + 3,
        prop::sample::select(vec!['a', 'é', '界', '\u{1F600}']),
    )
        .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect())
}

fn unit() -> impl Strategy<Value = f32> {
    prop_oneof![
        0.0f32..=1.0,
        Just(1.0000001f32),
        Just(-0.0000001f32),
        Just(f32::NAN)
    ]
}

prop_compose! {
    fn any_report()(
        stream_id in text(MAX_STREAM_ID_CHARS),
        label in text(MAX_LABEL_CHARS),
        device_class in text(MAX_DEVICE_CLASS_CHARS),
        peak in unit(),
        mean in unit(),
        start in 0u64..1 << 40,
        length in 0u64..1 << 30,
        evidence in prop::collection::vec((unit(), 0u32..4200, 0u32..4200), 0..MAX_EVIDENCE + 3),
        variant in prop::sample::select(vec!["float", "int8", "fp16"]),
        model_id in text(2),
        sha in prop::sample::select(vec!["ab".repeat(32), "AB".repeat(32), "ab".repeat(31), "zz".repeat(32)]),
        category in prop::option::of(prop::sample::select(Category::ALL.to_vec())),
    ) -> Report {
        Report {
            schema: "prescreen.segment-report/1".into(),
            report_id: "0123456789abcdef0123456789abcdef".into(),
            stream_id,
            created_unix_millis: 1_700_000_000_000,
            label,
            category,
            confidence: peak * 100.0,
            timestamp: start,
            start_timestamp_millis: start,
            end_timestamp_millis: start + length,
            duration_millis: length,
            peak_score: peak,
            peak_timestamp_millis: start,
            mean_score: mean,
            frames_scored: 3,
            stream_origin_us: -5,
            model: ModelInfo {
                id: model_id,
                version: "1".into(),
                variant: variant.into(),
                sha256: sha,
            },
            policy_version: "p".into(),
            runtime_version: "0.1.0".into(),
            device_class,
            evidence: evidence
                .into_iter()
                .enumerate()
                .map(|(i, (score, width, height))| prescreen_runtime::reporting::report::Evidence {
                    timestamp_millis: start + i as u64,
                    score,
                    width,
                    height,
                    jpeg_base64: None,
                })
                .collect(),
            thumbnails_dropped: 0,
        }
    }
}

/// A category outside Rekognition's level-1 taxonomy is refused by name, in a policy (with the
/// valid names listed) and in a report (by the runtime and by the schema alike); each valid name
/// is accepted by both and round-trips.
#[test]
fn categories_outside_the_taxonomy_are_refused() {
    let policy = std::fs::read_to_string(common::root().join("models/policies/default.toml"))
        .unwrap()
        .replace("category = \"Explicit\"", "category = \"Suggestive\"");
    let err = Policy::parse(&policy).unwrap_err();
    assert!(
        err.contains("Suggestive") && err.contains("Swimwear or Underwear"),
        "{err}"
    );
    let segment = Segment {
        id: 1,
        label: "nsfw".into(),
        stream_start_us: 0,
        start_us: 0,
        end_us: 2_000_000,
        crossed_us: 500_000,
        peak: 0.9,
        peak_us: 1_000_000,
        mean: 0.85,
        frames_scored: 4,
        evidence: vec![(1_000_000, 0.9)],
    };
    let built = common::report_context("s")
        .build(&segment, &[], 1_700_000_000_000)
        .unwrap();
    assert_eq!(built.category, None, "the context gives nsfw no category");
    let report = |category: &str| {
        let mut v: serde_json::Value = serde_json::from_slice(&built.to_json()).unwrap();
        v["category"] = category.into();
        serde_json::to_vec(&v).unwrap()
    };
    for c in Category::ALL {
        let json = report(c.name());
        assert_eq!(Report::from_json(&json).unwrap().category, Some(c));
        assert!(validator().is_valid(&serde_json::from_slice(&json).unwrap()));
        assert_eq!(Category::from_name(c.name()), Some(c));
    }
    for bad in ["Suggestive", "explicit", "", "Explicit "] {
        let json = report(bad);
        assert!(Report::from_json(&json).is_err(), "{bad:?} accepted");
        assert!(!validator().is_valid(&serde_json::from_slice(&json).unwrap()));
        assert_eq!(Category::from_name(bad), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The runtime's checks and the report JSON Schema agree on every report, near every limit:
    /// what the runtime accepts (and so stores and sends) the receiver's schema accepts, and
    /// the other way round. (Beyond the schema, the runtime also refuses times that do not add
    /// up, `duration != end - start`, which a schema cannot say: tests/upload.rs sends one.)
    #[test]
    fn the_runtime_accepts_exactly_the_reports_its_schema_accepts(report in any_report()) {
        let json = report.to_json();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let schema = validator().is_valid(&value);
        let runtime = Report::from_json(&json);
        prop_assert_eq!(runtime.is_ok(), schema, "runtime: {:?}", runtime.err());
    }

    /// Every report the runtime can build validates against the schema: from any context it
    /// accepts, a label the manifest accepts, any times, and scores around [0, 1] (segments
    /// carry smoothed probabilities): a report is never built to be refused.
    #[test]
    fn every_report_the_runtime_builds_validates(
        stream_id in text(MAX_STREAM_ID_CHARS),
        device_class in text(MAX_DEVICE_CLASS_CHARS),
        label in text(MAX_LABEL_CHARS),
        origin in -1_000_000i64..1_000_000,
        start in -2_000_000i64..i64::MAX / 4,
        length in -1_000i64..1 << 40,
        peak in -0.5f32..1.5,
        mean in -0.5f32..1.5,
        evidence in prop::collection::vec((any::<i64>(), -0.5f32..1.5), 0..=MAX_EVIDENCE),
        thumbnail_side in 1u32..64,
        category in prop::option::of(prop::sample::select(Category::ALL.to_vec())),
    ) {
        prop_assume!((1..=MAX_LABEL_CHARS).contains(&label.chars().count()));
        let mut context = ReportContext {
            stream_id,
            device_class,
            ..common::report_context("s")
        };
        if let Some(c) = category {
            context.categories.insert(label.clone(), c);
        }
        context.jpeg_quality = 80;
        if context.check().is_err() {
            prop_assume!(false);
        }
        let segment = Segment {
            id: 1,
            label: label.as_str().into(),
            stream_start_us: origin,
            start_us: start,
            end_us: start.saturating_add(length),
            crossed_us: start,
            peak,
            peak_us: start,
            mean,
            frames_scored: 4,
            evidence: evidence.clone(),
        };
        let thumbnails: Vec<Thumbnail> = evidence
            .iter()
            .take(2)
            .map(|&(t, _)| Thumbnail {
                timestamp_us: t,
                width: thumbnail_side,
                height: thumbnail_side,
                rgb: vec![90; (thumbnail_side * thumbnail_side * 3) as usize],
            })
            .collect();
        let report = context.build(&segment, &thumbnails, 1_700_000_000_000);
        prop_assert!(report.is_ok(), "{:?}", report.err());
        let value: serde_json::Value =
            serde_json::from_slice(&report.unwrap().to_json()).unwrap();
        prop_assert!(validator().is_valid(&value));
    }
}

/// Timestamps are the host's: ones so far out that differences could overflow are rejected and
/// counted; the stream goes on.
#[test]
fn absurd_timestamps_are_rejected_not_overflowed() {
    use prescreen::framegen::OwnedFrame;
    use prescreen_runtime::frame::{ColorMatrix, ColorRange, PixelFormat};
    use prescreen_runtime::stream::engine::{Submitted, MAX_TIMESTAMP_US};
    let policy = Policy::load(common::root().join("models/policies/redness.toml")).unwrap();
    let options = EngineOptions {
        backend: prescreen_runtime::preprocess::backend::Backend::Cpu,
        ..EngineOptions::default()
    };
    let engine = Engine::start(&redness(), &policy, options, Box::new(|_| {})).unwrap();
    let px = vec![200u8; 64 * 48 * 3];
    let mut f = OwnedFrame::from_rgb(
        &px,
        64,
        48,
        PixelFormat::Nv12,
        ColorMatrix::Bt601,
        ColorRange::Full,
    )
    .unwrap();
    for t in [
        i64::MIN,
        i64::MAX,
        MAX_TIMESTAMP_US + 1,
        -MAX_TIMESTAMP_US - 1,
    ] {
        f.timestamp_us = t;
        assert_eq!(
            engine.submit(&f.frame().unwrap()),
            Submitted::Rejected,
            "{t}"
        );
    }
    for t in [-MAX_TIMESTAMP_US, 0, MAX_TIMESTAMP_US] {
        f.timestamp_us = t;
        assert_ne!(
            engine.submit(&f.frame().unwrap()),
            Submitted::Rejected,
            "{t}"
        );
        engine.wait_idle();
    }
    let m = engine.finish();
    assert!(m.accounted(), "{m:?}");
    assert_eq!((m.seen, m.rejected, m.failed), (7, 4, 0), "{m:?}");
}
