use super::*;

/// A small valid manifest: a non-square input (so width and height cannot be swapped
/// unnoticed), binary-exact normalisation numbers, three labels, both variants.
const BASE: &str = r#"
schema = 1
id = "unit"
version = "1"
description = "unit-test manifest"

[source]
package = "p"
package_version = "1"
file = "f.onnx"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
license = "MIT"
attribution = "a"

[[files]]
variant = "float"
path = "m.onnx"
sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

[[files]]
variant = "int8"
path = "sub/m.int8.onnx"
sha256 = "FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210"

[input]
name = "in"
layout = "NHWC"
dtype = "f32"
width = 200
height = 100
channels = 3
channel_order = "BGR"
value_scale = 510.0
mean = [8.0, 2.0, 1.0]
std = [2.0, 4.0, 0.5]

[input.resize]
mode = "stretch"
width = 200
height = 100
filter = "bilinear"

[output]
name = "out"
shape = [1, 3]
activation = "softmax"
labels = ["a", "b", "c"]

[golden]
input = "ramp-v1"

[[golden.expect]]
variant = "float"
output = [0.25, 0.5, 0.25]
tolerance = 0.05

[[golden.expect]]
variant = "int8"
output = [0.5, 0.25, 0.25]
tolerance = 0.1
"#;

/// `BASE` with each `from` replaced once by `to` (each must occur).
fn with(replacements: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in replacements {
        assert!(text.contains(from), "BASE has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// `BASE` with the input size, the resize mode and size, and an optional crop replaced.
fn sized(input: (u32, u32), mode: &str, resize: (u32, u32), crop: Option<(u32, u32)>) -> String {
    let ((iw, ih), (rw, rh)) = (input, resize);
    let crop = crop
        .map(|(w, h)| format!("[input.crop]\nwidth = {w}\nheight = {h}\n"))
        .unwrap_or_default();
    with(&[
        (
            "width = 200\nheight = 100\nchannels",
            &format!("width = {iw}\nheight = {ih}\nchannels"),
        ),
        (
            "mode = \"stretch\"\nwidth = 200\nheight = 100\nfilter = \"bilinear\"\n",
            &format!(
                "mode = \"{mode}\"\nwidth = {rw}\nheight = {rh}\nfilter = \"bilinear\"\n{crop}"
            ),
        ),
    ])
}

fn accepted(text: &str) -> Manifest {
    Manifest::parse(text).unwrap_or_else(|e| panic!("refused: {e}\n{text}"))
}

fn refused(text: &str, named: &str) {
    match Manifest::parse(text) {
        Err(e) => assert!(e.contains(named), "{e:?} does not name {named:?}\n{text}"),
        Ok(_) => panic!("accepted, expected an error naming {named:?}:\n{text}"),
    }
}

/// Kills `shape` returning `[0; 4]` or `[1; 4]`, `len` returning 0 or 1, and `is_empty`
/// returning `true` or comparing with `!=`.
#[test]
fn shape_and_len_follow_the_layout() {
    let m = accepted(BASE);
    assert_eq!(m.input.shape(), [1, 100, 200, 3]);
    // 1 * 100 * 200 * 3 = 60_000.
    assert_eq!(m.input.len(), 60_000);
    assert!(!m.input.is_empty());
    let m = accepted(&with(&[("layout = \"NHWC\"", "layout = \"NCHW\"")]));
    assert_eq!(m.input.shape(), [1, 3, 100, 200]);
    assert_eq!(m.input.len(), 60_000);
}

/// Kills `is_empty` returning `false`: a zero-sized tensor (built by hand, never parsed) is empty.
#[test]
fn a_zero_sized_tensor_is_empty() {
    let mut spec = accepted(BASE).input;
    spec.width = 0;
    assert_eq!(spec.len(), 0);
    assert!(spec.is_empty());
}

/// Kills each operator mutant of `affine` (`/` -> `*` or `%` in either division, deleting the
/// `-` of the offset) and its constant replacements.
#[test]
fn affine_folds_scale_mean_and_std_exactly() {
    // scale = 510 / 255 / std = 2 / std; offset = -mean / std; all exact in f32:
    // std 2: (1, -8 / 2 = -4); std 4: (0.5, -2 / 4 = -0.5); std 0.5: (4, -1 / 0.5 = -2).
    assert_eq!(
        accepted(BASE).input.affine(),
        [(1.0, -4.0), (0.5, -0.5), (4.0, -2.0)]
    );
}

/// Kills `Filter::rounds_between_passes` returning `true` or `false`: the manifest's filter
/// name decides whether packed pixels are rounded to 8 bits between the two resize passes
/// (PIL's `bilinear`) or kept exact (TensorFlow's `bilinear_align_corners`).
#[test]
fn only_the_pil_filter_rounds_between_passes() {
    let pil = accepted(BASE).input.resize.filter;
    assert_eq!(pil, Filter::Bilinear);
    assert!(pil.rounds_between_passes());
    let tf = with(&[(
        "filter = \"bilinear\"",
        "filter = \"bilinear_align_corners\"",
    )]);
    let tf = accepted(&tf).input.resize.filter;
    assert_eq!(tf, Filter::BilinearAlignCorners);
    assert!(!tf.rounds_between_passes());
}

/// Kills `rgb_source` returning a constant array.
#[test]
fn rgb_source_follows_the_channel_order() {
    assert_eq!(accepted(BASE).input.rgb_source(), [2, 1, 0]);
    let rgb = with(&[("channel_order = \"BGR\"", "channel_order = \"RGB\"")]);
    assert_eq!(accepted(&rgb).input.rgb_source(), [0, 1, 2]);
}

/// Kills `>` -> `>=` and `>` -> `==` on the 4096 limit, `||` -> `&&` in `s == 0 || s > 4096`,
/// and `InputSpec::check` returning `Ok(())`.
#[test]
fn input_and_resize_sizes_are_accepted_up_to_4096_and_refused_beyond() {
    accepted(&sized((4096, 4096), "stretch", (4096, 4096), None));
    accepted(&sized((1, 1), "stretch", (1, 1), None));
    for size in [(4097, 100), (200, 4097), (0, 100), (200, 0)] {
        refused(&sized(size, "stretch", size, None), "1..=4096");
    }
    // A resize beyond the limit, cropped back within it, is still refused.
    for resize in [(4097, 100), (200, 4097)] {
        refused(
            &sized((200, 100), "stretch", resize, Some((200, 100))),
            "1..=4096",
        );
    }
}

/// Kills `&&` -> `||` in `value_scale.is_finite() && value_scale > 0.0`, `>` -> `>=` there,
/// `||` -> `&&` between the three conditions and in `!s.is_finite() || *s == 0.0`.
#[test]
fn value_scale_mean_and_std_must_be_finite_and_non_zero() {
    for (from, to) in [
        ("value_scale = 510.0", "value_scale = 0.0"),
        ("value_scale = 510.0", "value_scale = -1.0"),
        ("value_scale = 510.0", "value_scale = inf"),
        ("value_scale = 510.0", "value_scale = nan"),
        ("std = [2.0, 4.0, 0.5]", "std = [2.0, 0.0, 0.5]"),
        ("std = [2.0, 4.0, 0.5]", "std = [2.0, 4.0, inf]"),
        ("std = [2.0, 4.0, 0.5]", "std = [nan, 4.0, 0.5]"),
        ("mean = [8.0, 2.0, 1.0]", "mean = [8.0, -inf, 1.0]"),
        ("mean = [8.0, 2.0, 1.0]", "mean = [nan, 2.0, 1.0]"),
    ] {
        refused(&with(&[(from, to)]), "value_scale");
    }
    // A negative std and mean are fine: only zero and non-finite values are refused.
    accepted(&with(&[
        ("std = [2.0, 4.0, 0.5]", "std = [-2.0, 4.0, 0.5]"),
        ("mean = [8.0, 2.0, 1.0]", "mean = [-8.0, 2.0, 1.0]"),
    ]));
}

/// Kills the crop guard `c.width > rw || c.height > rh` replaced by `true` or `false`, each `>`
/// -> `>=` / `==` / `<`, and `||` -> `&&`: a crop as large as the resize fits, one pixel more on
/// either side does not.
#[test]
fn a_crop_fits_inside_the_resize_up_to_its_full_size() {
    let cropped = |crop: (u32, u32)| sized(crop, "stretch", (200, 100), Some(crop));
    let m = accepted(&cropped((200, 100)));
    assert_eq!(m.input.crop.map(|c| (c.width, c.height)), Some((200, 100)));
    accepted(&cropped((150, 80)));
    refused(
        &cropped((201, 100)),
        "crop 201x100 is larger than the resize 200x100",
    );
    refused(
        &cropped((200, 101)),
        "crop 200x101 is larger than the resize 200x100",
    );
}

/// Kills `==` -> `!=` and `&&` -> `||` in the shorter-side and letterbox checks: shorter_side
/// needs one side length, letterbox takes no crop, and each is accepted otherwise.
#[test]
fn shorter_side_needs_one_side_length_and_letterbox_no_crop() {
    accepted(&sized((100, 100), "shorter_side", (100, 100), None));
    accepted(&sized((80, 60), "shorter_side", (100, 100), Some((80, 60))));
    refused(
        &sized((200, 100), "shorter_side", (200, 100), None),
        "shorter_side resize needs width == height",
    );
    let letterbox = with(&[("mode = \"stretch\"", "mode = \"letterbox\"\npad = 114")]);
    let m = accepted(&letterbox);
    assert_eq!(
        (m.input.resize.mode, m.input.resize.pad),
        (ResizeMode::Letterbox, 114)
    );
    refused(
        &sized((200, 100), "letterbox", (200, 100), Some((200, 100))),
        "letterbox resize takes no crop",
    );
    // Stretch to a non-square size is fine (BASE), and the pad defaults to 0.
    let m = accepted(BASE);
    assert_eq!(
        (m.input.resize.mode, m.input.resize.pad),
        (ResizeMode::Stretch, 0)
    );
}

/// Kills `!=` -> `==` on the final size check, on the dtype and on the channels (the base
/// manifest is accepted), and `check` returning `Ok(())`.
#[test]
fn the_input_must_be_what_resize_and_crop_produce() {
    refused(
        &sized((200, 99), "stretch", (200, 100), None),
        "resize/crop produce 200x100 but the input is 200x99",
    );
    refused(
        &sized((100, 200), "stretch", (200, 100), None),
        "resize/crop produce 200x100 but the input is 100x200",
    );
    refused(
        &sized((200, 100), "stretch", (200, 100), Some((150, 80))),
        "resize/crop produce 150x80 but the input is 200x100",
    );
    refused(
        &with(&[("dtype = \"f32\"", "dtype = \"f16\"")]),
        "dtype f16",
    );
    refused(&with(&[("channels = 3", "channels = 4")]), "4 channels");
}

/// Kills `||` -> `&&` in `labels.is_empty() || product != labels.len()` (no labels and a shape
/// of product 0 agree in count, but are refused) and `!=` -> `==` there.
#[test]
fn the_output_shape_holds_one_value_per_label_and_at_least_one() {
    accepted(&with(&[("shape = [1, 3]", "shape = [3]")]));
    refused(&with(&[("shape = [1, 3]", "shape = [1, 2]")]), "disagree");
    refused(&with(&[("shape = [1, 3]", "shape = [3, 3]")]), "disagree");
    refused(
        &with(&[
            ("shape = [1, 3]", "shape = [1, 0]"),
            ("labels = [\"a\", \"b\", \"c\"]", "labels = []"),
            ("output = [0.25, 0.5, 0.25]", "output = []"),
            ("output = [0.5, 0.25, 0.25]", "output = []"),
        ]),
        "disagree",
    );
}

/// Kills `>` -> `>=` and `>` -> `==` on `MAX_LABEL_CHARS` (counted in characters, not bytes),
/// and `||` -> `&&` between the label conditions.
#[test]
fn labels_have_one_to_max_label_chars_printable_characters() {
    let max = crate::reporting::report::MAX_LABEL_CHARS;
    let labels = |first: &str| {
        with(&[(
            "labels = [\"a\", \"b\", \"c\"]",
            &format!("labels = [{first:?}, \"b\", \"c\"]"),
        )])
    };
    let m = accepted(&labels(&"x".repeat(max)));
    assert_eq!(m.output.labels[0].len(), max);
    // 'é' is two bytes: the limit is on characters.
    accepted(&labels(&"é".repeat(max)));
    refused(&labels(&"x".repeat(max + 1)), "label 0");
    refused(&labels(""), "label 0");
    refused(&labels("a\tb"), "label 0");
    refused(&labels("b"), "appears twice");
}

/// Kills `||` -> `&&` and deleting `!` in the checksum and path checks: a checksum is exactly
/// 64 hex digits (either case), a path only names folders and a file below the model's.
#[test]
fn file_checksums_and_paths_are_checked() {
    let good = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // 63 and 65 digits, a non-hex digit, none.
    let bad = [
        good[1..].to_string(),
        format!("{good}0"),
        good.replace('f', "g"),
        String::new(),
    ];
    for bad in &bad {
        refused(&with(&[(good, bad)]), "float file has no valid sha256");
    }
    for bad in ["../m.onnx", "/m.onnx", "sub/../../m.onnx", "./m.onnx"] {
        refused(
            &with(&[("path = \"m.onnx\"", &format!("path = {bad:?}"))]),
            "float file path must stay inside",
        );
    }
    // BASE's int8 file has an upper-case checksum and a path in a sub-folder.
    let m = accepted(BASE);
    assert_eq!(m.file(Variant::Int8).unwrap().path, "sub/m.int8.onnx");
}

/// Kills the golden checks' `!=` -> `==` on the length, `>` -> `>=` and `<=` -> `<` on the
/// tolerance bounds, and deleting the `!` of the probability check.
#[test]
fn golden_outputs_match_the_labels_and_tolerances_their_range() {
    // BASE's int8 tolerance is exactly MAX_GOLDEN_TOLERANCE (0.1): accepted.
    let m = accepted(BASE);
    assert_eq!(
        m.golden_for(Variant::Int8).unwrap().tolerance,
        MAX_GOLDEN_TOLERANCE
    );
    let float_output = "output = [0.25, 0.5, 0.25]";
    for (from, to, named) in [
        (float_output, "output = [0.5, 0.5]", "wrong length"),
        (
            float_output,
            "output = [0.25, 0.5, 0.25, 0.0]",
            "wrong length",
        ),
        (float_output, "output = [0.25, 1.5, 0.25]", "probabilities"),
        (float_output, "output = [-0.25, 0.5, 0.25]", "probabilities"),
        (float_output, "output = [nan, 0.5, 0.25]", "probabilities"),
        ("tolerance = 0.05", "tolerance = 0.0", "tolerance for float"),
        (
            "tolerance = 0.05",
            "tolerance = -0.05",
            "tolerance for float",
        ),
        ("tolerance = 0.05", "tolerance = nan", "tolerance for float"),
        (
            "tolerance = 0.1",
            "tolerance = 0.10001",
            "tolerance for int8",
        ),
    ] {
        refused(&with(&[(from, to)]), named);
    }
    // The probability range is closed: 0 and 1 are accepted.
    accepted(&with(&[(float_output, "output = [0.0, 1.0, 0.0]")]));
    // The floor: 0 (the default) to MAX_GOLDEN_FLOOR, both ends accepted.
    assert_eq!(m.golden_for(Variant::Float).unwrap().floor, 0.0);
    let floor = |f: &str| with(&[("tolerance = 0.1", &format!("tolerance = 0.1\nfloor = {f}"))]);
    assert_eq!(
        accepted(&floor("0.01"))
            .golden_for(Variant::Int8)
            .unwrap()
            .floor,
        MAX_GOLDEN_FLOOR
    );
    accepted(&floor("0.0"));
    for bad in ["0.0101", "-0.001", "nan", "inf"] {
        refused(&floor(bad), "golden floor for int8");
    }
}

/// The self-test's comparison: natural logs, each probability raised to the floor first; a
/// NaN or a wrong length never matches.
#[test]
fn golden_distance_compares_logs_above_the_floor() {
    let expect = |floor: f32| GoldenExpect {
        variant: Variant::Int8,
        output: vec![0.9, 0.0999, 0.0001],
        tolerance: 0.1,
        floor,
    };
    let close = [0.9, 0.0999, 0.0002];
    // ln 2 on the smallest class without a floor; nothing above a floor of 1e-3.
    let d = expect(0.0).distance(&close).unwrap();
    assert!((d - 2f64.ln()).abs() < 1e-6, "{d}");
    assert!(!expect(0.0).matches(&close));
    assert!(expect(0.001).matches(&close));
    assert_eq!(expect(0.001).distance(&close), Some(0.0));
    // Above the floor the tolerance still bites: 0.0999 against 0.11 is ln 1.1 ≈ 0.096 (in),
    // against 0.12 it is 0.18 (out).
    assert!(expect(0.001).matches(&[0.89, 0.11, 0.0]));
    assert!(!expect(0.001).matches(&[0.88, 0.12, 0.0]));
    // Zero against zero is no difference, and a distance equal to the tolerance matches.
    assert!(expect(0.0).matches(&[0.9, 0.0999, 0.0001]));
    let exact = GoldenExpect {
        tolerance: 0.0,
        ..expect(0.0)
    };
    assert!(exact.matches(&[0.9, 0.0999, 0.0001]));
    assert!(!exact.matches(&[0.9, 0.0999, 0.00011]));
    // NaN and wrong lengths never match.
    assert_eq!(expect(0.001).distance(&[0.9, f32::NAN, 0.0001]), None);
    assert_eq!(expect(0.001).distance(&[0.9, 0.1, 0.0, f32::NAN]), None);
    assert!(!expect(0.01).matches(&[0.9, 0.1]));
}

/// Kills `!=` -> `==` on the schema (the base manifest is accepted); an empty id is refused.
#[test]
fn the_schema_must_be_this_runtimes_and_the_id_non_empty() {
    assert_eq!(accepted(BASE).schema, SCHEMA);
    refused(&with(&[("schema = 1", "schema = 2")]), "schema 2");
    refused(&with(&[("schema = 1", "schema = 0")]), "schema 0");
    refused(&with(&[("id = \"unit\"", "id = \"\"")]), "needs an id");
}

/// Kills `==` -> `!=` in `file` and `golden_for` (each would return the other variant's entry)
/// and `golden_for` returning `None`.
#[test]
fn file_and_golden_for_find_their_own_variant() {
    let m = accepted(BASE);
    assert_eq!(m.file(Variant::Float).unwrap().path, "m.onnx");
    assert_eq!(m.file(Variant::Int8).unwrap().path, "sub/m.int8.onnx");
    assert_eq!(
        m.golden_for(Variant::Float).unwrap().output,
        [0.25, 0.5, 0.25]
    );
    assert_eq!(
        m.golden_for(Variant::Int8).unwrap().output,
        [0.5, 0.25, 0.25]
    );
    // Without an int8 file and golden entry: an error naming the variant, and no expectation.
    let m = accepted(&with(&[
        (
            "[[files]]\nvariant = \"int8\"\npath = \"sub/m.int8.onnx\"\n\
                 sha256 = \"FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210\"\n",
            "",
        ),
        (
            "[[golden.expect]]\nvariant = \"int8\"\noutput = [0.5, 0.25, 0.25]\n\
                 tolerance = 0.1\n",
            "",
        ),
    ]));
    assert_eq!(m.files.len(), 1);
    assert!(matches!(
        m.file(Variant::Int8),
        Err(Error::NoSuchVariant {
            variant: Variant::Int8
        })
    ));
    assert!(m.golden_for(Variant::Int8).is_none());
    assert_eq!(m.golden_for(Variant::Float).unwrap().tolerance, 0.05);
}

/// Kills `Variant::name` returning `""` or `"xyzzy"` and its `Display` writing nothing.
#[test]
fn variants_have_lowercase_names() {
    assert_eq!(Variant::Float.name(), "float");
    assert_eq!(Variant::Int8.name(), "int8");
    assert_eq!(Variant::Float.to_string(), "float");
    assert_eq!(Variant::Int8.to_string(), "int8");
}

/// Kills `dir` returning an empty path: a loaded manifest keeps its folder, a parsed one has none.
#[test]
fn a_loaded_manifest_keeps_its_folder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/redness");
    let m = Manifest::load(&dir).unwrap();
    assert_eq!(m.dir(), dir.as_path());
    assert_eq!(m.id, "redness");
    assert_eq!(accepted(BASE).dir(), Path::new(""));
}
