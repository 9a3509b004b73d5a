//! Graph rewrites applied to a model after tract has typed it and before tract optimises it.
//!
//! Each pass has its own file: `fuse` turns a QDQ file's quantize/dequantize pairs into f32
//! arithmetic, `integer` makes its quantized convolutions integer ones (with the weights `weights`
//! reads back from the file), `float_depthwise` moves the depthwise convolutions left in f32 onto
//! prescreen's kernel, `max_pool` does the same for f32 max pools and `layout` for a channels-last
//! input's transpose and subsampling; `convolution` reads the convolutions the first two replace. [`apply`] runs
//! them in their order: the loader calls it once.

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::inference::qconv::{Kernel, Simd};

mod convolution;
mod dequantize;
mod float_depthwise;
mod fuse;
mod integer;
mod layout;
mod max_pool;
mod weights;

pub(crate) use float_depthwise::float_depthwise_convolutions;
pub(crate) use fuse::{fuse_quantize_dequantize, residual_adds, Pairs, ROUNDING_BIAS};
pub(crate) use integer::quantized_convolutions;
pub(crate) use layout::{channels_first, subsample_before_einsums, subsamples};
pub(crate) use max_pool::max_pools;
pub(crate) use weights::QuantizedWeights;

/// What [`apply`] made: the rewritten graph, and how much each pass replaced.
pub(crate) struct Rewritten {
    /// The graph, for tract to optimise.
    pub(crate) model: TypedModel,
    /// Convolutions now integer ones ([`quantized_convolutions`]).
    pub(crate) integer_convolutions: usize,
    /// Depthwise convolutions now on prescreen's f32 kernel ([`float_depthwise_convolutions`]).
    pub(crate) float_depthwise: usize,
    /// Quantize/dequantize pairs fused into f32 arithmetic ([`fuse_quantize_dequantize`]).
    pub(crate) fused_pairs: usize,
    /// Residual adds now one operator with their pair ([`residual_adds`]).
    pub(crate) residual_adds: usize,
    /// f32 max pools now on prescreen's kernel ([`max_pools`]).
    pub(crate) max_pools: usize,
    /// Whether tract's declutter ran on the graph before the passes (without its `ChangeAxes`,
    /// [`declutter_keeping_layout`]) and no depthwise convolution is left to tract: tract's
    /// codegen is then all it needs.
    pub(crate) decluttered: bool,
}

/// What the rewrite needs from the ONNX file itself, read before tract builds its graph
/// ([`Source::read`]).
pub(crate) struct Source {
    /// The quantized convolutions' weights, with the integer kernel that will run them.
    weights: Option<(Kernel, QuantizedWeights)>,
    /// Whether the file has quantize/dequantize nodes (a QDQ file).
    is_quantized: bool,
}

impl Source {
    /// Folds the file's constant `DequantizeLinear` nodes into f32 initializers, which tract would
    /// compute the same but far more slowly (`dequantize`), and keeps the quantized weights among
    /// them when there is a `kernel` to run them on. A node this cannot read is left to tract.
    pub(crate) fn read(
        onnx: &tract_onnx::Onnx,
        proto: &mut pb::ModelProto,
        kernel: Option<Kernel>,
    ) -> Self {
        let is_quantized = proto.graph.as_ref().is_some_and(|g| {
            g.node
                .iter()
                .any(|n| matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"))
        });
        let mut weights = kernel.map(|kernel| (kernel, QuantizedWeights::default()));
        let folded = dequantize::fold_constant_dequantize(
            onnx,
            proto,
            weights.as_mut().map(|(_, weights)| weights),
        );
        log::debug!("{folded} constant dequantizations folded before tract reads the graph");
        Source {
            weights,
            is_quantized,
        }
    }
}

/// Runs the graph passes, in their order, on `typed`, the typed graph of the file `source` was read
/// from: the integer convolutions on the kernel given to [`Source::read`] (none when `None`), and
/// the f32 depthwise ones on prescreen's kernel when `float_depthwise_kernel`
/// (`LoadOptions::float_depthwise`). An error is the reason the load fails.
pub(crate) fn apply(
    mut typed: TypedModel,
    source: Source,
    float_depthwise_kernel: bool,
) -> Result<Rewritten, String> {
    let mut integer = 0;
    // With an integer kernel (a SIMD one this CPU runs, or the portable one when asked for),
    // quantized convolutions run as integer ones (crate::inference::qconv).
    // The pairs on their inputs and outputs are left for that rewrite, which needs tract's
    // decluttered graph (1×1 convolutions as EinSum); every other pair is fused first, so that
    // decluttering cannot turn `DequantizeLinear → Softmax → QuantizeLinear` into tract's
    // quantized Softmax (wrong, see tests/model.rs).
    let Source {
        weights,
        is_quantized,
    } = source;
    let mut fused = 0;
    let mut decluttered = false;
    let mut float_depthwise = 0;
    if let Some((kernel, weights)) = weights.filter(|(_, w)| !w.is_empty()) {
        fused += fuse_quantize_dequantize(&mut typed, Pairs::NotAroundConvolutions)
            .map_err(|e| format!("rewriting quantize/dequantize pairs: {e:#}"))?;
        typed = declutter_keeping_layout(typed).map_err(|e| format!("{e:#}"))?;
        let thinned = subsample_before_einsums(&mut typed)
            .map_err(|e| format!("moving subsampling before 1×1 convolutions: {e:#}"))?;
        log::debug!("{thinned} subsamplings moved before the 1×1 convolution they thin");
        integer = quantized_convolutions(&mut typed, &weights, kernel)
            .map_err(|e| format!("rewriting quantized convolutions: {e:#}"))?;
        // A graph nothing was rewritten in is decluttered again, with the layout tract's full
        // declutter chooses (`ChangeAxes`), as if no kernel had been offered.
        decluttered = integer > 0;
        log::debug!(
            "{integer} quantized convolutions run as integer convolutions ({})",
            kernel.name()
        );
    }
    // The depthwise convolutions left in f32 (crate::inference::qconv::FloatDepthwise). A QDQ file
    // without the integer rewrite keeps tract's kernels throughout, so that `Off` compares
    // with tract alone.
    if float_depthwise_kernel && (decluttered || !is_quantized) {
        if !decluttered {
            typed = declutter_keeping_layout(typed).map_err(|e| format!("{e:#}"))?;
            decluttered = true;
        }
        let simd = Simd::detect();
        float_depthwise = float_depthwise_convolutions(&mut typed, simd)
            .map_err(|e| format!("rewriting depthwise convolutions: {e:#}"))?;
        log::debug!(
            "{float_depthwise} f32 depthwise convolutions on prescreen's kernel ({})",
            simd.name()
        );
    }
    // Every f32 max pool, in any file: tract's walks its windows one value at a time. A pair the
    // pool takes is fused as the others are, into the pool's f32 arithmetic.
    let simd = Simd::detect();
    let max_pool::Pools { pools, pairs } =
        max_pools(&mut typed, simd).map_err(|e| format!("rewriting max pools: {e:#}"))?;
    log::debug!(
        "{pools} max pools on prescreen's kernel ({}), {pairs} with their output's pair",
        simd.name()
    );
    fused += pairs;
    let transposes = channels_first(&mut typed)
        .map_err(|e| format!("rewriting the input's transpose: {e:#}"))?;
    log::debug!("{transposes} channels-last inputs transposed by prescreen's copy");
    let subsampled = subsamples(&mut typed).map_err(|e| format!("rewriting subsampling: {e:#}"))?;
    log::debug!("{subsampled} downsamplings by prescreen's copy");
    // The residual adds of a graph the integer rewrite ran on (a QDQ file without it keeps
    // tract's operators, so that `Off` compares with tract alone).
    let mut residual = 0;
    if integer > 0 {
        residual =
            residual_adds(&mut typed).map_err(|e| format!("rewriting residual adds: {e:#}"))?;
        log::debug!("{residual} residual adds with their quantize/dequantize pair on the pool");
    }
    fused += fuse_quantize_dequantize(&mut typed, Pairs::All)
        .map_err(|e| format!("rewriting quantize/dequantize pairs: {e:#}"))?;
    log::debug!("fused {fused} quantize/dequantize pairs into f32 arithmetic");
    // tract's own depthwise kernel runs best in the layout its full declutter picks
    // (`ChangeAxes`): nsfwjs int8 at `max,sve=off`, where its three f32 depthwise layers stay in
    // tract (`LoadOptions::float_depthwise` is off on aarch64), took 163.5 M instructions per
    // inference with codegen alone and 142.5 M with the full declutter. Such a graph gets it.
    Ok(Rewritten {
        decluttered: decluttered && !convolution::has_depthwise(&typed),
        model: typed,
        integer_convolutions: integer,
        float_depthwise,
        fused_pairs: fused,
        residual_adds: residual,
        max_pools: pools,
    })
}

/// Puts one node running `op`, named after node `first` with `suffix`, in place of the nodes from
/// `first` (whose first input it reads) to `last` (whose output it gives), removing `first` and
/// `absorbed` (which holds `last` unless it is `first`).
fn replace<O: Into<Box<dyn TypedOp>>>(
    model: &mut TypedModel,
    first: usize,
    last: usize,
    absorbed: &[usize],
    suffix: &str,
    op: O,
) -> TractResult<()> {
    replace_chain(model, first, last, absorbed, [(suffix, op.into())])
}

/// [`replace`] with a chain of nodes, each reading the one before: the first reads node `first`'s
/// first input, the last gives `last`'s output.
fn replace_chain<const N: usize>(
    model: &mut TypedModel,
    first: usize,
    last: usize,
    absorbed: &[usize],
    chain: [(&str, Box<dyn TypedOp>); N],
) -> TractResult<()> {
    let input = model.nodes[first].inputs[0];
    chain_reading(model, input, first, last, absorbed, chain)
}

/// [`replace_chain`] with the chain's first node reading `input` rather than node `first`'s first
/// input (when the operator also absorbed nodes before `first`).
fn chain_reading<const N: usize>(
    model: &mut TypedModel,
    input: OutletId,
    first: usize,
    last: usize,
    absorbed: &[usize],
    chain: [(&str, Box<dyn TypedOp>); N],
) -> TractResult<()> {
    let node = &model.nodes[first];
    let mut patch = TypedModelPatch::default();
    let mut y = patch.tap_model(model, input)?;
    for (suffix, op) in chain {
        y = patch.wire_node(format!("{}.{suffix}", node.name), op, &[y])?[0];
    }
    patch.shunt_outside(model, OutletId::new(last, 0), y)?;
    patch.obliterate(first)?;
    for &id in absorbed {
        patch.obliterate(id)?;
    }
    patch.apply(model)
}

/// tract's declutter without its axis-changing pass (`ChangeAxes`), which moves channels last where
/// that removes a transpose: the integer rewrite matches the file's channel-first convolutions,
/// and that pass's choices differ between x86-64 and aarch64 (on aarch64 it turned nsfwjs's
/// expanded activations channel-last, and 42 of its 43 quantized convolutions went unmatched).
/// The loader does not declutter such a graph again, so it keeps the file's layout on every CPU;
/// the codegen that follows redoes the operators' own declutter after the passes.
fn declutter_keeping_layout(mut model: TypedModel) -> TractResult<TypedModel> {
    let mut optimizer = tract_onnx::tract_core::optim::Optimizer::declutter();
    let passes = optimizer.passes.len();
    optimizer
        .passes
        .retain(|pass| format!("{pass:?}") != "ChangeAxes");
    tract_onnx::tract_core::internal::ensure!(
        optimizer.passes.len() + 1 == passes,
        "tract's declutter has no ChangeAxes pass to leave out"
    );
    optimizer.optimize(&mut model)?;
    Ok(model)
}

#[cfg(test)]
mod tests;
