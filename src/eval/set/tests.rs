use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "prescreen-eval-set-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` at `rel`, creating folders.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// Creates tiny dummy files (never decoded).
    fn touch(&self, rels: &[&str]) {
        for rel in rels {
            self.write(rel, "x");
        }
    }

    /// Writes the set file: the header, then `body`.
    fn set_file(&self, body: &str) -> PathBuf {
        self.write(
            SET_FILE,
            &format!("format = \"prescreen-eval-set\"\nversion = 1\n{body}"),
        )
    }

    fn open(&self) -> Result<LabelledSet, SetError> {
        LabelledSet::open(self.path())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn names(set: &LabelledSet) -> Vec<(&str, Vec<&str>)> {
    set.images
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.labels.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

/// The set file's error message, or a panic naming what came instead.
fn invalid_message(result: Result<LabelledSet, SetError>) -> String {
    match result {
        Err(e @ SetError::Invalid { .. }) => e.to_string(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A set file with one `.y4m` stream, the given truth (TOML array).
fn stream_set(truth: &str) -> TempDir {
    let dir = TempDir::new();
    dir.touch(&["streams/a.y4m"]);
    dir.set_file(&format!(
        "[[streams]]\npath = \"streams/a.y4m\"\ntruth = {truth}\n"
    ));
    dir
}

#[test]
fn per_label_folders() {
    let dir = TempDir::new();
    dir.touch(&[
        "images/red/b.png",
        "images/red/a.JPG",
        "images/red/notes.txt",
        "images/red/deeper/x.png",
        "images/red/.hidden.png",
        "images/nudity/c.jpeg",
        "images/clean/d.png",
        "images/clean/e.Jpeg",
        "images/README.md",
        "images/.DS_Store",
    ]);
    fs::create_dir_all(dir.path().join("images/empty-label")).unwrap();
    dir.set_file("[[images]]\nfolder = \"images\"\n");
    let set = dir.open().unwrap();
    assert_eq!(
        names(&set),
        vec![
            ("images/clean/d.png", vec![]),
            ("images/clean/e.Jpeg", vec![]),
            ("images/nudity/c.jpeg", vec!["nudity"]),
            ("images/red/a.JPG", vec!["red"]),
            ("images/red/b.png", vec!["red"]),
        ]
    );
    assert_eq!(set.images[0].path, dir.path().join("images/clean/d.png"));
    assert!(set.streams.is_empty());
    assert_eq!(set.root, dir.path());
    assert_eq!(set.labels(), strings(&["nudity", "red"]));
}

#[test]
fn csv_manifest() {
    let dir = TempDir::new();
    dir.touch(&["pics/a.png", "pics/b.jpg", "pics/c.png"]);
    dir.write(
        "lists/images.csv",
        "path,labels\r\n\r\npics/a.png, red ;nudity;red\r\n  \npics/b.jpg,\n./pics/c.png,red;\n",
    );
    dir.set_file("[[images]]\nmanifest = \"lists/images.csv\"\n");
    let set = dir.open().unwrap();
    assert_eq!(
        names(&set),
        vec![
            ("pics/a.png", vec!["nudity", "red"]),
            ("pics/b.jpg", vec![]),
            ("pics/c.png", vec!["red"]),
        ]
    );
    assert_eq!(set.images[2].path, dir.path().join("pics/c.png"));
}

#[test]
fn folders_and_manifests_together() {
    let dir = TempDir::new();
    dir.touch(&["images/red/a.png", "extra/b.png"]);
    dir.write("extra.csv", "path,labels\nextra/b.png,red\n");
    dir.set_file("[[images]]\nfolder = \"images\"\n[[images]]\nmanifest = \"extra.csv\"\n");
    let set = dir.open().unwrap();
    assert_eq!(
        names(&set),
        vec![
            ("images/red/a.png", vec!["red"]),
            ("extra/b.png", vec!["red"])
        ]
    );
}

#[test]
fn streams_with_truths() {
    let dir = TempDir::new();
    dir.touch(&[
        "streams/red.Y4M",
        "streams/seq/0002.png",
        "streams/seq/0001.png",
    ]);
    dir.touch(&["streams/clean.y4m", "streams/seq2/a.jpg"]);
    dir.set_file(
        r#"
[[streams]]
path = "streams/red.Y4M"
truth = [
    { label = "red", start_s = 12.0, end_s = 15.0 },
    { label = "nudity", start_s = 1.0000006, end_s = 2.0 },
    { label = "red", start_s = 4.0, end_s = 7.0 },
    { label = "red", start_s = 7.0, end_s = 8 },
    { label = "nudity", start_s = 0, end_s = 1 },
]

[[streams]]
path = "streams/seq"
fps = 12.5
truth = [ { label = "red", start_s = 0.5, end_s = 1.0 } ]

[[streams]]
path = "streams/seq2"

[[streams]]
path = "streams/clean.y4m"
truth = []
"#,
    );
    let set = dir.open().unwrap();
    assert!(set.images.is_empty());
    assert_eq!(set.streams.len(), 4);
    let red = &set.streams[0];
    assert_eq!(red.name, "streams/red.Y4M");
    assert_eq!(
        red.source,
        StreamSource::Y4m(dir.path().join("streams/red.Y4M"))
    );
    let t = |label: &str, start_us, end_us| TruthInterval {
        label: label.into(),
        start_us,
        end_us,
    };
    assert_eq!(
        red.truths,
        vec![
            t("nudity", 0, 1_000_000),
            t("nudity", 1_000_001, 2_000_000),
            t("red", 4_000_000, 7_000_000),
            t("red", 7_000_000, 8_000_000),
            t("red", 12_000_000, 15_000_000),
        ]
    );
    assert_eq!(
        set.streams[1].source,
        StreamSource::Sequence {
            folder: dir.path().join("streams/seq"),
            fps: 12.5
        }
    );
    assert_eq!(set.streams[1].truths, vec![t("red", 500_000, 1_000_000)]);
    assert_eq!(
        set.streams[2].source,
        StreamSource::Sequence {
            folder: dir.path().join("streams/seq2"),
            fps: 30.0
        }
    );
    assert!(set.streams[2].truths.is_empty());
    assert!(set.streams[3].truths.is_empty());
    assert_eq!(set.labels(), strings(&["nudity", "red"]));
    set.check_labels(&strings(&["red", "nudity", "other"]))
        .unwrap();
}

#[test]
fn absolute_paths_are_allowed() {
    let dir = TempDir::new();
    let elsewhere = TempDir::new();
    elsewhere.touch(&["v.y4m", "pics/red/a.png"]);
    dir.set_file(&format!(
        "[[images]]\nfolder = {}\n[[streams]]\npath = {}\n",
        toml_str(&elsewhere.path().join("pics").display().to_string()),
        toml_str(&elsewhere.path().join("v.y4m").display().to_string()),
    ));
    let set = dir.open().unwrap();
    assert_eq!(
        set.images[0].name,
        elsewhere
            .path()
            .join("pics/red/a.png")
            .display()
            .to_string()
    );
    assert_eq!(
        set.streams[0].source,
        StreamSource::Y4m(elsewhere.path().join("v.y4m"))
    );
}

#[test]
fn folder_without_set_file() {
    let dir = TempDir::new();
    dir.touch(&["red/b.png", "red/a.png", "clean/c.jpg", "notes.txt"]);
    let set = dir.open().unwrap();
    assert_eq!(
        names(&set),
        vec![
            ("clean/c.jpg", vec![]),
            ("red/a.png", vec!["red"]),
            ("red/b.png", vec!["red"]),
        ]
    );
    assert!(set.streams.is_empty());
    assert_eq!(set.labels(), strings(&["red"]));
}

#[test]
fn folder_without_set_file_loose_image() {
    let dir = TempDir::new();
    dir.touch(&["red/a.png", "loose.PNG"]);
    let err = dir.open().unwrap_err();
    assert!(matches!(&err, SetError::LooseImage { path } if path.ends_with("loose.PNG")));
    assert!(err.to_string().contains("loose.PNG"), "{err}");
}

#[test]
fn folder_without_set_file_and_without_images() {
    let dir = TempDir::new();
    dir.touch(&["notes.txt", "red/readme.txt"]);
    let err = dir.open().unwrap_err();
    assert!(matches!(err, SetError::NoImages { .. }), "{err:?}");
}

#[test]
fn missing_set_folder() {
    let dir = TempDir::new();
    let missing = dir.path().join("nope");
    let err = LabelledSet::open(&missing).unwrap_err();
    assert!(matches!(&err, SetError::MissingPath { path } if *path == missing));
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn bad_format() {
    let dir = TempDir::new();
    dir.write(SET_FILE, "format = \"other\"\nversion = 1\nunknown = 3\n");
    let err = dir.open().unwrap_err();
    assert!(matches!(&err, SetError::Format { found, .. } if found == "\"other\""));
    assert!(err.to_string().contains(SET_FILE), "{err}");
    dir.write(SET_FILE, "version = 1\n");
    let err = dir.open().unwrap_err();
    assert!(matches!(&err, SetError::Format { found, .. } if found == "nothing"));
}

#[test]
fn bad_version() {
    let dir = TempDir::new();
    dir.write(SET_FILE, "format = \"prescreen-eval-set\"\nversion = 2\n");
    let err = dir.open().unwrap_err();
    assert!(matches!(&err, SetError::Version { found, .. } if found == "2"));
    assert!(err.to_string().contains(SET_FILE), "{err}");
    dir.write(
        SET_FILE,
        "format = \"prescreen-eval-set\"\nversion = \"1\"\n",
    );
    assert!(matches!(dir.open(), Err(SetError::Version { .. })));
    dir.write(SET_FILE, "format = \"prescreen-eval-set\"\n");
    assert!(matches!(dir.open(), Err(SetError::Version { .. })));
}

#[test]
fn not_toml() {
    let dir = TempDir::new();
    dir.write(SET_FILE, "format = \n");
    let err = dir.open().unwrap_err();
    assert!(matches!(err, SetError::Parse { .. }), "{err:?}");
}

#[test]
fn unknown_keys() {
    for body in [
        "colour = 3\n",
        "[[images]]\nfolder = \"images\"\nrecursive = true\n",
        "[[streams]]\npath = \"s.y4m\"\nloop = true\n",
        "[[streams]]\npath = \"s.y4m\"\ntruth = [ { label = \"red\", start_s = 0.0, end_s = 1.0, score = 1 } ]\n",
    ] {
        let dir = TempDir::new();
        dir.touch(&["images/red/a.png", "s.y4m"]);
        dir.set_file(body);
        let err = dir.open().unwrap_err();
        match &err {
            SetError::Parse { path, message } => {
                assert!(path.ends_with(SET_FILE));
                assert!(message.contains("unknown field"), "{message}");
            }
            other => panic!("expected Parse for {body:?}, got {other:?}"),
        }
    }
}

#[test]
fn parent_paths_are_refused() {
    for body in [
        "[[images]]\nfolder = \"images/../images\"\n",
        "[[images]]\nmanifest = \"../list.csv\"\n",
        "[[streams]]\npath = \"streams/../a.y4m\"\n",
    ] {
        let dir = TempDir::new();
        dir.touch(&["images/red/a.png", "a.y4m"]);
        dir.set_file(body);
        let message = invalid_message(dir.open());
        assert!(message.contains(".."), "{message}");
        assert!(message.contains(SET_FILE), "{message}");
    }
    let dir = TempDir::new();
    dir.touch(&["images/red/a.png"]);
    dir.write("list.csv", "path,labels\nimages/../images/red/a.png,red\n");
    dir.set_file("[[images]]\nmanifest = \"list.csv\"\n");
    let message = invalid_message(dir.open());
    assert!(message.contains("list.csv"), "{message}");
    assert!(message.contains("images/../images/red/a.png"), "{message}");
}

#[test]
fn empty_path_is_refused() {
    let dir = TempDir::new();
    dir.set_file("[[streams]]\npath = \"\"\n");
    let message = invalid_message(dir.open());
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn folder_and_manifest_in_one_entry() {
    let dir = TempDir::new();
    dir.touch(&["images/red/a.png"]);
    dir.write("l.csv", "path,labels\nimages/red/a.png,red\n");
    dir.set_file("[[images]]\nfolder = \"images\"\nmanifest = \"l.csv\"\n");
    let message = invalid_message(dir.open());
    assert!(message.contains("[[images]] entry 1"), "{message}");
    dir.set_file("[[images]]\n");
    let message = invalid_message(dir.open());
    assert!(message.contains("neither"), "{message}");
}

#[test]
fn start_not_below_end() {
    for truth in [
        "[ { label = \"red\", start_s = 3.0, end_s = 3.0 } ]",
        "[ { label = \"red\", start_s = 4.0, end_s = 3.0 } ]",
    ] {
        let message = invalid_message(stream_set(truth).open());
        assert!(message.contains("start_s must be below end_s"), "{message}");
        assert!(message.contains("streams/a.y4m"), "{message}");
        assert!(message.contains("red"), "{message}");
    }
}

#[test]
fn sub_microsecond_interval() {
    let message = invalid_message(
        stream_set("[ { label = \"red\", start_s = 1.0, end_s = 1.0000000001 } ]").open(),
    );
    assert!(message.contains("microsecond"), "{message}");
}

#[test]
fn non_finite_and_negative_times() {
    for (truth, want) in [
        (
            "[ { label = \"red\", start_s = nan, end_s = 3.0 } ]",
            "finite",
        ),
        (
            "[ { label = \"red\", start_s = 0.0, end_s = inf } ]",
            "finite",
        ),
        (
            "[ { label = \"red\", start_s = -1.0, end_s = 3.0 } ]",
            "negative",
        ),
    ] {
        let message = invalid_message(stream_set(truth).open());
        assert!(message.contains(want), "{message}");
        assert!(message.contains("streams/a.y4m"), "{message}");
    }
}

#[test]
fn empty_label_in_truth() {
    let message =
        invalid_message(stream_set("[ { label = \" \", start_s = 0.0, end_s = 3.0 } ]").open());
    assert!(message.contains("label is empty"), "{message}");
}

#[test]
fn overlapping_intervals_of_one_label() {
    let message = invalid_message(
        stream_set(
            "[ { label = \"red\", start_s = 5.0, end_s = 9.0 },\n\
               { label = \"blue\", start_s = 4.0, end_s = 8.0 },\n\
               { label = \"red\", start_s = 1.0, end_s = 6.0 } ]",
        )
        .open(),
    );
    assert!(message.contains("overlap"), "{message}");
    assert!(message.contains("`red`"), "{message}");
    assert!(message.contains("1 s to 6 s"), "{message}");
    assert!(message.contains("5 s to 9 s"), "{message}");
    assert!(message.contains("streams/a.y4m"), "{message}");
}

#[test]
fn overlap_with_an_earlier_long_interval() {
    // The third interval overlaps the first, not the second.
    let message = invalid_message(
        stream_set(
            "[ { label = \"red\", start_s = 0.0, end_s = 10.0 },\n\
               { label = \"red\", start_s = 1.0, end_s = 2.0 } ]",
        )
        .open(),
    );
    assert!(message.contains("0 s to 10 s"), "{message}");
}

#[test]
fn missing_files() {
    for (body, missing) in [
        ("[[images]]\nfolder = \"photos\"\n", "photos"),
        ("[[images]]\nmanifest = \"list.csv\"\n", "list.csv"),
        ("[[streams]]\npath = \"streams/gone.y4m\"\n", "gone.y4m"),
    ] {
        let dir = TempDir::new();
        dir.set_file(body);
        let err = dir.open().unwrap_err();
        assert!(
            matches!(&err, SetError::MissingPath { path } if path.ends_with(missing)),
            "{err:?}"
        );
        assert!(err.to_string().contains(missing), "{err}");
    }
    let dir = TempDir::new();
    dir.write("list.csv", "path,labels\npics/gone.png,red\n");
    dir.set_file("[[images]]\nmanifest = \"list.csv\"\n");
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::MissingPath { path } if path.ends_with("pics/gone.png")),
        "{err:?}"
    );
}

#[test]
fn loose_image_in_images_root() {
    let dir = TempDir::new();
    dir.touch(&["images/red/a.png", "images/stray.jpg"]);
    dir.set_file("[[images]]\nfolder = \"images\"\n");
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::LooseImage { path } if path.ends_with("images/stray.jpg")),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("images must be in a label folder or clean/: "),
        "{message}"
    );
    assert!(message.contains("stray.jpg"), "{message}");
}

#[test]
fn image_folder_without_images() {
    let dir = TempDir::new();
    dir.touch(&["images/red/notes.txt", "images/clean/deeper/a.png", "a.y4m"]);
    dir.set_file("[[images]]\nfolder = \"images\"\n[[streams]]\npath = \"a.y4m\"\n");
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::NoImages { path } if path.ends_with("images")),
        "{err:?}"
    );
}

#[test]
fn image_listed_twice() {
    let dir = TempDir::new();
    dir.touch(&["images/red/a.png"]);
    dir.write("l.csv", "path,labels\n./images/red/a.png,\n");
    dir.set_file("[[images]]\nfolder = \"images\"\n[[images]]\nmanifest = \"l.csv\"\n");
    let message = invalid_message(dir.open());
    assert!(message.contains("images/red/a.png"), "{message}");
    assert!(message.contains("twice"), "{message}");
}

#[test]
fn too_large_set_file() {
    let dir = TempDir::new();
    let mut text = String::from("format = \"prescreen-eval-set\"\nversion = 1\n");
    text.push_str(&"#".repeat(SET_FILE_LIMIT as usize));
    dir.write(SET_FILE, &text);
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::TooLarge { path, limit } if path.ends_with(SET_FILE) && *limit == SET_FILE_LIMIT),
        "{err:?}"
    );
    assert!(err.to_string().contains(SET_FILE), "{err}");
}

#[test]
fn set_file_must_be_regular() {
    let dir = TempDir::new();
    fs::create_dir_all(dir.path().join(SET_FILE)).unwrap();
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::NotRegular { path } if path.ends_with(SET_FILE)),
        "{err:?}"
    );
}

#[test]
fn set_file_must_be_utf8() {
    let dir = TempDir::new();
    fs::write(dir.path().join(SET_FILE), b"format = \"\xff\"\n").unwrap();
    let message = invalid_message(dir.open());
    assert!(message.contains("UTF-8"), "{message}");
}

#[test]
fn empty_set() {
    let dir = TempDir::new();
    dir.set_file("");
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::Empty { path } if path == dir.path()),
        "{err:?}"
    );
    dir.set_file("images = []\nstreams = []\n");
    assert!(matches!(dir.open(), Err(SetError::Empty { .. })));
    // No set file and nothing in the folder.
    let bare = TempDir::new();
    assert!(matches!(bare.open(), Err(SetError::NoImages { .. })));
}

#[test]
fn duplicate_stream() {
    let dir = TempDir::new();
    dir.touch(&["streams/a.y4m"]);
    dir.set_file("[[streams]]\npath = \"streams/a.y4m\"\n[[streams]]\npath = \"streams/a.y4m\"\n");
    let message = invalid_message(dir.open());
    assert!(
        message.contains("`streams/a.y4m` is listed twice"),
        "{message}"
    );
    // The same file in another spelling.
    dir.set_file(
        "[[streams]]\npath = \"streams/a.y4m\"\n[[streams]]\npath = \"./streams/a.y4m\"\n",
    );
    let message = invalid_message(dir.open());
    assert!(message.contains("./streams/a.y4m"), "{message}");
}

#[test]
fn stream_kinds_and_fps() {
    let dir = TempDir::new();
    dir.touch(&["a.y4m", "b.mp4", "seq/1.png"]);
    fs::create_dir_all(dir.path().join("empty-seq")).unwrap();
    for (body, want) in [
        ("path = \"a.y4m\"\nfps = 30.0\n", "only for image sequences"),
        ("path = \"b.mp4\"\n", ".y4m file or a folder"),
        ("path = \"seq\"\nfps = 0.0\n", "`fps` must be"),
        ("path = \"seq\"\nfps = 240.5\n", "`fps` must be"),
        ("path = \"seq\"\nfps = nan\n", "`fps` must be"),
    ] {
        dir.set_file(&format!("[[streams]]\n{body}"));
        let message = invalid_message(dir.open());
        assert!(message.contains(want), "{body}: {message}");
    }
    dir.set_file("[[streams]]\npath = \"seq\"\nfps = 240.0\n");
    dir.open().unwrap();
    dir.set_file("[[streams]]\npath = \"empty-seq\"\n");
    let err = dir.open().unwrap_err();
    assert!(
        matches!(&err, SetError::NoImages { path } if path.ends_with("empty-seq")),
        "{err:?}"
    );
}

#[test]
fn unknown_label() {
    let dir = TempDir::new();
    dir.touch(&["images/red/a.png", "images/violence/b.png", "s.y4m"]);
    dir.set_file(
        "[[images]]\nfolder = \"images\"\n[[streams]]\npath = \"s.y4m\"\n\
         truth = [ { label = \"gore\", start_s = 0.0, end_s = 1.0 } ]\n",
    );
    let set = dir.open().unwrap();
    assert_eq!(set.labels(), strings(&["gore", "red", "violence"]));
    let known = strings(&["red", "nudity"]);
    let err = set.check_labels(&known).unwrap_err();
    match &err {
        SetError::UnknownLabel {
            label,
            source_name,
            known: k,
        } => {
            assert_eq!(label, "violence");
            assert_eq!(source_name, "images/violence/b.png");
            assert_eq!(k, &known);
        }
        other => panic!("expected UnknownLabel, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("violence"), "{message}");
    assert!(message.contains("images/violence/b.png"), "{message}");
    assert!(message.contains("red, nudity"), "{message}");
    // Truth labels too.
    let err = set
        .check_labels(&strings(&["red", "violence"]))
        .unwrap_err();
    assert!(
        matches!(&err, SetError::UnknownLabel { label, source_name, .. } if label == "gore" && source_name == "s.y4m"),
        "{err:?}"
    );
    set.check_labels(&strings(&["gore", "red", "violence"]))
        .unwrap();
}

#[test]
fn csv_bad_header() {
    for text in ["file,labels\na.png,red\n", "path\na.png\n", "", "\n\n"] {
        let dir = TempDir::new();
        dir.touch(&["a.png"]);
        dir.write("l.csv", text);
        dir.set_file("[[images]]\nmanifest = \"l.csv\"\n");
        let message = invalid_message(dir.open());
        assert!(message.contains("l.csv"), "{message}");
        assert!(message.contains("header"), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }
}

#[test]
fn csv_wrong_field_counts() {
    for (row, want) in [
        ("a.png,red,extra", "found 3"),
        ("a.png", "found 1"),
        ("\"a,b.png\",red", "quoted"),
    ] {
        let dir = TempDir::new();
        dir.touch(&["a.png"]);
        dir.write("l.csv", &format!("path,labels\n\n{row}\n"));
        dir.set_file("[[images]]\nmanifest = \"l.csv\"\n");
        let message = invalid_message(dir.open());
        assert!(message.contains("l.csv"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains(want), "{message}");
        assert!(message.contains("may not contain ','"), "{message}");
    }
}

#[test]
fn csv_other_rows() {
    for (row, want) in [
        ("notes.txt,red", "notes.txt is not a .png"),
        ("a.png,clean", "`clean` is not a label"),
    ] {
        let dir = TempDir::new();
        dir.touch(&["a.png", "notes.txt"]);
        dir.write("l.csv", &format!("path,labels\n{row}\n"));
        dir.set_file("[[images]]\nmanifest = \"l.csv\"\n");
        let message = invalid_message(dir.open());
        assert!(message.contains(want), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }
    let dir = TempDir::new();
    dir.write("l.csv", "path,labels\n");
    dir.set_file("[[images]]\nmanifest = \"l.csv\"\n");
    assert!(matches!(dir.open(), Err(SetError::NoImages { .. })));
}

#[test]
fn writer_round_trip() {
    let dir = TempDir::new();
    dir.touch(&[
        "streams/red \"quoted\".y4m",
        "streams/seq/1.png",
        "streams/clean.y4m",
        "images/red/a.png",
    ]);
    let writer = SetFileWriter {
        images: vec![ImagesEntry {
            folder: Some("images".into()),
            manifest: None,
        }],
        streams: vec![
            StreamEntry {
                path: "streams/red \"quoted\".y4m".into(),
                fps: None,
                truth: vec![
                    TruthEntry {
                        label: "red".into(),
                        start_s: 4.0,
                        end_s: 7.0,
                    },
                    TruthEntry {
                        label: "red".into(),
                        start_s: 0.1,
                        end_s: 1.0 / 3.0,
                    },
                ],
            },
            StreamEntry {
                path: "streams/seq".into(),
                fps: Some(24.0),
                truth: vec![TruthEntry {
                    label: "nudity".into(),
                    start_s: 0.0,
                    end_s: 2.0,
                }],
            },
            StreamEntry {
                path: "streams/clean.y4m".into(),
                fps: None,
                truth: vec![],
            },
        ],
    };
    let text = writer.to_toml();
    assert!(text.starts_with('#'), "{text}");
    assert!(
        text.contains("format = \"prescreen-eval-set\"\nversion = 1\n"),
        "{text}"
    );
    dir.write(SET_FILE, &text);
    let set = dir.open().unwrap();
    assert_eq!(set.images.len(), 1);
    assert_eq!(set.streams.len(), 3);
    for (stream, entry) in set.streams.iter().zip(&writer.streams) {
        assert_eq!(stream.name, entry.path);
        let mut want: Vec<TruthInterval> = entry
            .truth
            .iter()
            .map(|t| TruthInterval {
                label: t.label.clone(),
                start_us: to_us(t.start_s),
                end_us: to_us(t.end_s),
            })
            .collect();
        want.sort_by(|a, b| (&a.label, a.start_us).cmp(&(&b.label, b.start_us)));
        assert_eq!(stream.truths, want);
    }
    assert_eq!(
        set.streams[1].source,
        StreamSource::Sequence {
            folder: dir.path().join("streams/seq"),
            fps: 24.0
        }
    );
    // And the entries themselves read back unchanged.
    let raw: RawSetFile = toml::from_str(&text).unwrap();
    assert_eq!(raw.images, writer.images);
    assert_eq!(raw.streams, writer.streams);
}

#[test]
fn default_writer_is_a_valid_but_empty_set() {
    let dir = TempDir::new();
    dir.write(SET_FILE, &SetFileWriter::default().to_toml());
    assert!(matches!(dir.open(), Err(SetError::Empty { .. })));
}
