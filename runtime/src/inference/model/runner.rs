//! The runner: a worker's [`Runner`] on a loaded [`Model`], which runs the optimised plan on the
//! input the preprocessor wrote and checks that what comes out is a probability vector
//! ([`Scores`]); [`Runner::profile`] and [`Runner::profile_nodes`] time the plan's operators.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{tract_err, Model};
use crate::error::{Error, Result};
use crate::manifest::Activation;

/// The probabilities a model gave for one input, in the manifest's label order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// One probability per label.
    pub probabilities: Vec<f32>,
}

impl Scores {
    /// The probability of label `index`.
    pub fn get(&self, index: usize) -> Option<f32> {
        self.probabilities.get(index).copied()
    }

    /// `ln(p[index] / p[other])`: the log-odds of one label against another (for two softmax labels,
    /// the model's logit difference). Finite even for probabilities of exactly 0 or 1.
    pub fn log_odds(&self, index: usize, other: usize) -> f32 {
        let p = |i: usize| (self.probabilities[i] as f64).max(1e-30);
        (p(index) / p(other)).ln() as f32
    }
}

/// Per-worker inference state: tract's state and the input tensor.
pub struct Runner {
    pub(super) model: Model,
    pub(super) state: TypedSimpleState,
    pub(super) input: Arc<Tensor>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// The model this runner runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The input tensor's data, for the preprocessor to write into (length
    /// [`crate::manifest::InputSpec::len`]).
    pub fn input_mut(&mut self) -> &mut [f32] {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract kept a reference to the last input; give this run a fresh buffer.
            let shape = self.model.inner.manifest.input.shape();
            self.input =
                Arc::new(Tensor::zero::<f32>(&shape).expect("f32 tensor of a checked shape"));
        }
        Arc::get_mut(&mut self.input)
            .expect("input tensor was just made unique")
            .to_plain_array_view_mut::<f32>()
            .ok()
            .and_then(|view| view.into_slice())
            .expect("input tensor is a contiguous f32 tensor")
    }

    /// Runs the model on the current input and checks that the output is a probability vector.
    /// Runners of one model with more than one thread take turns: one run at a time on its pool.
    pub fn run(&mut self) -> Result<Scores> {
        let input = self.input.clone().into_tvalue();
        let state = &mut self.state;
        let outputs = guarded(&self.model, || state.run(tvec!(input)))?;
        let values: Vec<f32> = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(tract_err)?
            .iter()
            .copied()
            .collect();
        drop(outputs);
        check_probabilities(self.model.inner.manifest.output.activation, &values)?;
        Ok(Scores {
            probabilities: values,
        })
    }
}

/// Runs one pass of the plan (`run`) inside the model's thread pool when it has one, so the
/// integer kernels' parallel parts run on its workers; a panic or an error becomes
/// [`Error::Inference`].
///
/// One pass at a time on the pool (the model's `turn`): a pool thread that waits for the rest of an
/// operator's work runs whatever else is queued on the pool meanwhile, a whole other run
/// included, and tract's matrix product holds its thread's scratch while it waits, so a second
/// run started on that thread failed with a panic (tests/model.rs, runners sharing a model). The
/// other runners wait on their own threads, outside the pool.
fn guarded<T>(model: &Model, run: impl FnOnce() -> TractResult<T> + Send) -> Result<T>
where
    T: Send,
{
    catch_unwind(AssertUnwindSafe(|| match &model.inner.pool {
        Some(pool) => {
            let _turn = model
                .inner
                .turn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            awake_for(pool, run)
        }
        None => run(),
    }))
    .map_err(|_| Error::Inference("tract panicked while running the model".into()))?
    .map_err(|e| Error::Inference(format!("{e:#}")))
}

/// Runs `run` on one of `pool`'s threads while its other threads stay awake until it returns.
///
/// A run forks many times (each integer kernel's passes, tract's matrix products; nsfwjs int8 about
/// 80 times) with serial operators between the forks. A rayon thread with nothing to do sleeps
/// after a short spin, and every fork after a serial stretch paid for waking it: on this project's
/// 2-vCPU VM a two-way fork of 20 us of work took 11 us with the other thread awake and 27-30 us
/// after 20 us or more of serial work. So every other thread of the pool takes a task that, until
/// the run returns, runs whatever the run shares on the pool (`rayon::yield_now`) and otherwise
/// hands its core to the scheduler (`std::thread::yield_now`): a camera or encoder thread that
/// wants that core gets it at the next turn of the loop. Between runs the pool's threads sleep as
/// before.
///
/// The tasks are a scope's broadcast: one in each thread's own queue, which no other thread
/// takes, so each thread spins in its own (not two nested in one while another sleeps), and the
/// run's own thread returns from its one at once (it would otherwise spin inside the run it is
/// part of, which only ends after the spin). The scope waits for them; a panic in `run` ends
/// them too, on its way out.
pub(super) fn awake_for<T: Send>(pool: &rayon::ThreadPool, run: impl FnOnce() -> T + Send) -> T {
    /// Sets the flag when dropped: at the run's end, or when it panics.
    struct SetOnDrop<'a>(&'a AtomicBool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    pool.scope(|scope| {
        let (runner, done) = (rayon::current_thread_index(), &done);
        scope.spawn_broadcast(move |_, thread| {
            if Some(thread.index()) == runner {
                return;
            }
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        });
        let _end = SetOnDrop(done);
        run()
    })
}

/// Time one kind of tract operator took in [`Runner::profile`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    /// tract's name for the operator (after optimisation, e.g. `OptMatMul`).
    pub op: String,
    /// Nodes of this kind in the optimised graph.
    pub nodes: usize,
    /// Time per run, summed over those nodes.
    pub per_run: std::time::Duration,
}

/// One node's time per run in the optimised graph ([`Runner::profile_nodes`]).
#[derive(Clone, Debug)]
pub struct NodeTime {
    /// The node's name (the file's node name, with tract's suffixes for what it split off).
    pub name: String,
    /// Its operator's name, as in [`OpTime::op`].
    pub op: String,
    /// What the operator says of itself (tract's info lines, joined): shapes, kernels, wires.
    pub info: String,
    /// Time per run.
    pub per_run: std::time::Duration,
}

impl Runner {
    /// Runs the model `runs` times on the current input, timing every node, and returns the time
    /// per run each kind of operator took, largest first: where inference time goes (the harness's
    /// `bench-infer --profile`). Timing each node adds a little to the total.
    pub fn profile(&mut self, runs: usize) -> Result<Vec<OpTime>> {
        let mut tally = OpTally::default();
        self.timed_runs(runs, |node, time| {
            tally.add(node.op().name().as_ref(), node.id, time)
        })?;
        Ok(tally.per_run(runs))
    }

    /// [`Runner::profile`] node by node: each node's time per run over `runs` runs (at least
    /// one), largest first, equal times in graph order; which node of a kind costs what (the
    /// harness's `bench-infer --nodes`).
    pub fn profile_nodes(&mut self, runs: usize) -> Result<Vec<NodeTime>> {
        let mut nodes = std::collections::BTreeMap::new();
        self.timed_runs(runs, |node, time| {
            nodes
                .entry(node.id)
                .or_insert_with(|| NodeTime {
                    name: node.name.clone(),
                    op: node.op().name().to_string(),
                    info: node.op().info().map(|i| i.join("; ")).unwrap_or_default(),
                    per_run: std::time::Duration::ZERO,
                })
                .per_run += time;
        })?;
        let runs = u32::try_from(runs.max(1)).unwrap_or(u32::MAX);
        let mut nodes: Vec<NodeTime> = nodes
            .into_values()
            .map(|node| NodeTime {
                per_run: node.per_run / runs,
                ..node
            })
            .collect();
        // A stable sort: equal times keep the graph's order.
        nodes.sort_by_key(|node| std::cmp::Reverse(node.per_run));
        Ok(nodes)
    }

    /// Runs the model `runs` times (at least once) on the current input, telling `timed` how long
    /// each node's evaluation took.
    fn timed_runs(
        &mut self,
        runs: usize,
        mut timed: impl FnMut(&TypedNode, std::time::Duration) + Send,
    ) -> Result<()> {
        for _ in 0..runs.max(1) {
            let input = self.input.clone().into_tvalue();
            let state = &mut self.state;
            let timed = &mut timed;
            guarded(&self.model, || {
                state.run_plan_with_eval(tvec!(input), |ctx, op_state, node, inputs| {
                    let started = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                    timed(node, started.elapsed());
                    out
                })
            })?;
        }
        Ok(())
    }
}

/// Time spent per kind of operator over one or more runs ([`Runner::profile`]).
#[derive(Default)]
pub(super) struct OpTally {
    /// Per operator name: the nodes seen running it, and the time they took together.
    ops: std::collections::HashMap<String, (std::collections::HashSet<usize>, std::time::Duration)>,
}

impl OpTally {
    /// Node `node`, running operator `op`, took `time`.
    pub(super) fn add(&mut self, op: &str, node: usize, time: std::time::Duration) {
        let entry = self.ops.entry(op.to_string()).or_default();
        entry.0.insert(node);
        entry.1 += time;
    }

    /// The time per run over `runs` runs (at least one) of each operator, largest first, ties by
    /// name.
    pub(super) fn per_run(self, runs: usize) -> Vec<OpTime> {
        let runs = u32::try_from(runs.max(1)).unwrap_or(u32::MAX);
        let mut times: Vec<OpTime> = self
            .ops
            .into_iter()
            .map(|(op, (nodes, time))| OpTime {
                op,
                nodes: nodes.len(),
                per_run: time / runs,
            })
            .collect();
        times.sort_by(|a, b| b.per_run.cmp(&a.per_run).then(a.op.cmp(&b.op)));
        times
    }
}

pub(super) fn check_probabilities(activation: Activation, values: &[f32]) -> Result<()> {
    let in_range = values
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v));
    let sum: f32 = values.iter().sum();
    if !in_range || (activation == Activation::Softmax && (sum - 1.0).abs() > 1e-3) {
        return Err(Error::BadOutput(values.to_vec()));
    }
    Ok(())
}
