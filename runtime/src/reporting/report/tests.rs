//! Unit tests of the report: its JSON against the schema, its ids, the limits it checks, and how
//! it is built from a segment and its thumbnails.

use super::*;

/// The schema's `category` names are exactly the runtime's [`Category`] names, in the same
/// order, and a report carries its category through JSON and back.
#[test]
fn the_schema_lists_exactly_the_runtimes_categories() {
    let schema: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    let names: Vec<&str> = schema["properties"]["category"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names, ours);
    let mut r = fixtures::context();
    r.categories.insert("nsfw".into(), Category::Explicit);
    let report = r
        .build(&fixtures::segment(1, 1), &[], 1_700_000_000_000)
        .unwrap();
    assert_eq!(report.category, Some(Category::Explicit));
    let json = report.to_json();
    assert!(String::from_utf8_lossy(&json).contains("\"category\":\"Explicit\""));
    assert_eq!(Report::from_json(&json).unwrap(), report);
    // No category: no field at all (a report of an uncategorised label stays as before).
    let plain = fixtures::context()
        .build(&fixtures::segment(1, 1), &[], 1_700_000_000_000)
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.to_json()).contains("category"));
}

/// Report ids pinned to values computed outside Rust (Python's `hashlib`: the first 16 bytes of
/// SHA-256 over `le64(len) ‖ stream id`, `le64(len) ‖ label`, `le64(segment id)`,
/// `le64(start µs)`, in hex). Fails if a part is dropped from the hash or the encoding changes
/// (ids already in outboxes and receivers would stop deduplicating), and, through the fifth
/// case, if the length prefixes go ("sample-stream" + "nsfw" against "sample-streamn" + "sfw").
#[test]
fn report_ids_are_pinned_to_independently_computed_values() {
    let cases = [
        (
            "sample-stream",
            "nsfw",
            1,
            2_500_000,
            "0a08e8764ba53cc2a33f275161ea9972",
        ),
        (
            "sample-stream",
            "sfw",
            1,
            2_500_000,
            "baf599387b0c5c25817a11218c491eb8",
        ),
        (
            "sample-stream",
            "nsfw",
            2,
            2_500_000,
            "4d01cde5920c9d21491ac4aebb17ab2f",
        ),
        (
            "sample-stream",
            "nsfw",
            1,
            2_500_001,
            "1b27f4a4c3b5c18944f1971bbcb07a14",
        ),
        (
            "sample-streamn",
            "sfw",
            1,
            2_500_000,
            "343c4fea0ca53426ab46964ed2b9e6fa",
        ),
        ("s", " ", 0, -1, "52608531c12a61147b841eed0d9797ae"),
    ];
    for (stream, label, segment, start_us, want) in cases {
        let id = report_id(stream, label, segment, start_us);
        assert_eq!(id, want, "{stream:?} {label:?} {segment} {start_us}");
        check_id(&id).unwrap();
    }
}

fn evidence(timestamp_millis: u64, width: u32, height: u32) -> Evidence {
    Evidence {
        timestamp_millis,
        score: 0.5,
        width,
        height,
        jpeg_base64: None,
    }
}

/// A report that passes every check, to change one field at a time.
fn valid() -> Report {
    Report {
        schema: SCHEMA_ID.into(),
        report_id: "0123456789abcdef0123456789abcdef".into(),
        stream_id: "stream-1".into(),
        created_unix_millis: 1_700_000_000_000,
        label: "nsfw".into(),
        category: Some(Category::Explicit),
        confidence: 90.0,
        timestamp: 1_500,
        start_timestamp_millis: 1_000,
        end_timestamp_millis: 4_000,
        duration_millis: 3_000,
        peak_score: 0.9,
        peak_timestamp_millis: 2_000,
        mean_score: 0.8,
        frames_scored: 3,
        stream_origin_us: 0,
        model: ModelInfo {
            id: "test".into(),
            version: "1".into(),
            variant: "float".into(),
            sha256: "ab".repeat(32),
        },
        policy_version: "p1".into(),
        runtime_version: "0.1.0".into(),
        device_class: "test".into(),
        evidence: vec![evidence(2_000, 16, 12)],
        thumbnails_dropped: 0,
    }
}

/// A segment may be empty (end = start, duration 0); an end before the start, or a duration
/// other than end - start, is refused. Fails if `end < start` became `<=` or `==` (the empty
/// segment refused), or if the two conditions were joined with `&&`.
#[test]
fn segment_times_must_add_up_and_may_be_empty() {
    let times = |start, end, duration| {
        let mut r = valid();
        r.start_timestamp_millis = start;
        r.end_timestamp_millis = end;
        r.duration_millis = duration;
        r.check()
    };
    assert_eq!(times(4_000, 4_000, 0), Ok(()));
    assert_eq!(times(1_000, 4_000, 3_000), Ok(()));
    assert!(times(4_000, 3_999, 0).is_err());
    assert!(times(4_000, 3_999, 1).is_err());
    assert!(times(1_000, 4_000, 2_999).is_err());
    assert!(times(1_000, 4_000, 5_000).is_err());
}

/// Each score and the checksum are checked on their own: a peak or a mean outside 0..=1, a
/// confidence above 100, a checksum of 62 hex digits or of 64 non-hex ones is refused, each
/// with every other field valid. Fails if an `||` between the score tests or between the
/// checksum's length and digit tests became `&&`.
#[test]
fn each_score_and_the_checksum_are_checked_on_their_own() {
    let with = |f: &dyn Fn(&mut Report)| {
        let mut r = valid();
        f(&mut r);
        r.check()
    };
    assert_eq!(with(&|_| {}), Ok(()));
    assert_eq!(with(&|r| r.model.sha256 = "0F".repeat(32)), Ok(()));
    for (what, bad) in [
        ("peak", with(&|r| r.peak_score = 1.5)),
        ("mean", with(&|r| r.mean_score = -0.5)),
        ("confidence", with(&|r| r.confidence = 100.5)),
        ("short sha256", with(&|r| r.model.sha256 = "ab".repeat(31))),
        (
            "non-hex sha256",
            with(&|r| r.model.sha256 = "zz".repeat(32)),
        ),
    ] {
        assert!(bad.is_err(), "{what}");
    }
}

/// 64 evidence frames are allowed, 65 refused. Fails if the limit moved by one (`>` became
/// `>=` or `==`).
#[test]
fn the_evidence_limit_is_inclusive() {
    let mut r = valid();
    r.evidence = (0..64).map(|i| evidence(1_000 + i, 16, 12)).collect();
    assert_eq!(r.check(), Ok(()));
    r.evidence.push(evidence(2_000, 16, 12));
    let why = r.check().unwrap_err();
    assert!(why.contains("65 evidence frames"), "{why}");
}

/// Thumbnails of 4096 px a side are allowed; 4097 on either side is refused. Fails if `>`
/// became `>=` or `==`, or if the width and height tests were joined with `&&`.
#[test]
fn the_thumbnail_side_limit_is_inclusive_on_both_sides() {
    let side = |width, height| {
        let mut r = valid();
        r.evidence = vec![evidence(2_000, 16, 12), evidence(2_500, width, height)];
        r.check()
    };
    assert_eq!(side(4096, 4096), Ok(()));
    assert!(side(4097, 1).is_err());
    assert!(side(1, 4097).is_err());
    assert!(side(4097, 4097).is_err());
}

/// A report of exactly [`MAX_REPORT_BYTES`] (16 MiB = 16_777_216 bytes, made up by a long
/// policy version, which has no limit of its own) parses; one byte more is refused before
/// parsing. Fails if the size test of `from_json` became `>=` or `==`.
#[test]
fn from_json_takes_reports_up_to_max_report_bytes() {
    let mut r = valid();
    let base = r.to_json().len() - r.policy_version.len();
    r.policy_version = "p".repeat(MAX_REPORT_BYTES - base);
    let json = r.to_json();
    assert_eq!(json.len(), 16_777_216);
    assert_eq!(Report::from_json(&json).unwrap(), r);
    r.policy_version.push('p');
    match Report::from_json(&r.to_json()) {
        Err(Error::Report(why)) => assert!(why.starts_with("16777217 bytes"), "{why}"),
        other => panic!("expected a size error, got {other:?}"),
    }
}

/// A refused id is shown without its control characters (ids come from hosts and files).
/// Fails if the filter kept control characters instead of dropping them (`!` deleted).
#[test]
fn a_bad_id_is_shown_without_control_characters() {
    match check_id("ab\u{1b}[2J\ncd\u{7}") {
        Err(Error::BadReportId(shown)) => assert_eq!(shown, "ab[2Jcd"),
        other => panic!("expected BadReportId, got {other:?}"),
    }
}

/// The device class is `OS-ARCH` (e.g. `linux-x86_64`). Fails if `default_device_class`
/// returned an empty or made-up string.
#[test]
fn the_default_device_class_is_os_and_arch() {
    assert_eq!(
        default_device_class().split_once('-'),
        Some((std::env::consts::OS, std::env::consts::ARCH))
    );
}

/// The wall clock is read in milliseconds: after 2020-01-01 (1_577_836_800_000 ms) and before
/// 2100-01-01 (4_102_444_800_000 ms). Fails if `now_unix_millis` returned 0 or 1.
#[test]
fn now_is_milliseconds_since_the_epoch() {
    let now = now_unix_millis();
    assert!(
        (1_577_836_800_000..4_102_444_800_000).contains(&now),
        "{now}"
    );
}

fn context() -> ReportContext {
    ReportContext {
        stream_id: "stream-1".into(),
        model: valid().model,
        policy_version: "p1".into(),
        device_class: "test".into(),
        jpeg_quality: 80,
        categories: Default::default(),
    }
}

/// The context's limits are inclusive and count characters: 256 four-byte characters of
/// stream id and 64 two-byte ones of device class pass, one more of either is refused, and
/// the model needs an id and a float or int8 variant. Fails if a `>` became `>=` or `==`, or
/// if the model check joined its two conditions with `&&`.
#[test]
fn context_limits_are_inclusive() {
    let with = |f: &dyn Fn(&mut ReportContext)| {
        let mut c = context();
        f(&mut c);
        c.check()
    };
    let refused = |r: Result<()>| matches!(r, Err(Error::InvalidArgument(_)));
    assert!(with(&|c| c.stream_id = "\u{1F600}".repeat(256)).is_ok());
    assert!(refused(with(&|c| c.stream_id = "\u{1F600}".repeat(257))));
    assert!(with(&|c| c.device_class = "\u{e9}".repeat(64)).is_ok());
    assert!(refused(with(&|c| c.device_class = "\u{e9}".repeat(65))));
    assert!(with(&|c| c.model.variant = "int8".into()).is_ok());
    assert!(refused(with(&|c| c.model.id = String::new())));
    assert!(refused(with(&|c| c.model.variant = "fp16".into())));
}

/// A closed segment from 0 to 3 s with two evidence frames, at 1 s and 2 s.
fn segment() -> Segment {
    Segment {
        id: 1,
        label: "nsfw".into(),
        stream_start_us: 0,
        start_us: 0,
        end_us: 3_000_000,
        crossed_us: 500_000,
        peak: 0.9,
        peak_us: 1_000_000,
        mean: 0.8,
        frames_scored: 6,
        evidence: vec![(1_000_000, 0.9), (2_000_000, 0.7)],
    }
}

fn thumbnail(timestamp_us: i64, width: u32, height: u32, bytes: usize) -> Thumbnail {
    Thumbnail {
        timestamp_us,
        width,
        height,
        rgb: vec![100; bytes],
    }
}

/// Each evidence frame gets the thumbnail taken at its own time; one without a thumbnail gets
/// no picture and a 0x0 size. Fails if the lookup matched with `!=` (the first frame would
/// get the second's 8x4 picture).
#[test]
fn evidence_gets_the_thumbnail_of_its_own_frame() {
    let r = context()
        .build(&segment(), &[thumbnail(2_000_000, 8, 4, 8 * 4 * 3)], 7)
        .unwrap();
    let sizes: Vec<(u64, u32, u32, bool)> = r
        .evidence
        .iter()
        .map(|e| {
            (
                e.timestamp_millis,
                e.width,
                e.height,
                e.jpeg_base64.is_some(),
            )
        })
        .collect();
    assert_eq!(sizes, [(1_000, 0, 0, false), (2_000, 8, 4, true)]);
    assert!(r.jpeg(0).is_none());
    let jpeg = r.jpeg(1).unwrap();
    let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (8, 4));
}

/// A thumbnail whose pixels do not fill width x height x 3 bytes, or has no pixels, is a
/// report error from the size check, never handed to the JPEG encoder (which panics on a
/// wrong length). Fails if the check's `||` became `&&`.
#[test]
fn a_thumbnail_of_the_wrong_size_is_an_error() {
    for (th, expected) in [
        (
            thumbnail(1_000_000, 8, 4, 95),
            "thumbnail 8x4 has 95 bytes, expected 96",
        ),
        (
            thumbnail(1_000_000, 8, 4, 97),
            "thumbnail 8x4 has 97 bytes, expected 96",
        ),
        (
            thumbnail(1_000_000, 0, 0, 0),
            "thumbnail 0x0 has 0 bytes, expected 0",
        ),
    ] {
        match context().build(&segment(), &[th], 7) {
            Err(Error::Report(why)) => assert_eq!(why, expected),
            other => panic!("expected a report error, got {other:?}"),
        }
    }
}
