//! The desktop harness as a user runs it, on hostile input: it never reports success while a
//! report was lost or the input was broken, and it stores what it can before it says so.
//! The real binary, real files, the test classifier.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn prescreen() -> Command {
    let mut c = common::command(env!("CARGO_BIN_EXE_prescreen"));
    c.current_dir(common::root()).env_remove("RUST_LOG");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `screen` with the test classifier, its policy and an outbox.
fn screen(input: &Path, outbox: &Path, policy: &str) -> Command {
    let mut c = prescreen();
    c.arg("screen")
        .arg(input)
        .args([
            "--model-dir",
            "models/redness",
            "--backend",
            "cpu",
            "--policy",
            policy,
        ])
        .arg("--outbox")
        .arg(outbox)
        .args(["--stream-id", "harness-test"]);
    c
}

fn pending(outbox: &Path) -> usize {
    std::fs::read_dir(outbox.join("pending"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A `.y4m` cut off in the middle of a frame while a segment is open: the segment is closed and
/// its report stored, then the harness fails with the input's error.
#[test]
fn a_truncated_stream_still_stores_the_open_segment_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cut.y4m");
    common::red_stream(&input, 3, (1.0, 9.0));
    let len = std::fs::metadata(&input).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&input)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    let outbox = dir.path().join("outbox");
    let o = screen(&input, &outbox, "models/policies/redness.toml")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reading the input"), "{}", stderr(&o));
    assert_eq!(pending(&outbox), 1, "{}", stderr(&o));
}

/// A policy that flags a label the model does not have is refused, naming the label: it would
/// switch screening off without a word.
#[test]
fn a_policy_for_another_models_labels_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.y4m");
    common::red_stream(&input, 1, (0.0, 1.0));
    let o = screen(
        &input,
        &dir.path().join("outbox"),
        "models/policies/default.toml",
    )
    .output()
    .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("\"nsfw\"") && e.contains("redness"), "{e}");
}

/// A PNG claiming 20000x20000 pixels in a few hundred bytes is refused by its header.
#[test]
fn an_image_beyond_the_frame_limits_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("huge.png");
    // A header claiming 20000x20000 RGB pixels, and no image data.
    let bytes = prescreen::images::testing::png_claiming(20_000, 20_000);
    std::fs::write(&png, bytes).unwrap();
    let o = prescreen()
        .arg("screen")
        .arg(&png)
        .args(["--model-dir", "models/redness", "--backend", "cpu"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("limit"), "{}", stderr(&o));
}

/// Runs `command` with `dir` on a 64 KiB tmpfs that is already full, in a private mount
/// namespace (the mount vanishes with it). `None` where mounting is not allowed (not root).
fn on_a_full_disk(dir: &Path, command: &Command) -> Option<Output> {
    let mut line = format!(
        "mount -t tmpfs -o size=64k tmpfs '{0}' && head -c 65536 /dev/zero > '{0}/filler' 2>/dev/null; \
         exec '{1}'",
        dir.display(),
        command.get_program().to_string_lossy()
    );
    for a in command.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &line])
        .current_dir(common::root())
        .env_remove("RUST_LOG")
        .output()
        .ok()?;
    let e = stderr(&o);
    if e.contains("mount:") || e.contains("unshare:") {
        let why = format!("cannot mount a tmpfs here: {}", e.trim());
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPING the full-disk run: {why}");
        return None;
    }
    Some(o)
}

/// The outbox is on a full disk when segments close: every report is retried, then counted as
/// lost, logged and reported, and the harness exits non-zero instead of "0 reports".
#[test]
fn reports_lost_to_a_full_disk_make_the_harness_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.y4m");
    // One red second: its segment closes mid-stream, and later events retry its report.
    common::red_stream(&input, 6, (1.0, 2.0));
    let outbox: PathBuf = dir.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let c = screen(&input, &outbox, "models/policies/redness.toml");
    let Some(o) = on_a_full_disk(&outbox, &c) else {
        return;
    };
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("lost"), "{e}");
    // The runtime's own error log reaches the terminal (the harness installs a logger).
    assert!(e.contains("ERROR") || e.contains("error"), "{e}");
}
