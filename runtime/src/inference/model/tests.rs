//! Unit tests of the loader on the test classifier (`models/redness`, built by `make model`): it
//! loads in milliseconds, so these run under every mutant of `model/` (README, "Mutation
//! testing"). The real models' loads are in `tests/model.rs`.

use super::runner::{awake_for, check_probabilities, OpTally};
use super::*;
use crate::manifest::Activation;

/// The test classifier's folder.
fn redness() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/redness");
    assert!(
        dir.join("redness.onnx").is_file(),
        "TEST CLASSIFIER NOT BUILT: run `make model` (models/test_classifier.py) first"
    );
    dir
}

/// A copy of the test classifier's folder whose manifest has each `from` replaced by its `to`.
fn edited(edits: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        redness().join("redness.onnx"),
        dir.path().join("redness.onnx"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(redness().join("model.toml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(dir.path().join("model.toml"), text).unwrap();
    dir
}

/// The sha256 of the test classifier's file, lower-case hex, computed here independently.
fn file_sha256() -> String {
    let bytes = std::fs::read(redness().join("redness.onnx")).unwrap();
    let mut hex = String::new();
    for b in Sha256::digest(&bytes).iter() {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap());
        hex.push(char::from_digit(u32::from(b & 15), 16).unwrap());
    }
    hex
}

/// The manifest's golden output line and its two values.
fn golden_output() -> (String, [f64; 2]) {
    let text = std::fs::read_to_string(redness().join("model.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("output = ["))
        .unwrap()
        .to_string();
    let inner = line.trim_start_matches("output = [").trim_end_matches(']');
    let v: Vec<f64> = inner
        .split(',')
        .map(|x| x.trim().parse().unwrap())
        .collect();
    (line, [v[0], v[1]])
}

fn load(dir: &Path) -> Result<Model> {
    Model::load_dir(dir, Variant::Float, &LoadOptions::default())
}

/// The probability of `red` for a picture of mean colour `rgb` in [0, 1], worked out from
/// models/test_classifier.py's weights: softmax over (0, K (r - (g + b) / 2) - K T), K = 20,
/// T = 0.25.
fn red_probability(rgb: [f64; 3]) -> f64 {
    let logit = 20.0 * (rgb[0] - (rgb[1] + rgb[2]) / 2.0) - 20.0 * 0.25;
    1.0 / (1.0 + (-logit).exp())
}

/// A loaded model says what it loaded: the file's path and variant, its sha256 (lower-case hex
/// of the file's digest, computed here independently), one thread, and no integer or depthwise
/// convolutions (the test classifier has none); its debug form names it. Fails if an accessor
/// returned a constant or `hex` changed.
#[test]
fn a_loaded_model_describes_itself() {
    let m = load(&redness()).unwrap();
    assert_eq!(m.sha256(), file_sha256());
    assert_eq!(m.variant(), Variant::Float);
    assert_eq!(m.path(), redness().join("redness.onnx"));
    assert_eq!(m.manifest().id, "redness");
    assert_eq!(m.threads(), 1);
    assert_eq!(m.integer_convolutions(), 0);
    assert_eq!(m.float_depthwise_convolutions(), 0);
    assert_eq!(m.fused_quantize_pairs(), 0);
    assert_eq!(m.max_pools(), 0);
    assert_eq!(m.integer_kernel(), None);
    let text = format!("{m:?}");
    assert!(
        text.starts_with("Model") && text.contains("\"redness\""),
        "{text}"
    );
    assert!(
        text.contains("Float") && text.contains("redness.onnx"),
        "{text}"
    );
    let runner = m.runner().unwrap();
    let text = format!("{runner:?}");
    assert!(
        text.starts_with("Runner") && text.contains("\"redness\""),
        "{text}"
    );
    assert_eq!(runner.model().manifest().id, "redness");
}

/// One to [`MAX_THREADS`] threads are accepted, none or more are refused as an invalid
/// argument before anything is read. Fails if either bound moved or the check was dropped.
#[test]
fn threads_must_be_one_to_max_threads() {
    for threads in [0, MAX_THREADS + 1] {
        let options = LoadOptions {
            threads,
            ..LoadOptions::default()
        };
        let e = Model::load_dir(redness(), Variant::Float, &options).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{threads}: {e}");
    }
    for threads in [1, 2, MAX_THREADS] {
        let options = LoadOptions {
            threads,
            ..LoadOptions::default()
        };
        let m = Model::load_dir(redness(), Variant::Float, &options).unwrap();
        assert_eq!(m.threads(), threads);
    }
}

/// The manifest's checksum is compared without regard to case; one wrong digit refuses the
/// file, naming both values. Fails if the comparison were inverted or case-sensitive.
#[test]
fn a_checksum_is_compared_ignoring_case_and_refuses_one_wrong_digit() {
    let sha = &file_sha256();
    let pinned = format!("path = \"redness.onnx\"\nsha256 = \"{sha}\"");
    let upper = format!(
        "path = \"redness.onnx\"\nsha256 = \"{}\"",
        sha.to_uppercase()
    );
    let upper = edited(&[(pinned.as_str(), upper.as_str())]);
    assert_eq!(load(upper.path()).unwrap().sha256(), sha);
    // The last digit changed.
    let wrong = format!(
        "{}{}",
        &sha[..63],
        if sha.ends_with('0') { '1' } else { '0' }
    );
    let wrong_pin = format!("path = \"redness.onnx\"\nsha256 = \"{wrong}\"");
    let dir = edited(&[(pinned.as_str(), wrong_pin.as_str())]);
    match load(dir.path()).unwrap_err() {
        Error::Checksum {
            actual, expected, ..
        } => assert_eq!((&actual, &expected), (sha, &wrong)),
        e => panic!("{e}"),
    }
}

/// A file missing is an I/O error naming it; one over [`MAX_MODEL_BYTES`] (sparse: no disk
/// used) is refused by its size before it is read, with the size the opened file has (any size,
/// not just one over). Fails if the size error lost its size or became an I/O error.
#[test]
fn a_missing_or_oversized_file_is_refused_by_name_or_size() {
    let dir = edited(&[]);
    std::fs::remove_file(dir.path().join("redness.onnx")).unwrap();
    match load(dir.path()).unwrap_err() {
        Error::Io { path, .. } => assert_eq!(path, dir.path().join("redness.onnx")),
        e => panic!("{e}"),
    }
    for size in [MAX_MODEL_BYTES + 1, 3 * MAX_MODEL_BYTES + 7] {
        let big = std::fs::File::create(dir.path().join("redness.onnx")).unwrap();
        big.set_len(size).unwrap();
        drop(big);
        match load(dir.path()).unwrap_err() {
            Error::ModelTooLarge {
                path,
                size: seen,
                limit,
            } => {
                assert_eq!((seen, limit), (size, MAX_MODEL_BYTES));
                assert_eq!(path, dir.path().join("redness.onnx"));
            }
            e => panic!("{e}"),
        }
    }
}

/// The golden self-test holds the file to the manifest's tolerance (0.001 in the log of each
/// probability): a reference output off by 0.0005 passes, one off by 0.0015 is refused with
/// both outputs. Fails if the self-test were skipped or its tolerance loosened.
#[test]
fn the_golden_self_test_refuses_a_near_miss() {
    let (golden, [p0, p1]) = golden_output();
    let moved = |d: f64| format!("output = [{}, {p1}]", p0 * d.exp());
    let (near, far) = (moved(0.0005), moved(0.0015));
    assert!(load(edited(&[(golden.as_str(), near.as_str())]).path()).is_ok());
    match load(edited(&[(golden.as_str(), far.as_str())]).path()).unwrap_err() {
        Error::GoldenMismatch {
            actual,
            expected,
            tolerance,
            ..
        } => {
            assert_eq!(tolerance, 0.001);
            assert!((expected[0] as f64 / p0 - 0.0015f64.exp()).abs() < 1e-6);
            assert!((actual[0] as f64 / p0).ln().abs() <= 0.001, "{actual:?}");
        }
        e => panic!("{e}"),
    }
}

/// A manifest whose input or output differs from the file is refused, saying how: the input's
/// name, its size on one axis (in the manifest's layout), its layout, the output's name and its
/// shape. Fails if a check of `check_io` or of the output were dropped or inverted.
#[test]
fn a_manifest_that_does_not_describe_the_file_is_refused() {
    let (golden, _) = golden_output();
    let size = "width = 32\nheight = 32\nchannels = 3";
    let cases: [(&str, &str, &str); 5] = [
        (
            "name = \"pixels\"",
            "name = \"image\"",
            "input is named \"pixels\"",
        ),
        (
            size,
            "width = 32\nheight = 48\nchannels = 3",
            "input axis 1 is 32, manifest (NHWC) says 48",
        ),
        (
            "layout = \"NHWC\"",
            "layout = \"NCHW\"",
            "manifest (NCHW) says 3",
        ),
        (
            "name = \"scores\"",
            "name = \"probs\"",
            "output is named \"scores\"",
        ),
        (
            "shape = [1, 2]",
            "shape = [1, 3]",
            "manifest says f32 [1, 3]",
        ),
    ];
    for (from, to, says) in cases {
        let mut edits = vec![(from, to)];
        // A different output shape needs as many labels (the manifest checks that itself).
        if to == "shape = [1, 3]" {
            edits.push((
                "labels = [\"other\", \"red\"]",
                "labels = [\"a\", \"b\", \"c\"]",
            ));
            edits.push((golden.as_str(), "output = [0.2, 0.3, 0.5]"));
        }
        // The resize must fit the input it makes.
        if to.contains("height = 48") {
            edits.push((
                "mode = \"stretch\"\nwidth = 32\nheight = 32",
                "mode = \"stretch\"\nwidth = 32\nheight = 48",
            ));
        }
        match load(edited(&edits).path()) {
            Err(Error::ModelMismatch { reason, .. }) => {
                assert!(reason.contains(says), "{to}: {reason}")
            }
            other => panic!("{to}: {other:?}"),
        }
    }
}

/// A runner's input is the manifest's tensor, written by the caller and read by each run: a
/// white picture, then a red one, score what the classifier's weights say (worked out here), the
/// second through a fresh buffer if tract kept the first. Fails if `input_mut` handed out
/// another buffer than the one run reads, or `run` lost the scores.
#[test]
fn a_session_scores_what_was_written_into_its_input() {
    let m = load(&redness()).unwrap();
    let mut s = m.runner().unwrap();
    for rgb in [[1.0f32, 1.0, 1.0], [1.0, 0.0, 0.0], [0.6, 0.2, 0.3]] {
        let input = s.input_mut();
        assert_eq!(input.len(), 32 * 32 * 3);
        for px in input.chunks_mut(3) {
            px.copy_from_slice(&rgb);
        }
        let scores = s.run().unwrap();
        let want = red_probability(rgb.map(f64::from));
        assert!(
            (scores.get(1).unwrap() as f64 - want).abs() < 1e-5,
            "{rgb:?}: {scores:?}, want {want}"
        );
        assert!((scores.get(0).unwrap() as f64 - (1.0 - want)).abs() < 1e-5);
        assert_eq!(scores.get(2), None);
    }
}

/// `log_odds` is ln(p[i] / p[j]), finite at probabilities of 0 and 1. Fails if it were
/// inverted, or lost its floor.
#[test]
fn log_odds_are_the_log_of_the_ratio() {
    let s = Scores {
        probabilities: vec![0.2, 0.8, 0.0],
    };
    assert!((s.log_odds(1, 0) - 4f32.ln()).abs() < 1e-6);
    assert!((s.log_odds(0, 1) + 4f32.ln()).abs() < 1e-6);
    let floor = (1e-30f64).ln() as f32;
    assert!((s.log_odds(2, 1) - (floor - 0.8f32.ln())).abs() < 1e-3);
    assert!(s.log_odds(1, 2).is_finite() && s.log_odds(1, 2) > 60.0);
}

/// An output is a probability vector: every value finite and in [0, 1], and for softmax a sum
/// within 1e-3 of one (a sigmoid's independent values may sum to anything). Fails if a bound
/// moved, the sum were checked for sigmoids or not for softmax.
#[test]
fn outputs_must_be_probabilities() {
    use Activation::{Sigmoid, Softmax};
    for (activation, values, ok) in [
        (Softmax, &[0.25, 0.75][..], true),
        (Softmax, &[0.0, 1.0][..], true),
        (Softmax, &[0.5, 0.5009][..], true),
        (Softmax, &[0.5, 0.4991][..], true),
        (Softmax, &[0.5, 0.5011][..], false),
        (Softmax, &[0.5, 0.4989][..], false),
        (Sigmoid, &[0.5, 0.6][..], true),
        (Sigmoid, &[0.0, 1.0, 1.0][..], true),
        (Sigmoid, &[-0.01, 0.5][..], false),
        (Sigmoid, &[1.01, 0.5][..], false),
        (Softmax, &[f32::NAN, 1.0][..], false),
        (Sigmoid, &[f32::INFINITY, 0.5][..], false),
    ] {
        let r = check_probabilities(activation, values);
        assert_eq!(r.is_ok(), ok, "{activation:?} {values:?}");
        if let Err(e) = r {
            assert!(
                matches!(&e, Error::BadOutput(v) if v.len() == values.len()),
                "{e}"
            );
        }
    }
}

/// The golden inputs, element by element from their documented formulas (index split into
/// axes here, not nested loops): `ramp-v1` and `ramp-unit-v1`; an unknown kind is a manifest
/// error. Fails if a coefficient, the modulus, an offset or a scale changed.
#[test]
fn golden_inputs_follow_their_formulas() {
    let m = load(&redness()).unwrap();
    let spec = &m.manifest().input;
    let [_, d1, d2, d3] = spec.shape();
    let mut out = vec![f32::NAN; d1 * d2 * d3];
    for (kind, value) in [
        ("ramp-v1", (|k: usize| k as f32 - 125.0) as fn(usize) -> f32),
        (
            "ramp-unit-v1",
            (|k: usize| k as f32 / 250.0) as fn(usize) -> f32,
        ),
    ] {
        golden_input(kind, spec, &mut out).unwrap();
        for (i, v) in out.iter().enumerate() {
            let (a, b, c) = (i / (d2 * d3), i / d3 % d2, i % d3);
            assert_eq!(
                *v,
                value((a * 7 + b * 13 + c * 29) % 251),
                "{kind} [{a},{b},{c}]"
            );
        }
    }
    // Spot values worked by hand: (1, 2, 1) is 7 + 26 + 29 = 62; (31, 31, 2) is 678 mod 251.
    golden_input("ramp-v1", spec, &mut out).unwrap();
    assert_eq!(out[(32 + 2) * 3 + 1], -63.0);
    assert_eq!(out[(31 * 32 + 31) * 3 + 2], 51.0);
    let e = golden_input("ramp-v2", spec, &mut out).unwrap_err();
    assert!(matches!(e, Error::Manifest { .. }), "{e}");
}

/// The profile times every kind of operator of the graph, once each (a node counted once
/// however many runs), largest first. Fails if nodes were counted per run or the order were
/// reversed.
#[test]
fn the_profile_lists_each_operator_kind_once_largest_first() {
    let m = load(&redness()).unwrap();
    let mut s = m.runner().unwrap();
    let times = s.profile(3).unwrap();
    assert!(!times.is_empty());
    let total_nodes: usize = times.iter().map(|t| t.nodes).sum();
    let again: usize = s.profile(1).unwrap().iter().map(|t| t.nodes).sum();
    assert_eq!(total_nodes, again, "{times:?}");
    assert!(
        times.windows(2).all(|w| w[0].per_run >= w[1].per_run),
        "{times:?}"
    );
    let mut names: Vec<&str> = times.iter().map(|t| t.op.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), times.len(), "{times:?}");
    // Every node's evaluation is timed: over 50 runs of the graph, some time is seen whatever
    // the clock's resolution.
    let total: std::time::Duration = s.profile(50).unwrap().iter().map(|t| t.per_run).sum();
    assert!(total > std::time::Duration::ZERO);
}

/// The node profile lists every node the operator profile counts, once each with its operator and
/// name, largest first. Fails if a node were listed per run, left out, or the order reversed.
#[test]
fn the_node_profile_lists_every_node_once_largest_first() {
    let m = load(&redness()).unwrap();
    let mut s = m.runner().unwrap();
    let nodes = s.profile_nodes(3).unwrap();
    let ops = s.profile(1).unwrap();
    assert_eq!(nodes.len(), ops.iter().map(|t| t.nodes).sum::<usize>());
    assert!(
        nodes.windows(2).all(|w| w[0].per_run >= w[1].per_run),
        "{nodes:?}"
    );
    for op in &ops {
        let of_kind = nodes.iter().filter(|n| n.op == op.op).count();
        assert_eq!(of_kind, op.nodes, "{op:?} in {nodes:?}");
    }
    assert!(nodes.iter().all(|n| !n.name.is_empty()), "{nodes:?}");
}

/// The tally behind the profile sums each operator's time over its nodes and runs and divides
/// by the runs (none counts as one), counting a node once however often it ran; largest first,
/// equal times by name. Fails if times were multiplied or taken modulo the runs, or a node
/// counted per run.
#[test]
fn the_profile_tally_averages_each_operator_over_the_runs() {
    use std::time::Duration;
    let ms = Duration::from_millis;
    let mut tally = OpTally::default();
    for _run in 0..4 {
        tally.add("Conv", 1, ms(3));
        tally.add("Conv", 2, ms(5));
        tally.add("Add", 3, ms(2));
        tally.add("Relu", 4, ms(2));
    }
    tally.add("Softmax", 5, ms(1));
    let times: Vec<(String, usize, Duration)> = tally
        .per_run(4)
        .into_iter()
        .map(|t| (t.op, t.nodes, t.per_run))
        .collect();
    let row = |op: &str, nodes, time| (op.to_string(), nodes, time);
    assert_eq!(
        times,
        [
            row("Conv", 2, ms(8)),
            row("Add", 1, ms(2)),
            row("Relu", 1, ms(2)),
            row("Softmax", 1, Duration::from_micros(250)),
        ]
    );
    let mut once = OpTally::default();
    once.add("Conv", 1, ms(3));
    once.add("Conv", 1, ms(4));
    let times = once.per_run(0);
    assert_eq!((times[0].nodes, times[0].per_run), (1, ms(7)));
}

/// How many threads the plan's executor runs inference on, seen from inside a run, and the name
/// of a thread of its pool (none without one).
fn executor_threads(m: &Model) -> (usize, Vec<String>) {
    use tract_linalg::multithread::{current_tract_executor, Executor};
    let mut s = m.runner().unwrap();
    let input = s.input.clone().into_tvalue();
    let mut seen = Vec::new();
    s.state
        .run_plan_with_eval(tvec!(input), |ctx, op_state, node, inputs| {
            seen.push(current_tract_executor());
            tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs)
        })
        .unwrap();
    assert!(!seen.is_empty());
    let counts: Vec<(usize, Vec<String>)> = seen
        .into_iter()
        .map(|executor| match executor {
            Executor::SingleThread => (1, Vec::new()),
            Executor::MultiThread(pool) => {
                let name = pool.install(|| std::thread::current().name().map(str::to_string));
                (pool.current_num_threads(), name.into_iter().collect())
            }
            Executor::RayonGlobal => (0, Vec::new()),
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0].0 == w[1].0), "{counts:?}");
    counts.into_iter().next().unwrap()
}

/// One thread runs inference on the calling thread; more run it on a pool of exactly that many
/// threads named `prescreen-infer-N`. Fails if a single thread got a pool (even of one thread),
/// several got none, or the pool's size moved.
#[test]
fn inference_runs_on_a_pool_of_the_threads_asked_for() {
    for threads in [1, 2, 3] {
        let options = LoadOptions {
            threads,
            ..LoadOptions::default()
        };
        let m = Model::load_dir(redness(), Variant::Float, &options).unwrap();
        let (seen, names) = executor_threads(&m);
        assert_eq!(seen, threads);
        if threads == 1 {
            assert!(names.is_empty(), "a pool of one: {names:?}");
        } else {
            assert_eq!(names.len(), 1);
            assert!(names[0].starts_with("prescreen-infer-"), "{names:?}");
        }
    }
}

/// The scheduler state (`R` running or runnable, `S` asleep, ...) of each thread of this process
/// whose name starts with `prefix`, from `/proc/self/task` (qemu-user passes it through).
#[cfg(target_os = "linux")]
fn thread_states(prefix: &str) -> Vec<char> {
    let mut states = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        // A thread that ended since the listing has no stat left to read.
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if stat[open + 1..close].starts_with(prefix) {
            states.extend(stat[close + 1..].trim_start().chars().next());
        }
    }
    states
}

/// A rayon pool of `threads` threads named `{prefix}N`.
fn named_pool(prefix: &str, threads: usize) -> rayon::ThreadPool {
    let prefix = prefix.to_string();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{prefix}{i}"))
        .build()
        .unwrap()
}

/// Waits until all `threads` threads named `{prefix}N` sleep; fails after a minute.
#[cfg(target_os = "linux")]
fn until_asleep(prefix: &str, threads: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let states = thread_states(prefix);
        if states.len() == threads && states.iter().all(|&s| s == 'S') {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{prefix}: still {states:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// While a run lasts on a model's pool, the pool's other threads do not sleep, even through a
/// serial stretch far longer than rayon's spin before it parks a thread (so the run's next fork
/// finds them awake); after the run they sleep again. Fails if the run used a plain
/// `install` (the others asleep during it), if the awake tasks outlived the run, or if the run's
/// parallel part lost work.
///
/// The states are sampled 20 times over the stretch and each thread must be running in most
/// samples, not in every one: under qemu-user a spinning guest thread now and then waits on the
/// emulator's own locks, which /proc shows as sleeping (one such sample failed CI once, at
/// `cortex-a72`). A thread a plain `install` parked sleeps in every sample after the first.
#[cfg(target_os = "linux")]
#[test]
fn a_runs_pool_threads_stay_awake_while_it_lasts_and_sleep_after_it() {
    use rayon::prelude::*;
    const SAMPLES: usize = 20;
    for threads in [2, 3] {
        let prefix = format!("awake-{threads}-");
        let pool = named_pool(&prefix, threads);
        until_asleep(&prefix, threads);
        let (samples, sum) = awake_for(&pool, || {
            let samples: Vec<Vec<char>> = (0..SAMPLES)
                .map(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    thread_states(&prefix)
                })
                .collect();
            let sum: u64 = (0..100_000u64).into_par_iter().map(|i| i * i).sum();
            (samples, sum)
        });
        // The run's own thread is the one reading the states, so it runs too.
        assert!(samples.iter().all(|s| s.len() == threads), "{samples:?}");
        for thread in 0..threads {
            let running = samples.iter().filter(|s| s[thread] == 'R').count();
            assert!(
                2 * running > SAMPLES,
                "{threads} threads: thread {thread} running in {running} of {SAMPLES} samples: \
                 {samples:?}"
            );
        }
        assert_eq!(sum, (0..100_000u64).map(|i| i * i).sum::<u64>());
        until_asleep(&prefix, threads);
    }
}

/// A run that panics on a pool ends its awake tasks on the way out: the panic reaches the caller
/// (the runner turns it into an error) and the pool runs the next run. Fails (after a minute,
/// not by hanging) if the awake tasks outlive a panicking run, since the run's scope waits for
/// them.
#[test]
fn a_run_that_panics_on_a_pool_lets_its_other_threads_go() {
    use rayon::prelude::*;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pool = named_pool("awake-panic-", 2);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            awake_for(&pool, || -> u32 { panic!("a run that panics") })
        }));
        let next = awake_for(&pool, || (0..1000u32).into_par_iter().sum::<u32>());
        sender.send((panicked.is_err(), next)).unwrap();
    });
    let outcome = receiver.recv_timeout(std::time::Duration::from_secs(60));
    assert_eq!(outcome, Ok((true, 499_500)));
}

/// A graph of one input and two outputs is refused before anything else is checked, saying
/// how many of each it has. Fails if it took two wrong counts to refuse.
#[test]
fn a_graph_with_two_outputs_is_refused() {
    let manifest = Manifest::load(redness()).unwrap();
    let onnx = tract_onnx::onnx();
    let mut graph = onnx.model_for_path(redness().join("redness.onnx")).unwrap();
    assert_eq!(check_io(&manifest, &graph), Ok(()));
    let scores = graph.output_outlets().unwrap()[0];
    let logits = graph.node(scores.node).inputs[0];
    graph.select_output_outlets(&[scores, logits]).unwrap();
    assert_eq!(
        check_io(&manifest, &graph),
        Err("model has 1 inputs and 2 outputs, expected 1 and 1".to_string())
    );
}
