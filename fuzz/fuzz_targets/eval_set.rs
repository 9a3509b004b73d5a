//! `prescreen eval`'s labelled-set files on arbitrary bytes: `eval-set.toml` (the bytes before the
//! first NUL) and a CSV manifest it may name as `m.csv` (the bytes after it), in a set folder with
//! a few real files to point at. A typed error or a set that keeps the format's promises, never a
//! panic. A baseline report (`--baseline`) is read from the same bytes.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prescreen::eval::report::EvalReport;
use prescreen::eval::set::LabelledSet;

/// A set folder with an image in a label folder, a clean image, loose images for a manifest and
/// a stream file: paths the fuzzed files can name.
fn folder() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_folders();
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        for (path, bytes) in [
            ("images/red/a.png", &b"png"[..]),
            ("images/clean/b.jpg", b"jpg"),
            ("more/c.png", b"png"),
            ("streams/s.y4m", b"YUV4MPEG2 W2 H2 F30:1 C420jpeg\n"),
            ("seq/0001.png", b"png"),
        ] {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        dir
    })
}

/// The set folder's name, less the fuzzing process's id.
const PREFIX: &str = "prescreen-fuzz-eval-set-";

/// Removes the set folders of fuzzing processes that have ended: libFuzzer ends a run with
/// `exit`, so nothing removes a process's own folder. Where `/proc` lists processes (Linux)
/// only; elsewhere the folders stay.
fn remove_stale_folders() {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !proc.join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    let (set_file, csv) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    std::fs::write(dir.join("eval-set.toml"), set_file).unwrap();
    std::fs::write(dir.join("m.csv"), csv).unwrap();
    if let Ok(set) = LabelledSet::open(dir) {
        assert!(!set.images.is_empty() || !set.streams.is_empty());
        for image in &set.images {
            assert!(image.labels.windows(2).all(|w| w[0] < w[1]), "labels sorted, unique");
            assert!(image.path.starts_with(dir) || image.path.is_absolute());
        }
        for stream in &set.streams {
            for t in &stream.truths {
                assert!(0 <= t.start_us && t.start_us < t.end_us, "{t:?}");
            }
            for w in stream.truths.windows(2) {
                assert!(
                    w[0].label != w[1].label || w[0].end_us <= w[1].start_us,
                    "overlapping intervals of one label accepted: {w:?}"
                );
            }
        }
        let _ = set.check_labels(&["red".to_string()]);
    }
    if let Ok(report) = serde_json::from_slice::<EvalReport>(data) {
        assert!(report.figures().values().all(|v| v.is_finite()));
    }
});
