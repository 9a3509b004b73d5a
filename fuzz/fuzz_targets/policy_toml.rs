//! Policy TOML: a clear error, or a policy whose numbers are all within their documented ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prescreen_runtime::policy::{self, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Policy::parse(text) else {
        return;
    };
    assert!(!p.labels.is_empty());
    for l in p.labels.values() {
        assert!(0.0 <= l.watch && l.watch <= l.enter && l.exit <= l.enter && l.enter <= 1.0);
    }
    let s = p.sampling;
    assert!(s.base_fps >= policy::MIN_BASE_FPS && s.burst_fps <= policy::MAX_FPS);
    let g = p.segments;
    for ms in [g.min_duration_ms, g.pre_roll_ms, g.post_roll_ms, g.merge_gap_ms] {
        // Microseconds of any shaping time fit an i64 with room to add timestamps.
        assert!(ms <= policy::MAX_SEGMENT_MS);
    }
    assert!((1..=policy::MAX_GATE_INTERVAL_MS).contains(&p.scene_gate.max_interval_ms));
    let q = p.quality;
    assert!((0.0..=policy::MAX_MIN_SHARPNESS).contains(&q.min_sharpness));
    assert!(q.min_side <= policy::MAX_MIN_SIDE);
    assert!(p.evidence.size <= policy::MAX_THUMBNAIL_SIZE);
    assert!(p.evidence.thumbnails <= prescreen_runtime::reporting::report::MAX_EVIDENCE);
    // What the engine builds from a policy must not panic either.
    let _ = prescreen_runtime::stream::sampling::Sampler::new(&p.sampling);
    let labels: Vec<String> = p.labels.keys().cloned().collect();
    let _ = prescreen_runtime::stream::segmenter::Segmenter::new(&p, &labels);
});
