//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cases;

use std::path::PathBuf;

use prescreen_runtime::manifest::{InputSpec, Manifest};

/// A command that runs `program`, a binary of this build. Under `make test-arm` the tests are
/// aarch64 binaries run by qemu-user, which cannot start another aarch64 binary by itself:
/// `PRESCREEN_TEST_RUNNER` (e.g. `qemu-aarch64 -cpu max`) then runs it.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let runner = std::env::var("PRESCREEN_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut c = std::process::Command::new(first);
            c.args(words).arg(program);
            c
        }
        None => std::process::Command::new(program),
    }
}

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default model folder. Tests that need the fetched weights fail, loudly, when they are
/// missing: `make test` fetches them first (see README).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("PRESCREEN_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/open_nsfw"));
    let manifest = Manifest::load(&dir).expect("models/open_nsfw/model.toml must parse");
    for f in &manifest.files {
        let p = dir.join(&f.path);
        assert!(
            p.is_file(),
            "MODEL NOT FETCHED: {} is missing. Run `make model` (or `make test`, which does it) first.",
            p.display()
        );
    }
    dir
}

/// The default model's input spec (needs only the committed manifest).
pub fn spec() -> InputSpec {
    Manifest::load(root().join("models/open_nsfw"))
        .expect("manifest")
        .input
}

/// The manifest text with `from` replaced by `to` (each must occur).
pub fn manifest_variant(replacements: &[(&str, &str)]) -> String {
    let mut text =
        std::fs::read_to_string(root().join("models/open_nsfw/model.toml")).expect("manifest");
    for (from, to) in replacements {
        assert!(text.contains(from), "manifest has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// Largest and mean absolute difference.
pub fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let mean = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .sum::<f64>()
        / a.len() as f64;
    (max, mean as f32)
}

/// The report context of a test stream: open_nsfw float with a made-up checksum.
pub fn report_context(stream_id: &str) -> prescreen_runtime::reporting::report::ReportContext {
    prescreen_runtime::reporting::report::ReportContext {
        stream_id: stream_id.into(),
        model: prescreen_runtime::reporting::report::ModelInfo {
            id: "open_nsfw".into(),
            version: "1".into(),
            variant: "float".into(),
            sha256: "ab".repeat(32),
        },
        policy_version: "test-1".into(),
        device_class: prescreen_runtime::reporting::report::default_device_class(),
        jpeg_quality: 80,
        categories: Default::default(),
    }
}

/// A SIMD kernel (`Model::integer_kernel` names) this CPU does not run, so a test cannot try it.
/// Elsewhere it is skipped with a printed reason; under `CI` it fails, unless
/// `PRESCREEN_WAIVE_KERNELS` (comma-separated names) waives it: a CI machine that loses a kernel
/// must say so, not turn its tests into skips. `make test-arm` waives what each emulated CPU lacks.
#[allow(dead_code)]
pub fn missing_kernel(name: &str, test: &str) {
    let waived = std::env::var("PRESCREEN_WAIVE_KERNELS").unwrap_or_default();
    let waived = waived.split(',').any(|k| k == name);
    assert!(
        std::env::var_os("CI").is_none() || waived,
        "{test}: this CPU has no {name} kernel; under CI that fails unless \
         PRESCREEN_WAIVE_KERNELS names it"
    );
    eprintln!(
        "SKIPPED {test} on {name}: not on this CPU{}",
        if waived { " (waived)" } else { "" }
    );
}

/// A `.y4m` of 160x120 frames at 30 fps, red during `red` (seconds), grey otherwise.
pub fn red_stream(path: &std::path::Path, seconds: u32, red: (f64, f64)) {
    let mut out = Vec::new();
    prescreen::y4m::write_header(&mut out, 160, 120, 30).unwrap();
    for i in 0..seconds * 30 {
        let t = i as f64 / 30.0;
        let rgb = if (red.0..red.1).contains(&t) {
            [220, 30, 30]
        } else {
            [128, 128, 128]
        };
        let px: Vec<u8> = (0..160 * 120).flat_map(|_| rgb).collect();
        let f = prescreen::framegen::OwnedFrame::from_rgb(
            &px,
            160,
            120,
            prescreen_runtime::frame::PixelFormat::Nv12,
            prescreen_runtime::frame::ColorMatrix::Bt601,
            prescreen_runtime::frame::ColorRange::Full,
        )
        .unwrap();
        prescreen::y4m::write_frame(&mut out, &f).unwrap();
    }
    std::fs::write(path, out).unwrap();
}
