//! Model manifest TOML: a clear error or a manifest whose checks hold (labels, golden tolerance).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prescreen_runtime::manifest::{Manifest, MAX_GOLDEN_TOLERANCE};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::parse(text) else {
        return;
    };
    assert!(!m.output.labels.is_empty());
    for e in &m.golden.expect {
        assert!(e.tolerance > 0.0 && e.tolerance <= MAX_GOLDEN_TOLERANCE);
        assert_eq!(e.output.len(), m.output.labels.len());
    }
});
