//! The labelled-set format of `prescreen eval`: still images and video streams with their ground
//! truth, as a trust-and-safety team describes them, so that the harness can measure a model and a
//! policy against them.
//!
//! This module only lists and validates: it never decodes an image or a stream (it recognises
//! images by their file name).
//!
//! # A set is a folder
//!
//! A set is a folder that either holds a set file, `eval-set.toml`, or, without one, is itself
//! a folder of per-label image folders (see [Without a set file](#without-a-set-file)).
//!
//! Every path in the set file is relative to the set folder (absolute paths work too). A path
//! with a `..` component is refused, and so is an empty one.
//!
//! ## The set file
//!
//! ```toml
//! # A labelled set for `prescreen eval`.
//! format = "prescreen-eval-set"   # required, exactly this
//! version = 1                      # required; 1 is the only version
//!
//! # Still images in per-label folders.
//! [[images]]
//! folder = "images"
//!
//! # Still images listed in a CSV manifest.
//! [[images]]
//! manifest = "images.csv"
//!
//! # A .y4m stream with two intervals of `red`.
//! [[streams]]
//! path = "streams/red.y4m"
//! truth = [
//!     { label = "red", start_s = 4.0, end_s = 7.0 },
//!     { label = "red", start_s = 12.5, end_s = 15.0 },
//! ]
//!
//! # A folder of images played as a sequence at 10 frames per second; no truth: a clean stream.
//! [[streams]]
//! path = "streams/lobby"
//! fps = 10.0
//! ```
//!
//! The file must be a regular file of at most 1 MiB, in UTF-8. Its keys:
//!
//! - `format` (required): exactly `"prescreen-eval-set"` ([`SET_FORMAT`]).
//! - `version` (required): the integer `1` ([`SET_VERSION`]).
//! - `[[images]]` (any number): a source of still images; each entry has exactly one of
//!   - `folder`: a folder of per-label folders (see [Image folders](#image-folders)), or
//!   - `manifest`: a CSV manifest (see [CSV manifests](#csv-manifests)).
//! - `[[streams]]` (any number): a video stream, with
//!   - `path` (required): a `.y4m` file (any case of the extension), or a folder of images
//!     played as a sequence in file-name order (the same images as in an image folder:
//!     `.png`, `.jpg`, `.jpeg`, directly in the folder);
//!   - `fps` (only for image sequences; a `.y4m` file carries its own frame rate): the
//!     sequence's frame rate, above 0 and at most 240; 30 when absent;
//!   - `truth` (may be absent or empty, for a clean stream): the intervals where a label is
//!     present, each `{ label = "...", start_s = ..., end_s = ... }`, in seconds from the
//!     stream's first frame. Times are finite, `0 <= start_s < end_s`, and are rounded to whole
//!     microseconds (an interval must stay at least a microsecond long). Intervals of the same
//!     label in one stream must not overlap (they may touch: one may start where the other
//!     ends); intervals of different labels may.
//!
//! Any other key, at any level, is an error. Two streams may not share a `path` (nor name the
//! same file in two spellings). The set must hold at least one image or one stream.
//!
//! ## Image folders
//!
//! Each folder directly inside an image folder is named after a label and holds images with
//! that label; the folder `clean` holds images with none of the labels:
//!
//! ```text
//! images/
//!   red/       a.png  b.jpg      -> labelled `red`
//!   nudity/    c.jpeg            -> labelled `nudity`
//!   clean/     d.png  e.PNG      -> clean
//! ```
//!
//! Images are the files ending in `.png`, `.jpg` or `.jpeg` (in any case) directly in a label
//! folder; deeper folders and other files are skipped. They are taken in label-folder order, then
//! file-name order. An image directly in the image folder itself (outside any label folder) is an
//! error; other loose files there (a README, the set file, a manifest) are skipped. Names that
//! start with `.` (hidden files and folders) are skipped everywhere. An image folder with no image
//! in any of its label folders is an error. Empty label folders are allowed and name no label.
//!
//! ## CSV manifests
//!
//! ```text
//! path,labels
//! images/a.png,red
//! images/b.png,red;nudity
//! images/c.png,
//! ```
//!
//! The first line is the header `path,labels`. Each other line is an image path (relative to the
//! set folder, like every path in the set file) and its labels separated by `;`, empty for a clean
//! image. Blank lines are skipped, spaces around fields and labels are trimmed, and a line may end
//! in `\r\n`. There is no quoting: a field cannot contain `,` (nor start with `"`). Every image
//! must exist and end in `.png`, `.jpg` or `.jpeg`. `clean` is not a label (leave the labels empty
//! instead). Images keep the manifest's order. A manifest may be at most 64 MiB and must list at
//! least one image.
//!
//! ## Without a set file
//!
//! A folder without `eval-set.toml` is read as if its set file held the one entry
//! `[[images]] folder = "."`: its label folders and `clean/` hold images, and it has no streams.
//!
//! ## Across the set
//!
//! One image may appear only once in the whole set (through folders and manifests together). An
//! image is named by its path relative to the set folder, with `/` separators (or by its full path
//! when it lies outside the set folder). Labels are checked against the model's with
//! [`LabelledSet::check_labels`].
//!
//! The file is written by [`SetFileWriter::to_toml`] (used by `prescreen make-eval-set`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `format` value.
pub const SET_FORMAT: &str = "prescreen-eval-set";
/// The known version.
pub const SET_VERSION: u32 = 1;
/// The file name.
pub const SET_FILE: &str = "eval-set.toml";

/// The largest set file read, in bytes.
const SET_FILE_LIMIT: u64 = 1 << 20;
/// The largest CSV manifest read, in bytes.
const MANIFEST_LIMIT: u64 = 64 << 20;
/// The frame rate of an image sequence without `fps`.
const DEFAULT_FPS: f64 = 30.0;
/// The highest frame rate of an image sequence.
const MAX_FPS: f64 = 240.0;
/// The folder of clean images in an image folder.
const CLEAN: &str = "clean";

/// Why a set could not be opened or does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is larger than its limit.
    #[error("{path} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A file is not a regular file (a folder, a device, a pipe...).
    #[error("{path} is not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// The set file is not valid TOML or does not fit the format (an unknown key, a value of
    /// the wrong type...).
    #[error("{path}: {message}")]
    Parse {
        /// The set file.
        path: PathBuf,
        /// What is wrong, with its position.
        message: String,
    },
    /// The set file's `format` is missing or not [`SET_FORMAT`].
    #[error("{path}: `format` must be \"{SET_FORMAT}\", found {found}")]
    Format {
        /// The set file.
        path: PathBuf,
        /// The value found, as TOML, or `nothing` when absent.
        found: String,
    },
    /// The set file's `version` is missing or unknown.
    #[error("{path}: `version` must be {SET_VERSION}, found {found}")]
    Version {
        /// The set file.
        path: PathBuf,
        /// The value found, as TOML, or `nothing` when absent.
        found: String,
    },
    /// A value breaks a rule of the format (see the module docs).
    #[error("{path}: {what}")]
    Invalid {
        /// The file or folder at fault (the set file for its entries, a manifest for its lines).
        path: PathBuf,
        /// What is wrong, naming the entry, line or path.
        what: String,
    },
    /// A file or folder the set names does not exist.
    #[error("{path} does not exist")]
    MissingPath {
        /// The path, resolved against the set folder.
        path: PathBuf,
    },
    /// An image lies directly in an image folder instead of in a label folder.
    #[error("images must be in a label folder or {CLEAN}/: {path}")]
    LooseImage {
        /// The image.
        path: PathBuf,
    },
    /// An image folder, manifest or image sequence holds no image.
    #[error("{path} holds no .png, .jpg or .jpeg image")]
    NoImages {
        /// The image folder, manifest or sequence folder.
        path: PathBuf,
    },
    /// The set has neither images nor streams.
    #[error("the set {path} has no images and no streams")]
    Empty {
        /// The set folder.
        path: PathBuf,
    },
    /// The set names a label the model does not know.
    #[error(
        "the label `{label}` of {source_name} is not one of the model's labels ({})",
        known.join(", ")
    )]
    UnknownLabel {
        /// The label.
        label: String,
        /// The image or stream that names it.
        source_name: String,
        /// The model's labels.
        known: Vec<String>,
    },
}

/// An opened and validated set.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSet {
    /// The set folder.
    pub root: PathBuf,
    /// Every still image: per `[[images]]` entry, in the file's order.
    pub images: Vec<LabelledImage>,
    /// Every stream, in the file's order.
    pub streams: Vec<LabelledStream>,
}

/// A still image and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    /// The file (the set folder joined with the path).
    pub path: PathBuf,
    /// The path relative to the set folder, with `/` separators (the full path when the image
    /// lies outside the set folder).
    pub name: String,
    /// The image's labels, sorted and deduplicated; empty for a clean image.
    pub labels: Vec<String>,
}

/// Where a stream's frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamSource {
    /// A `.y4m` file.
    Y4m(PathBuf),
    /// A folder of images played in file-name order.
    Sequence {
        /// The folder.
        folder: PathBuf,
        /// The frame rate, in (0, 240].
        fps: f64,
    },
}

/// A stream and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledStream {
    /// The stream's `path`, as written in the set file.
    pub name: String,
    /// Its frames.
    pub source: StreamSource,
    /// Where its labels are present, sorted by label, then start; empty for a clean stream.
    pub truths: Vec<TruthInterval>,
}

/// One interval in which a label is present in a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthInterval {
    /// The label.
    pub label: String,
    /// The start, in microseconds from the stream's first frame (inclusive).
    pub start_us: i64,
    /// The end, in microseconds from the stream's first frame (exclusive); above `start_us`.
    pub end_us: i64,
}

/// A set file to write (used by `prescreen make-eval-set`, which generates a test set).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetFileWriter {
    /// The `[[images]]` entries.
    pub images: Vec<ImagesEntry>,
    /// The `[[streams]]` entries.
    pub streams: Vec<StreamEntry>,
}

/// An `[[images]]` entry: exactly one of `folder` and `manifest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesEntry {
    /// A folder of per-label folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// A CSV manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

/// A `[[streams]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamEntry {
    /// A `.y4m` file or a folder of images.
    pub path: String,
    /// The frame rate of an image sequence (30 when absent); not for `.y4m` files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// The ground truth; empty for a clean stream.
    #[serde(default)]
    pub truth: Vec<TruthEntry>,
}

/// A ground-truth interval of a [`StreamEntry`], in seconds from the stream's first frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthEntry {
    /// The label.
    pub label: String,
    /// The start, in seconds.
    pub start_s: f64,
    /// The end, in seconds.
    pub end_s: f64,
}

/// The set file as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetFile {
    #[allow(dead_code)] // checked before, from the plain table
    format: toml::Value,
    #[allow(dead_code)] // checked before, from the plain table
    version: toml::Value,
    #[serde(default)]
    images: Vec<ImagesEntry>,
    #[serde(default)]
    streams: Vec<StreamEntry>,
}

impl SetFileWriter {
    /// The file's text: a header comment, format and version, then the entries.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("# A labelled set for `prescreen eval`.\n");
        out.push_str(
            "# Paths are relative to this file's folder; truth times are seconds from the\n",
        );
        out.push_str("# stream's first frame.\n");
        let _ = writeln!(out, "format = {}", toml_str(SET_FORMAT));
        let _ = writeln!(out, "version = {SET_VERSION}");
        for entry in &self.images {
            out.push_str("\n[[images]]\n");
            if let Some(folder) = &entry.folder {
                let _ = writeln!(out, "folder = {}", toml_str(folder));
            }
            if let Some(manifest) = &entry.manifest {
                let _ = writeln!(out, "manifest = {}", toml_str(manifest));
            }
        }
        for stream in &self.streams {
            out.push_str("\n[[streams]]\n");
            let _ = writeln!(out, "path = {}", toml_str(&stream.path));
            if let Some(fps) = stream.fps {
                let _ = writeln!(out, "fps = {}", toml_float(fps));
            }
            if stream.truth.is_empty() {
                out.push_str("truth = []\n");
            } else {
                out.push_str("truth = [\n");
                for t in &stream.truth {
                    let _ = writeln!(
                        out,
                        "    {{ label = {}, start_s = {}, end_s = {} }},",
                        toml_str(&t.label),
                        toml_float(t.start_s),
                        toml_float(t.end_s)
                    );
                }
                out.push_str("]\n");
            }
        }
        out
    }
}

/// `s` as a TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `x` as a TOML float literal (always with a fraction or exponent, so it reads back as a float).
fn toml_float(x: f64) -> String {
    toml::Value::Float(x).to_string()
}

impl LabelledSet {
    /// Opens and validates a set folder (see the module docs).
    pub fn open(root: &Path) -> Result<Self, SetError> {
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(SetError::Invalid {
                    path: root.to_path_buf(),
                    what: "a set must be a folder".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SetError::MissingPath {
                    path: root.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(SetError::Io {
                    path: root.to_path_buf(),
                    source,
                })
            }
        }
        let file = root.join(SET_FILE);
        let has_file = match fs::symlink_metadata(&file) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => return Err(SetError::Io { path: file, source }),
        };
        let mut opener = Opener {
            root,
            file: file.clone(),
            images: Vec::new(),
            seen_images: HashSet::new(),
        };
        if !has_file {
            opener.folder_images(root, root)?;
            if opener.images.is_empty() {
                return Err(SetError::Empty {
                    path: root.to_path_buf(),
                });
            }
            return Ok(Self {
                root: root.to_path_buf(),
                images: opener.images,
                streams: Vec::new(),
            });
        }

        let text = read_limited(&file, SET_FILE_LIMIT)?;
        let raw = parse_set_file(&file, &text)?;
        for (i, entry) in raw.images.iter().enumerate() {
            let at = format!("[[images]] entry {}", i + 1);
            match (&entry.folder, &entry.manifest) {
                (Some(folder), None) => {
                    let path = opener.resolve(folder, &at)?;
                    opener.folder_images(&path, &path)?;
                }
                (None, Some(manifest)) => {
                    let path = opener.resolve(manifest, &at)?;
                    opener.manifest_images(&path)?;
                }
                (Some(_), Some(_)) => {
                    return Err(opener.invalid(format!(
                        "{at} has both `folder` and `manifest`; give one per entry"
                    )))
                }
                (None, None) => {
                    return Err(opener.invalid(format!(
                        "{at} has neither `folder` nor `manifest`; give one"
                    )))
                }
            }
        }
        let mut streams: Vec<LabelledStream> = Vec::with_capacity(raw.streams.len());
        let mut stream_paths = HashSet::new();
        for entry in &raw.streams {
            let stream = opener.stream(entry)?;
            if streams.iter().any(|s| s.name == stream.name)
                || !stream_paths.insert(stream_path(&stream.source).to_path_buf())
            {
                return Err(opener.invalid(format!("the stream `{}` is listed twice", stream.name)));
            }
            streams.push(stream);
        }
        if opener.images.is_empty() && streams.is_empty() {
            return Err(SetError::Empty {
                path: root.to_path_buf(),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            images: opener.images,
            streams,
        })
    }

    /// Every label the set names (image labels and truth labels), sorted, deduped.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self
            .images
            .iter()
            .flat_map(|i| i.labels.iter())
            .chain(
                self.streams
                    .iter()
                    .flat_map(|s| s.truths.iter().map(|t| &t.label)),
            )
            .cloned()
            .collect();
        labels.sort();
        labels.dedup();
        labels
    }

    /// Errors with [`SetError::UnknownLabel`] when the set names a label not in `known` (the
    /// model's labels); the first such label, in image then stream order.
    pub fn check_labels(&self, known: &[String]) -> Result<(), SetError> {
        let images = self
            .images
            .iter()
            .flat_map(|i| i.labels.iter().map(move |l| (l, &i.name)));
        let streams = self
            .streams
            .iter()
            .flat_map(|s| s.truths.iter().map(move |t| (&t.label, &s.name)));
        match images.chain(streams).find(|(l, _)| !known.contains(l)) {
            None => Ok(()),
            Some((label, source_name)) => Err(SetError::UnknownLabel {
                label: label.clone(),
                source_name: source_name.clone(),
                known: known.to_vec(),
            }),
        }
    }
}

/// The path a stream's source reads.
fn stream_path(source: &StreamSource) -> &Path {
    match source {
        StreamSource::Y4m(path) => path,
        StreamSource::Sequence { folder, .. } => folder,
    }
}

/// Parses the set file's text: format and version first (so that a file of another format or
/// version says so, whatever its other keys), then the whole file.
fn parse_set_file(file: &Path, text: &str) -> Result<RawSetFile, SetError> {
    let parse_error = |e: toml::de::Error| SetError::Parse {
        path: file.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    };
    let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    let found = |key: &str| {
        table
            .get(key)
            .map_or_else(|| "nothing".to_owned(), |v| v.to_string())
    };
    if table.get("format").and_then(|v| v.as_str()) != Some(SET_FORMAT) {
        return Err(SetError::Format {
            path: file.to_path_buf(),
            found: found("format"),
        });
    }
    if table.get("version").and_then(|v| v.as_integer()) != Some(i64::from(SET_VERSION)) {
        return Err(SetError::Version {
            path: file.to_path_buf(),
            found: found("version"),
        });
    }
    toml::from_str(text).map_err(parse_error)
}

/// Reads a regular file of at most `limit` bytes as UTF-8.
fn read_limited(path: &Path, limit: u64) -> Result<String, SetError> {
    let io = |source| SetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SetError::MissingPath {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    // Checked before opening: opening a pipe would block.
    if !meta.is_file() {
        return Err(SetError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let file = fs::File::open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(SetError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(SetError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|e| SetError::Invalid {
        path: path.to_path_buf(),
        what: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Whether `path` names an image this module lists: `.png`, `.jpg` or `.jpeg`, in any case.
fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        e.eq_ignore_ascii_case("png")
            || e.eq_ignore_ascii_case("jpg")
            || e.eq_ignore_ascii_case("jpeg")
    })
}

/// Whether a file or folder name is hidden (starts with `.`).
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// What a path is, following symbolic links.
enum Kind {
    Missing,
    File,
    Folder,
    Other,
}

fn kind(path: &Path) -> Result<Kind, SetError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Kind::File),
        Ok(meta) if meta.is_dir() => Ok(Kind::Folder),
        Ok(_) => Ok(Kind::Other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kind::Missing),
        Err(source) => Err(SetError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The entries of a folder that are not hidden, sorted by name.
fn list(folder: &Path) -> Result<Vec<PathBuf>, SetError> {
    let io = |source| SetError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(folder).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !is_hidden(&entry.file_name()) {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// The images directly in `folder`, sorted by name.
fn images_in(folder: &Path) -> Result<Vec<PathBuf>, SetError> {
    let mut images = Vec::new();
    for path in list(folder)? {
        if is_image(&path) && matches!(kind(&path)?, Kind::File) {
            images.push(path);
        }
    }
    Ok(images)
}

/// `path` without its `.` components (`.` itself when nothing else is left).
fn normalize(path: &Path) -> PathBuf {
    let path: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path
    }
}

/// Seconds to whole microseconds, rounded (saturating far outside `i64`).
fn to_us(seconds: f64) -> i64 {
    (seconds * 1e6).round() as i64
}

/// State while opening a set.
struct Opener<'a> {
    root: &'a Path,
    /// The set file (whether present or not).
    file: PathBuf,
    images: Vec<LabelledImage>,
    /// The names of the images so far.
    seen_images: HashSet<String>,
}

impl Opener<'_> {
    /// An [`SetError::Invalid`] about the set file.
    fn invalid(&self, what: String) -> SetError {
        SetError::Invalid {
            path: self.file.clone(),
            what,
        }
    }

    /// Resolves a path written in `in_file` (at `at`) against the set folder, refusing empty
    /// paths and `..`.
    fn resolve_in(&self, written: &str, in_file: &Path, at: &str) -> Result<PathBuf, SetError> {
        let invalid = |what: String| SetError::Invalid {
            path: in_file.to_path_buf(),
            what,
        };
        if written.trim().is_empty() {
            return Err(invalid(format!("{at}: the path is empty")));
        }
        let path = Path::new(written);
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(invalid(format!(
                "{at}: the path `{written}` has a `..` component; paths must not go up"
            )));
        }
        Ok(normalize(&self.root.join(path)))
    }

    /// [`Self::resolve_in`] for a path of the set file.
    fn resolve(&self, written: &str, at: &str) -> Result<PathBuf, SetError> {
        self.resolve_in(written, &self.file, at)
    }

    /// The name of an image: its path relative to the set folder with `/` separators, or its
    /// full path outside the set folder.
    fn image_name(&self, path: &Path) -> String {
        let root = normalize(self.root);
        let relative = if root == Path::new(".") {
            path.is_relative().then_some(path)
        } else {
            path.strip_prefix(&root).ok()
        };
        match relative {
            Some(relative) => relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.display().to_string(),
        }
    }

    /// Adds an image, refusing one listed before; `listed_in` names where it was listed.
    fn push_image(
        &mut self,
        path: PathBuf,
        mut labels: Vec<String>,
        listed_in: &Path,
    ) -> Result<(), SetError> {
        let path = normalize(&path);
        let name = self.image_name(&path);
        if !self.seen_images.insert(name.clone()) {
            return Err(SetError::Invalid {
                path: listed_in.to_path_buf(),
                what: format!("the image {name} is listed twice in the set"),
            });
        }
        labels.sort();
        labels.dedup();
        self.images.push(LabelledImage { path, name, labels });
        Ok(())
    }

    /// Adds the images of an image folder (per-label folders and `clean/`). `shown` is the
    /// folder as errors name it.
    fn folder_images(&mut self, folder: &Path, shown: &Path) -> Result<(), SetError> {
        match kind(folder)? {
            Kind::Folder => {}
            Kind::Missing => {
                return Err(SetError::MissingPath {
                    path: shown.to_path_buf(),
                })
            }
            Kind::File | Kind::Other => {
                return Err(SetError::Invalid {
                    path: shown.to_path_buf(),
                    what: "an image folder must be a folder".into(),
                })
            }
        }
        let before = self.images.len();
        for path in list(folder)? {
            match kind(&path)? {
                Kind::Folder => {
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                        return Err(SetError::Invalid {
                            path,
                            what: "a label folder's name must be UTF-8".into(),
                        });
                    };
                    let labels = if name == CLEAN {
                        Vec::new()
                    } else {
                        vec![name.to_owned()]
                    };
                    for image in images_in(&path)? {
                        self.push_image(image, labels.clone(), folder)?;
                    }
                }
                Kind::File if is_image(&path) => return Err(SetError::LooseImage { path }),
                // Not images: a README, the set file, a manifest... Or gone since listed.
                Kind::File | Kind::Other | Kind::Missing => {}
            }
        }
        if self.images.len() == before {
            return Err(SetError::NoImages {
                path: shown.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Adds the images of a CSV manifest.
    fn manifest_images(&mut self, manifest: &Path) -> Result<(), SetError> {
        let text = read_limited(manifest, MANIFEST_LIMIT)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let invalid = |line: usize, what: String| SetError::Invalid {
            path: manifest.to_path_buf(),
            what: format!("line {line}: {what}"),
        };
        let before = self.images.len();
        let mut header_seen = false;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if !header_seen {
                if fields != ["path", "labels"] {
                    return Err(invalid(
                        n,
                        format!("the header must be `path,labels`, found `{}`", line.trim()),
                    ));
                }
                header_seen = true;
                continue;
            }
            if let Some(quoted) = fields.iter().find(|f| f.starts_with('"')) {
                return Err(invalid(
                    n,
                    format!(
                        "quoted fields are not supported (found {quoted}); \
                         a field may not contain ','"
                    ),
                ));
            }
            let [written, labels] = fields[..] else {
                return Err(invalid(
                    n,
                    format!(
                        "expected 2 fields (path,labels), found {}; a field may not contain ','",
                        fields.len()
                    ),
                ));
            };
            let at = format!("line {n}");
            let path = self.resolve_in(written, manifest, &at)?;
            match kind(&path)? {
                Kind::File => {}
                Kind::Missing => return Err(SetError::MissingPath { path }),
                Kind::Folder | Kind::Other => return Err(SetError::NotRegular { path }),
            }
            if !is_image(&path) {
                return Err(invalid(
                    n,
                    format!("{written} is not a .png, .jpg or .jpeg image"),
                ));
            }
            let mut list = Vec::new();
            for label in labels.split(';').map(str::trim).filter(|l| !l.is_empty()) {
                if label == CLEAN {
                    return Err(invalid(
                        n,
                        format!(
                            "`{CLEAN}` is not a label; leave the labels empty for a clean image"
                        ),
                    ));
                }
                list.push(label.to_owned());
            }
            self.push_image(path, list, manifest)?;
        }
        if !header_seen {
            return Err(invalid(1, "the header `path,labels` is missing".into()));
        }
        if self.images.len() == before {
            return Err(SetError::NoImages {
                path: manifest.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Validates a `[[streams]]` entry.
    fn stream(&self, entry: &StreamEntry) -> Result<LabelledStream, SetError> {
        let name = &entry.path;
        let at = format!("the stream `{name}`");
        let path = self.resolve(name, &at)?;
        let source = match kind(&path)? {
            Kind::Missing => return Err(SetError::MissingPath { path }),
            Kind::Other => return Err(SetError::NotRegular { path }),
            Kind::File => {
                let y4m = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("y4m"));
                if !y4m {
                    return Err(self.invalid(format!(
                        "{at}: a stream is a .y4m file or a folder of images"
                    )));
                }
                if entry.fps.is_some() {
                    return Err(self.invalid(format!(
                        "{at}: `fps` is only for image sequences; a .y4m file has its own"
                    )));
                }
                StreamSource::Y4m(path)
            }
            Kind::Folder => {
                let fps = entry.fps.unwrap_or(DEFAULT_FPS);
                if !(fps > 0.0 && fps <= MAX_FPS) {
                    return Err(self.invalid(format!(
                        "{at}: `fps` must be above 0 and at most {MAX_FPS}, found {fps}"
                    )));
                }
                if images_in(&path)?.is_empty() {
                    return Err(SetError::NoImages { path });
                }
                StreamSource::Sequence { folder: path, fps }
            }
        };
        let mut truths = Vec::with_capacity(entry.truth.len());
        for (i, t) in entry.truth.iter().enumerate() {
            let what = format!(
                "{at}: truth {} ({}, {} s to {} s)",
                i + 1,
                t.label,
                t.start_s,
                t.end_s
            );
            if t.label.trim().is_empty() {
                return Err(self.invalid(format!("{what}: the label is empty")));
            }
            if t.label == CLEAN {
                return Err(self.invalid(format!(
                    "{what}: `{CLEAN}` is not a label; a clean stream has no truth"
                )));
            }
            if !(t.start_s.is_finite() && t.end_s.is_finite()) {
                return Err(self.invalid(format!("{what}: times must be finite")));
            }
            if t.start_s < 0.0 {
                return Err(self.invalid(format!("{what}: start_s must not be negative")));
            }
            if t.start_s >= t.end_s {
                return Err(self.invalid(format!("{what}: start_s must be below end_s")));
            }
            let (start_us, end_us) = (to_us(t.start_s), to_us(t.end_s));
            if start_us >= end_us {
                return Err(self.invalid(format!(
                    "{what}: the interval is shorter than a microsecond or too far out"
                )));
            }
            truths.push(TruthInterval {
                label: t.label.clone(),
                start_us,
                end_us,
            });
        }
        truths.sort_by(|a, b| {
            (&a.label, a.start_us, a.end_us).cmp(&(&b.label, b.start_us, b.end_us))
        });
        for pair in truths.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.label == b.label && b.start_us < a.end_us {
                return Err(self.invalid(format!(
                    "{at}: the `{}` intervals {} s to {} s and {} s to {} s overlap",
                    a.label,
                    seconds(a.start_us),
                    seconds(a.end_us),
                    seconds(b.start_us),
                    seconds(b.end_us)
                )));
            }
        }
        Ok(LabelledStream {
            name: name.clone(),
            source,
            truths,
        })
    }
}

/// Microseconds as seconds, for messages.
fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests;
