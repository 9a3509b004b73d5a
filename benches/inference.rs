//! Inference benchmarks with tract, batch 1: the float and int8 open_nsfw files on the manifest's
//! golden input, with one and two threads. The side-by-side run against onnxruntime (same input,
//! load time, memory, file size) is benches/side_by_side.py (`make bench`).

use criterion::{criterion_group, criterion_main, Criterion};
use prescreen_runtime::manifest::Variant;
use prescreen_runtime::model::{golden_input, LoadOptions, Model};

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/open_nsfw");
    let mut group = c.benchmark_group("infer_tract");
    group.sample_size(20);
    for threads in [1, 2] {
        for variant in [Variant::Float, Variant::Int8] {
            let model = match Model::load_dir_with(
                &dir,
                variant,
                &LoadOptions {
                    threads,
                    ..LoadOptions::default()
                },
            ) {
                Ok(m) => m,
                Err(e) => panic!("model not available ({e}); run `make model` first"),
            };
            let mut session = model.session().unwrap();
            let m = model.manifest();
            golden_input(&m.golden.input, &m.input, session.input_mut()).unwrap();
            group.bench_function(format!("{}/threads={threads}", variant.name()), |b| {
                b.iter(|| session.run().unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
