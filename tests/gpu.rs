//! The GPU backend: shaders validated by naga (no GPU needed), then, on a real adapter (Mesa's
//! lavapipe in CI), the GPU against the scalar reference and the CPU path over formats, sizes,
//! strides, rotations, mirror, colour spaces and manifest variants; the scene signature; the
//! pipelined ring; and CPU fallback after a GPU failure mid-stream.
//!
//! Without an adapter these tests print why and pass on a developer machine; in CI (`CI` set) a
//! missing adapter is a failure.

mod common;

use common::cases::{
    build, camera_cases, case_strategy, frame, tolerance, variant_spec, Built, Case, VARIANTS,
};

use std::cell::RefCell;
use std::sync::OnceLock;

use prescreen_runtime::frame::{ColorMatrix, ColorRange, Frame, PixelFormat, Rotation};
use prescreen_runtime::manifest::InputSpec;
use prescreen_runtime::preprocess::backend::{ActiveBackend, Backend, Preprocessor};
use prescreen_runtime::preprocess::gpu::{GpuContext, GpuPreprocessor};
use prescreen_runtime::preprocess::{reference, CpuPreprocessor};
use prescreen_runtime::stream::sampling::Signature;
use prescreen_runtime::{Error, GpuError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Every `shaders/*.wgsl` parses and validates with naga; there is at least one.
#[test]
fn shaders_validate_with_naga() {
    let dir = common::root().join("shaders");
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!(
                "{}: {}",
                path.display(),
                e.emit_to_string_with_path(&source, &path.display().to_string())
            )
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {}",
                path.display(),
                e.emit_to_string_with_path(&source, &path.display().to_string())
            )
        });
        found += 1;
    }
    assert!(
        found >= 3,
        "expected the 3 kernels in {}, found {found}",
        dir.display()
    );
}

/// The shared GPU, or None (with the reason printed) on a developer machine without one.
/// In CI a missing adapter fails the test: CI must run the GPU tests for real.
fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("GPU tests on {}", ctx.adapter_name());
            Some(ctx)
        }
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "NO GPU ADAPTER IN CI ({e}): the GPU tests must run. Install Mesa's Vulkan \
                     driver (apt-get install mesa-vulkan-drivers libvulkan1; .ci/run does it)."
                );
            }
            eprintln!("SKIPPING GPU TEST: no GPU adapter ({e}); CI runs it on lavapipe");
            None
        }
    })
    .as_ref()
}

/// Pixel bytes and plane layout of a test frame (as in tests/preprocess.rs).
/// One spec with its GPU and CPU preprocessors.
struct Rig {
    spec: InputSpec,
    gpu: GpuPreprocessor,
    cpu: CpuPreprocessor,
}

impl Rig {
    fn new(ctx: &GpuContext, spec: InputSpec) -> Self {
        Self {
            gpu: GpuPreprocessor::new(ctx, &spec).expect("GPU preprocessor"),
            cpu: CpuPreprocessor::new(&spec),
            spec,
        }
    }

    /// GPU output within 1/255 of the reference and of the CPU path; packed formats on the same
    /// 8-bit levels as the CPU (both use the same integer arithmetic).
    fn check(&mut self, c: &Case) -> Result<(), TestCaseError> {
        let b = build(c);
        let f = frame(c, &b);
        let n = self.spec.len();
        let (mut gpu, mut cpu) = (vec![0f32; n], vec![0f32; n]);
        self.gpu.run(&f, &mut gpu).expect("GPU preprocess");
        self.cpu.run(&f, &mut cpu).expect("CPU preprocess");
        let want = reference::preprocess(&f, &self.spec);
        let tol = tolerance(&self.spec);
        let (max_ref, _) = common::diff(&gpu, &want);
        prop_assert!(
            max_ref <= tol,
            "max |gpu - reference| = {max_ref} for {c:?}"
        );
        let (max_cpu, _) = common::diff(&gpu, &cpu);
        prop_assert!(max_cpu <= tol, "max |gpu - cpu| = {max_cpu} for {c:?}");
        if !c.format.is_yuv() {
            prop_assert!(
                max_cpu <= tol / 100.0,
                "packed: gpu and cpu differ by {max_cpu} (not the same 8-bit levels) for {c:?}"
            );
        }
        Ok(())
    }
}

/// Random noise, sizes 1..=600 (odd included), padded strides, every format, rotation, mirror and
/// colour space, with the default manifest. Few cases: lavapipe is slow.
#[test]
fn gpu_matches_reference_and_cpu() {
    let Some(ctx) = gpu() else { return };
    let rig = RefCell::new(Rig::new(ctx, common::spec()));
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case_strategy(600), |c| rig.borrow_mut().check(&c))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The same over the manifest variants (letterbox with padding, shorter side + crop, NCHW, RGB
/// order, per-channel std, the `align_corners` filter).
#[test]
fn gpu_matches_reference_and_cpu_for_other_manifests() {
    let Some(ctx) = gpu() else { return };
    let rigs: Vec<RefCell<Rig>> = (1..VARIANTS)
        .map(|v| RefCell::new(Rig::new(ctx, variant_spec(v))))
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: 50,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(case_strategy(300), 0..VARIANTS - 1), |(c, v)| {
            rigs[v].borrow_mut().check(&c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Camera-sized frames of every format, one reused GPU preprocessor.
#[test]
fn gpu_camera_sizes_match_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rig = Rig::new(ctx, common::spec());
    for c in camera_cases() {
        rig.check(&c)
            .unwrap_or_else(|e| panic!("{}x{} {}: {e}", c.w, c.h, c.format));
    }
}

/// The GPU signature equals `Signature::compute` exactly, for every format and odd sizes.
#[test]
fn gpu_signature_equals_cpu_signature() {
    let Some(ctx) = gpu() else { return };
    let mut pre = GpuPreprocessor::new(ctx, &common::spec()).unwrap();
    let (mut got, mut want) = (Signature::default(), Signature::default());
    for (i, (w, h)) in [(1920, 1080), (641, 479), (7, 3), (1, 1), (333, 1000)]
        .into_iter()
        .enumerate()
    {
        for format in PixelFormat::ALL {
            let c = Case {
                format,
                w,
                h,
                rotation: Rotation::R0,
                mirror: false,
                matrix: ColorMatrix::Bt601,
                range: ColorRange::Full,
                pad: 5,
                chroma_pixel_stride: 2,
                seed: 40 + i as u64,
            };
            let b = build(&c);
            let f = frame(&c, &b);
            pre.signature(&f, &mut got).unwrap();
            want.compute(&f);
            assert_eq!(got.cells.len(), Signature::WIDTH * Signature::HEIGHT);
            assert_eq!(got, want, "{w}x{h} {format}");
        }
    }
}

fn stream_case(i: usize) -> Case {
    Case {
        format: PixelFormat::ALL[i % PixelFormat::ALL.len()],
        w: 320 + 2 * i as u32,
        h: 240 + i as u32,
        rotation: Rotation::ALL[i % 4],
        mirror: i % 2 == 1,
        matrix: ColorMatrix::Bt709,
        range: ColorRange::Limited,
        pad: i % 5,
        chroma_pixel_stride: 1 + i % 2,
        seed: 1000 + i as u64,
    }
}

/// The two-slot ring: frame N+1 is submitted before frame N is received; results come back in
/// order and equal the synchronous path; misuse is a typed error, not a panic.
#[test]
fn gpu_ring_pipelines_two_frames_in_order() {
    let Some(ctx) = gpu() else { return };
    let spec = common::spec();
    let mut ring = GpuPreprocessor::new(ctx, &spec).unwrap();
    let mut sync = GpuPreprocessor::new(ctx, &spec).unwrap();
    let n = spec.len();
    let mut out = vec![0f32; n];
    let mut mismatch = Vec::new();
    let cases: Vec<Case> = (0..8).map(stream_case).collect();
    let built: Vec<Built> = cases.iter().map(build).collect();
    let frames: Vec<Frame<'_>> = cases.iter().zip(&built).map(|(c, b)| frame(c, b)).collect();
    let expect: Vec<Vec<f32>> = frames
        .iter()
        .map(|f| {
            let mut o = vec![0f32; n];
            sync.run(f, &mut o).unwrap();
            o
        })
        .collect();
    assert!(matches!(
        ring.receive(&mut out),
        Err(Error::Gpu(GpuError::Ring(_)))
    ));
    ring.submit(&frames[0]).unwrap();
    for i in 1..frames.len() {
        ring.submit(&frames[i]).unwrap();
        assert_eq!(ring.in_flight(), 2);
        if i == 1 {
            assert!(matches!(
                ring.submit(&frames[0]),
                Err(Error::Gpu(GpuError::Ring(_)))
            ));
            assert!(matches!(
                ring.run(&frames[0], &mut out),
                Err(Error::Gpu(GpuError::Ring(_)))
            ));
        }
        ring.receive(&mut out).unwrap();
        if out != expect[i - 1] {
            mismatch.push(i - 1);
        }
    }
    ring.receive(&mut out).unwrap();
    if out != expect[frames.len() - 1] {
        mismatch.push(frames.len() - 1);
    }
    assert_eq!(ring.in_flight(), 0);
    assert!(
        mismatch.is_empty(),
        "frames {mismatch:?} differ from the synchronous path"
    );
    let t = ring.stage_times();
    assert!(t.upload > std::time::Duration::ZERO && t.readback > std::time::Duration::ZERO);
}

/// Many preprocessors on one shared device, from several threads, with the other core kept busy:
/// thousands of tiny odd-sized frames through the fallback-guarded path, the pipelined ring and
/// the signature kernel. wgpu runs a readback's map callback on whichever thread's poll took the
/// mapping, a moment after that poll returns; a reader that checked for the callback only once
/// failed here (a 1x1 NV21 frame in the property test) and moved its stream to the CPU. Every
/// frame must come back from the GPU, equal to the same frame run alone, with zero fallbacks.
#[test]
fn gpu_shared_device_never_falls_back_under_contention() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(ctx) = gpu() else { return };
    let spec = common::spec();
    let n = spec.len();
    let sizes = [
        (1, 1),
        (1, 3),
        (3, 1),
        (2, 2),
        (5, 7),
        (17, 9),
        (33, 31),
        (64, 3),
    ];
    let cases: Vec<Case> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &(w, h))| {
            PixelFormat::ALL.into_iter().map(move |format| Case {
                format,
                w,
                h,
                rotation: Rotation::ALL[i % 4],
                mirror: i % 2 == 0,
                matrix: ColorMatrix::Bt601,
                range: ColorRange::Full,
                pad: i % 3,
                chroma_pixel_stride: 2,
                seed: 7000 + i as u64,
            })
        })
        .collect();
    let built: Vec<Built> = cases.iter().map(build).collect();
    let frames: Vec<Frame<'_>> = cases.iter().zip(&built).map(|(c, b)| frame(c, b)).collect();
    // Each frame alone, on a preprocessor of its own, before any contention.
    let mut alone = GpuPreprocessor::new(ctx, &spec).unwrap();
    let expect: Vec<Vec<f32>> = frames
        .iter()
        .map(|f| {
            let mut o = vec![0f32; n];
            alone.run(f, &mut o).unwrap();
            o
        })
        .collect();
    let signatures: Vec<Signature> = frames
        .iter()
        .map(|f| {
            let mut s = Signature::default();
            s.compute(f);
            s
        })
        .collect();
    const THREADS: usize = 3;
    const ROUNDS: usize = 12;
    let busy = AtomicBool::new(true);
    let submits = std::thread::scope(|scope| {
        // The other core: a busy loop for as long as the readers run.
        scope.spawn(|| {
            let mut x = 0u64;
            while busy.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (spec, frames, expect, signatures) = (&spec, &frames, &expect, &signatures);
                scope.spawn(move || {
                    let mut guarded = Preprocessor::with_context(spec, Backend::Gpu, ctx).unwrap();
                    let mut ring = GpuPreprocessor::new(ctx, spec).unwrap();
                    let mut out = vec![0f32; n];
                    let mut sig = Signature::default();
                    let mut submits = 0usize;
                    for round in 0..ROUNDS {
                        for k in 0..frames.len() {
                            // Threads walk the frames in different orders.
                            let i = (k * (2 * t + 1) + round) % frames.len();
                            guarded.run(&frames[i], &mut out).unwrap();
                            assert!(out == expect[i], "thread {t}: frame {i} differs");
                            // The ring: this frame and the next in flight together.
                            let j = (i + 1) % frames.len();
                            ring.submit(&frames[i]).unwrap();
                            ring.submit(&frames[j]).unwrap();
                            for want in [i, j] {
                                ring.receive(&mut out).unwrap_or_else(|e| {
                                    panic!("thread {t}, round {round}, frame {want}: {e}")
                                });
                                assert!(out == expect[want], "thread {t}: ring frame {want}");
                            }
                            ring.signature(&frames[i], &mut sig).unwrap();
                            assert_eq!(sig, signatures[i], "thread {t}: signature {i}");
                            submits += 4;
                        }
                    }
                    assert_eq!(guarded.active_backend(), ActiveBackend::Gpu);
                    assert_eq!(guarded.fallbacks(), 0, "{:?}", guarded.gpu_error());
                    submits
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        // Stop the busy loop before a failed reader's panic propagates, or the scope never ends.
        busy.store(false, Ordering::Relaxed);
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .sum::<usize>()
    });
    assert!(submits >= 4000, "{submits} submits");
    eprintln!("{submits} GPU submits from {THREADS} threads on one device, 0 fallbacks");
}

/// A GPU failure mid-stream: the failing frame and all later ones are preprocessed on the CPU;
/// every frame gets exactly one result, equal to the CPU's.
#[test]
fn gpu_failure_mid_stream_falls_back_to_cpu() {
    let Some(ctx) = gpu() else { return };
    let spec = common::spec();
    let mut pre = Preprocessor::with_context(&spec, Backend::Gpu, ctx).unwrap();
    assert_eq!(pre.active_backend(), ActiveBackend::Gpu);
    let mut cpu = CpuPreprocessor::new(&spec);
    let tol = tolerance(&spec);
    pre.inject_failure_after(3);
    let n = spec.len();
    let mut backends = Vec::new();
    let mut results = 0;
    for i in 0..10 {
        let c = stream_case(i);
        let b = build(&c);
        let f = frame(&c, &b);
        let mut got = vec![f32::NAN; n];
        let mut want = vec![0f32; n];
        pre.run(&f, &mut got).expect("every frame gets a result");
        results += 1;
        cpu.run(&f, &mut want).unwrap();
        let (max, _) = common::diff(&got, &want);
        assert!(max <= tol, "frame {i}: max |result - cpu| = {max}");
        if i >= 3 {
            // From the failing frame on, the CPU produced it: identical.
            assert_eq!(
                got, want,
                "frame {i} after the fallback is not the CPU's result"
            );
        }
        backends.push(pre.active_backend());
    }
    assert_eq!(results, 10);
    assert_eq!(
        backends,
        [
            [ActiveBackend::Gpu; 3].as_slice(),
            [ActiveBackend::Cpu; 7].as_slice()
        ]
        .concat()
    );
    assert_eq!(pre.fallbacks(), 1);
    assert_eq!(pre.gpu_error(), Some(&GpuError::Injected));
    assert!(pre.gpu_stage_times().is_none());
}

/// `auto` opens the GPU after its self-test; `cpu` never does; names parse.
#[test]
fn backend_choice() {
    let spec = common::spec();
    let cpu = Preprocessor::new(&spec, Backend::Cpu).unwrap();
    assert_eq!(cpu.active_backend(), ActiveBackend::Cpu);
    assert_eq!("gpu".parse::<Backend>(), Ok(Backend::Gpu));
    assert_eq!("auto".parse::<Backend>(), Ok(Backend::Auto));
    assert!("cuda".parse::<Backend>().is_err());
    let Some(ctx) = gpu() else { return };
    let auto = Preprocessor::with_context(&spec, Backend::Auto, ctx).unwrap();
    if ctx.is_cpu_adapter() {
        // Lavapipe (CI): slower than the CPU path, so `auto` keeps the CPU and says why...
        assert_eq!(auto.active_backend(), ActiveBackend::Cpu);
        assert!(matches!(
            auto.gpu_error(),
            Some(GpuError::SoftwareOnly { .. })
        ));
        // ... while `gpu` takes it.
        let gpu = Preprocessor::with_context(&spec, Backend::Gpu, ctx).unwrap();
        assert_eq!(gpu.active_backend(), ActiveBackend::Gpu);
    } else {
        assert_eq!(auto.active_backend(), ActiveBackend::Gpu);
        assert!(auto.adapter_name().is_some());
    }
    assert_eq!(auto.fallbacks(), 0);
}

/// The two preprocessing kernels declare the same `Params` uniform, 60 words as the runtime writes
/// it (`PARAM_WORDS` in runtime/src/preprocess/gpu/params.rs), and the signature kernel its 8-word uniform.
#[test]
fn shader_uniforms_have_the_runtime_layout() {
    let dir = common::root().join("shaders");
    let size = |file: &str, name: &str| -> u32 {
        let source = std::fs::read_to_string(dir.join(file)).unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let span = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .map(|(_, t)| match &t.inner {
                naga::TypeInner::Struct { span, .. } => *span,
                other => panic!("{name} in {file} is not a struct: {other:?}"),
            })
            .unwrap_or_else(|| panic!("{file} declares no {name}"));
        span
    };
    assert_eq!(size("resample_rows.wgsl", "Params"), 60 * 4);
    assert_eq!(size("to_tensor.wgsl", "Params"), 60 * 4);
    assert_eq!(size("signature.wgsl", "SignatureParams"), 8 * 4);
    let text = |file: &str| {
        let s = std::fs::read_to_string(dir.join(file)).unwrap();
        let start = s.find("struct Params {").unwrap();
        let end = start + s[start..].find('}').unwrap();
        s[start..end].to_string()
    };
    assert_eq!(text("resample_rows.wgsl"), text("to_tensor.wgsl"));
}
