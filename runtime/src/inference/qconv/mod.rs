//! An integer convolution for quantized (QDQ) models: u8 activations × s8 weights summed exactly in
//! i32, with AVX-512 VNNI (`vpdpbusd`) on x86-64 and the dot product instructions (`sdot`) on
//! aarch64, where the CPU has them (see [`Kernel`]).
//!
//! tract runs a QDQ file's convolutions in f32: it folds the int8 weights back to floats. On a CPU
//! with VNNI one `vpdpbusd` does 64 u8×s8 multiply-adds, four times the f32 FMA rate; on an ARM
//! core with dotprod (every phone core since about 2018) one `sdot` does 16, against 4 for an f32
//! `fmla`. That is where onnxruntime's int8 speed comes from. [`QConv`] is the operator the loader puts in place of
//! `DequantizeLinear → Conv → (+ bias) → QuantizeLinear → DequantizeLinear` (see
//! [`crate::inference::rewrite::quantized_convolutions`]). It computes what that chain means:
//!
//! ```text
//! qx = clamp(round_even(x · (1/sx)) + zx, 0, 255)                  (the input's quantization)
//! y[o] = (Σ (qx − zx) · qw[o]) · (sx · sw[o]) + bias[o]            (exact integer sum, one scale)
//! out = (clamp(round_even(y · (1/sy)), −zy, 255 − zy)) · sy        (the output's Q/DQ pair, if any)
//! ```
//!
//! Its input is the dequantized tensor, whose values are `(q − zx) · sx`; quantizing it again with
//! `1/sx` gives back `q` exactly (the error is below 10⁻⁴ of a step), so the operator may sit on the
//! same wire as the float graph's other consumers.
//!
//! # Layout
//!
//! Activations are planar (CHW), as tract keeps ONNX's NCHW models. The input is quantized into a
//! padded image whose pixels are 4 consecutive channels, one byte each (`[C/4][Hp·Wp][4]`), which is
//! what `vpdpbusd` and `sdot` multiply against 4 bytes of weights (`sdot` multiplies s8 by s8, so
//! its kernel stores each byte as `q − 128` and adds `128 · Σw` back). The output is computed over the padded
//! width (`out_h × Wp` pixels, the `Wp − out_w` extra columns discarded when stored): each kernel tap
//! is then a constant offset into the padded image, so a row of 16 output pixels reads 64
//! contiguous bytes per tap and channel group, and no im2col copy is made.
//!
//! The depthwise twin is [`QDepthwise`] (`depthwise.rs`); the depthwise convolutions a model keeps
//! in f32 run on [`FloatDepthwise`] (`float_depthwise.rs`), f32 max pools on [`FloatMaxPool`]
//! (`max_pool.rs`), an NHWC input's transpose on [`ChannelsFirst`] (`channels_first.rs`) and
//! subsampling on [`Subsample`] (`subsample.rs`). A stride-2 dense convolution runs as a stride-1
//! [`QConv`] over the input's 2×2 blocks stacked as channels by [`SpaceToDepth`]
//! (`space_to_depth.rs`). The dense kernels are in `portable.rs`, `x86_64.rs` and `aarch64.rs`,
//! their tests in `tests.rs`.

use std::cell::RefCell;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// The tract operator traits of one of this module's operators: each takes one f32 tensor of
/// `len(self)` values and writes `out_shape` through its inherent `$method(input, out,
/// self.$arg)`; `info` is its inherent `describe()`. The short form is a convolution's: its
/// `convolve`, over `geometry.channels x height x width` values.
macro_rules! f32_operator {
    ($op:ty, $name:literal, $method:ident, $arg:ident, $len:expr) => {
        impl Op for $op {
            fn name(&self) -> StaticName {
                $name.into()
            }

            fn info(&self) -> TractResult<Vec<String>> {
                Ok(vec![self.describe()])
            }

            op_as_typed_op!();
        }

        impl EvalOp for $op {
            op_out_of_plan!();

            fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
                let len: usize = ($len)(self);
                $crate::inference::qconv::eval_into(&inputs, len, &self.out_shape, |input, out| {
                    self.$method(input, out, self.$arg)
                })
            }
        }

        impl TypedOp for $op {
            fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
                ensure!(inputs[0].datum_type == f32::datum_type());
                Ok(tvec!(f32::fact(self.out_shape.clone())))
            }

            as_op!();
        }
    };
    ($op:ty, $name:literal, $kernel:ident) => {
        f32_operator!($op, $name, convolve, $kernel, |op: &$op| {
            let g = &op.geometry;
            g.channels * g.height * g.width
        });
    };
}

mod channels_first;
mod depthwise;
mod float_depthwise;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod max_pool;
mod residual;
mod space_to_depth;
mod subsample;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub(crate) use channels_first::ChannelsFirst;
pub(crate) use depthwise::{DepthwiseGeometry, QDepthwise};
pub(crate) use float_depthwise::{FloatDepthwise, Simd};
pub(crate) use max_pool::{same_padding, FloatMaxPool, PoolGeometry, PoolOutput};
use portable::{convolve_portable, quantize_portable};
pub(crate) use residual::ResidualAdd;
pub(crate) use space_to_depth::SpaceToDepth;
pub(crate) use subsample::Subsample;
// For the NEON quantizer's tails, the tests and the depthwise kernel's docs (glob imports).
#[cfg_attr(not(any(test, target_arch = "aarch64")), allow(unused_imports))]
use portable::quantize_one;

/// Output channels per register block.
const BLOCK_O: usize = 8;
/// Pixels per vector.
const LANES: usize = 16;
/// Vectors of pixels per full register block of the AVX-512 kernel (3 × 8 = 24 accumulators).
#[cfg(target_arch = "x86_64")]
const BLOCK_P: usize = 3;

/// The kernels a [`QConv`] runs on. Every SIMD kernel computes the portable one's sums exactly
/// and its epilogue with the same f32 operations in the same order, so their outputs are
/// bit-identical (tests below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The scalar reference: any CPU.
    Portable,
    /// x86-64 with AVX-512 F, BW and VNNI: `vpdpbusd`, 64 u8 × s8 multiply-adds per instruction.
    Vnni,
    /// aarch64 with the ARMv8.2 dot product extension: `sdot`, 16 s8 × s8 multiply-adds per
    /// instruction, on activations offset by −128.
    Dotprod,
    /// aarch64 with the ARMv8.6 int8 matrix multiply extension: `usmmla`, 32 u8 × s8
    /// multiply-adds per instruction (a 2×8 by 8×2 matrix product).
    I8mm,
    /// Any aarch64 CPU (NEON is baseline): widening multiplies (`smull`, `smlal`, `sadalp`), 16
    /// s8 × s8 multiply-adds per 3 instructions, on activations offset by −128 as for `sdot`. For
    /// the cores without dotprod (Cortex-A72/A73/A53 class), where tract's f32 kernels were the
    /// only other path. Dense convolutions only: depthwise ones stay with tract on those cores.
    Neon,
}

impl Kernel {
    /// The SIMD kernels, fastest first.
    pub const SIMD: [Kernel; 4] = [Kernel::Vnni, Kernel::I8mm, Kernel::Dotprod, Kernel::Neon];

    /// Whether this CPU runs the kernel (detected at run time, on every OS: Android included).
    pub fn available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Dotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(target_arch = "aarch64")]
            Kernel::I8mm => std::arch::is_aarch64_feature_detected!("i8mm"),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest SIMD kernel this CPU runs, if any: the loader rewrites quantized convolutions
    /// only when there is one (the portable kernel is slower than tract's f32 ones).
    pub fn detect() -> Option<Kernel> {
        Kernel::SIMD.into_iter().find(|k| k.available())
    }

    /// A short name for logs and benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Vnni => "avx512-vnni",
            Kernel::Dotprod => "neon-dotprod",
            Kernel::I8mm => "neon-i8mm",
            Kernel::Neon => "neon",
        }
    }

    /// Whether the kernel has a depthwise twin ([`QDepthwise`]); the loader leaves depthwise
    /// convolutions to tract where it has not.
    pub fn runs_depthwise(self) -> bool {
        self != Kernel::Neon
    }
}

/// The shape of one convolution: stride 1, no dilation, one group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Geometry {
    /// Input channels.
    pub channels: usize,
    /// Input height and width.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub pad: [usize; 4],
    /// Output channels.
    pub out_channels: usize,
}

impl Geometry {
    fn padded(&self) -> (usize, usize) {
        (
            self.height + self.pad[0] + self.pad[2],
            self.width + self.pad[1] + self.pad[3],
        )
    }

    /// Output height and width (stride 1).
    pub fn output(&self) -> (usize, usize) {
        let (hp, wp) = self.padded();
        (hp + 1 - self.kernel[0], wp + 1 - self.kernel[1])
    }

    fn groups(&self) -> usize {
        self.channels.div_ceil(4)
    }

    /// Values in one output channel.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    fn output_len(&self) -> usize {
        let (oh, ow) = self.output();
        oh * ow
    }

    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// The input's runs of pixels that stay contiguous in the padded image, as (count, length):
    /// one per row, or the whole image when no column is padded (its rows then follow each
    /// other in the planes too, so the quantizers take them in one run, without a short tail
    /// per row: at 7×7 pixels 3 of each row's 7 took the scalar path on aarch64).
    fn runs(&self) -> (usize, usize) {
        if self.pad[1] == 0 && self.pad[3] == 0 {
            (1, self.height * self.width)
        } else {
            (self.height, self.width)
        }
    }

    /// Output pixels computed: every row over the padded width.
    fn flat(&self) -> usize {
        self.output().0 * self.padded().1
    }

    fn vectors(&self) -> usize {
        self.flat().div_ceil(LANES)
    }

    /// Pixels in one channel group's plane of the quantized input: the padded image plus the slack
    /// the last vector's furthest tap reads.
    fn plane(&self) -> usize {
        let wp = self.padded().1;
        let reach = (self.kernel[0] - 1) * wp + self.kernel[1] - 1;
        let plane = (self.vectors() * LANES + reach).max(self.padded().0 * wp);
        plane.next_multiple_of(LANES)
    }

    /// Where each output vector's valid lanes go: (lane mask, index of the first in its channel).
    fn store_plan(&self) -> Vec<(u16, usize)> {
        let (_, ow) = self.output();
        let (_, wp) = self.padded();
        let flat = self.flat();
        (0..self.vectors())
            .map(|v| {
                let j0 = v * LANES;
                let mut mask = 0u16;
                for l in 0..LANES {
                    let j = j0 + l;
                    if j < flat && j % wp < ow {
                        mask |= 1 << l;
                    }
                }
                (mask, j0 / wp * ow + (j0 % wp).min(ow))
            })
            .collect()
    }

    fn offsets(&self) -> Vec<usize> {
        let wp = self.padded().1;
        (0..self.kernel[0])
            .flat_map(|dy| (0..self.kernel[1]).map(move |dx| dy * wp + dx))
            .collect()
    }

    /// Whether the shapes are ones this operator computes exactly and in bounds.
    pub fn is_valid(&self) -> bool {
        let (hp, wp) = self.padded();
        self.channels > 0
            && self.out_channels > 0
            && self.height > 0
            && self.width > 0
            && self.kernel.iter().all(|&k| k > 0)
            && hp >= self.kernel[0]
            && wp >= self.kernel[1]
            && self.pad[0] < self.kernel[0]
            && self.pad[2] < self.kernel[0]
            && self.pad[1] < self.kernel[1]
            && self.pad[3] < self.kernel[1]
            // |Σ| ≤ K · 255 · 128 must fit an i32 (the sum is exact).
            && (self.groups() * 4)
                .checked_mul(self.taps())
                .and_then(|k| k.checked_mul(255 * 128))
                .is_some_and(|bound| bound < i32::MAX as usize)
            && self.plane().checked_mul(self.groups() * 4).is_some()
    }
}

/// The output's quantize/dequantize pair, folded into the operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Requantize {
    /// `1/scale` as the quantization multiplies by it.
    pub inv_scale: f32,
    /// Zero point.
    pub zero_point: u8,
    /// Scale the dequantization multiplies by.
    pub scale: f32,
}

/// The integer convolution operator (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct QConv {
    geometry: Geometry,
    /// Multiplier that quantizes the input (`1/sx`) and the input's zero point.
    in_inv_scale: f32,
    in_zero: u8,
    /// Weights, s8, `[O/8][tap][C/4][8][4]`, zero beyond the real channels.
    packed: Arc<Vec<i8>>,
    /// The same weights for `usmmla`, where the CPU has it (see `mmla_weights`).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    packed_mmla: Option<Arc<Vec<i8>>>,
    /// Where `packed_mmla` is set: each block's `−zero_sums` in the lanes of a `usmmla`
    /// accumulator (channels `2k, 2k + 1, 2k, 2k + 1` for `k` in 0..4, 0 past the last channel),
    /// what its accumulators start from (see `mmla_zero`); empty elsewhere.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    mmla_zero: Vec<i32>,
    /// `zx · Σ qw[o]`, what the input's zero point adds to each output channel's sum.
    zero_sums: Vec<i32>,
    /// `(zx − 128) · Σ qw[o]`: the same for the `sdot` kernel, whose activations are `q − 128`.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    signed_zero_sums: Vec<i32>,
    /// Where the CPU has dotprod: `−signed_zero_sums`, 0 past the last channel to a whole
    /// block, what the `sdot` kernel's accumulators start from; empty elsewhere.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    dot_zero: Vec<i32>,
    /// Whether the NEON kernel's 16-bit sums of two products cannot overflow (see
    /// `neon_safe`); where they could, it runs the portable kernel.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    neon_safe: bool,
    /// `sx · sw[o]`.
    scales: Vec<f32>,
    bias: Vec<f32>,
    requantize: Option<Requantize>,
    out_shape: TVec<usize>,
    /// Each tap's offset in the padded image (`Geometry::offsets`).
    offsets: Vec<usize>,
    /// Where each output vector's lanes are stored (`Geometry::store_plan`).
    plan: Vec<(u16, usize)>,
    /// The kernel `eval` runs on, chosen when the model is loaded (`with_kernel`).
    kernel: Kernel,
}

impl Eq for QConv {}

impl QConv {
    /// Builds the operator from s8 weights in OIHW order, one scale per output channel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        geometry: Geometry,
        in_scale: f32,
        in_zero: u8,
        weights: &[i8],
        weight_scales: &[f32],
        bias: Option<&[f32]>,
        requantize: Option<Requantize>,
        out_shape: TVec<usize>,
    ) -> TractResult<QConv> {
        let g = &geometry;
        ensure!(g.is_valid(), "convolution geometry out of range: {g:?}");
        check_output_shape(&out_shape, g.out_channels, g.output())?;
        let taps = g.taps();
        ensure!(weights.len() == g.out_channels * g.channels * taps);
        check_quantization(in_scale, weight_scales, requantize, g.out_channels)?;
        let bias = channel_bias(bias, g.out_channels)?;
        let groups = g.groups();
        let blocks = g.out_channels.div_ceil(BLOCK_O);
        let mut packed = vec![0i8; blocks * taps * groups * BLOCK_O * 4];
        // One output channel's group of 4 input channels at a time: its weights are one run of
        // `4 · taps` bytes, and each tap's 4 go to one word of that tap's line, zero beyond the
        // last channel.
        for (block, lines) in packed
            .chunks_exact_mut(taps * groups * BLOCK_O * 4)
            .enumerate()
        {
            for o in block * BLOCK_O..(block * BLOCK_O + BLOCK_O).min(g.out_channels) {
                let own = &weights[o * g.channels * taps..(o + 1) * g.channels * taps];
                for (group, from) in own.chunks(4 * taps).enumerate() {
                    let channels = from.len() / taps;
                    for t in 0..taps {
                        let mut word = [0i8; 4];
                        for (cc, w) in word[..channels].iter_mut().enumerate() {
                            *w = from[cc * taps + t];
                        }
                        let at = ((t * groups + group) * BLOCK_O + o % BLOCK_O) * 4;
                        lines[at..at + 4].copy_from_slice(&word);
                    }
                }
            }
        }
        let per_o = g.channels * taps;
        // |Σ qw| ≤ K · 128 and |zx − 128| ≤ 128: within the bound `is_valid` checked.
        let weight_sums: Vec<i32> = (0..g.out_channels)
            .map(|o| {
                weights[o * per_o..(o + 1) * per_o]
                    .iter()
                    .map(|&w| i32::from(w))
                    .sum()
            })
            .collect();
        let zero_sums: Vec<i32> = weight_sums.iter().map(|s| s * i32::from(in_zero)).collect();
        let signed_zero_sums: Vec<i32> = weight_sums
            .iter()
            .map(|s| s * (i32::from(in_zero) - 128))
            .collect();
        let dot_zero = if Kernel::Dotprod.available() {
            (0..blocks * BLOCK_O)
                .map(|o| signed_zero_sums.get(o).map_or(0, |&z| z.wrapping_neg()))
                .collect()
        } else {
            Vec::new()
        };
        let scales = weight_scales.iter().map(|&s| in_scale * s).collect();
        let packed_mmla = mmla_weights(&geometry, &packed);
        let mmla_zero = match packed_mmla {
            Some(_) => mmla_zero(&zero_sums),
            None => Vec::new(),
        };
        // Only where the NEON kernel can run: elsewhere the pass would only cost load time.
        let neon_safe = Kernel::Neon.available() && neon_safe(&geometry, &packed);
        Ok(QConv {
            neon_safe,
            offsets: geometry.offsets(),
            plan: geometry.store_plan(),
            geometry,
            in_inv_scale: in_scale.recip(),
            in_zero,
            packed_mmla,
            mmla_zero,
            packed: Arc::new(packed),
            zero_sums,
            signed_zero_sums,
            dot_zero,
            scales,
            bias,
            requantize,
            out_shape,
            kernel: Kernel::Portable,
        })
    }

    /// The operator running on `kernel` (the portable one where this CPU cannot run it).
    pub fn with_kernel(self, kernel: Kernel) -> QConv {
        QConv { kernel, ..self }
    }

    /// Runs the convolution on one CHW image with `kernel` (the portable one where this CPU
    /// cannot run it).
    fn convolve(&self, input: &[f32], output: &mut [f32], kernel: Kernel) {
        let g = &self.geometry;
        let kernel = if kernel.available() {
            kernel
        } else {
            Kernel::Portable
        };
        // An even number of planes: `usmmla` reads channel groups in pairs, and the last pair's
        // second plane is multiplied by zero weights when the groups are odd.
        let len = g.groups().next_multiple_of(2) * g.plane();
        with_scratch(&SCRATCH, len, |image| {
            match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Vnni => {
                    // SAFETY: `available()` said the CPU has the kernel's features.
                    unsafe { x86_64::quantize(self, input, image) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`.
                        unsafe { x86_64::convolve_block(self, image, block, out) }
                    });
                }
                #[cfg(target_arch = "aarch64")]
                Kernel::I8mm if self.packed_mmla.is_some() => {
                    // SAFETY: `available()` said the CPU has the kernel's features.
                    unsafe { aarch64::quantize(self, input, image, aarch64::Layout::Pairs) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`, and
                        // the image holds an even number of planes, interleaved in pairs.
                        unsafe { aarch64::convolve_block_mmla(self, image, block, out) }
                    });
                }
                // Every CPU with i8mm has dotprod (ARMv8.4 made it mandatory); checked anyway.
                #[cfg(target_arch = "aarch64")]
                Kernel::Dotprod | Kernel::I8mm if Kernel::Dotprod.available() => {
                    // SAFETY: the guard said the CPU has dotprod.
                    unsafe { aarch64::quantize(self, input, image, aarch64::Layout::Signed) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`.
                        unsafe { aarch64::convolve_block_dotprod(self, image, block, out) }
                    });
                }
                #[cfg(target_arch = "aarch64")]
                Kernel::Neon if self.neon_safe => {
                    // SAFETY: NEON is baseline on aarch64.
                    unsafe { aarch64::quantize(self, input, image, aarch64::Layout::Signed) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`.
                        unsafe { aarch64::convolve_block_neon(self, image, block, out) }
                    });
                }
                _ => {
                    quantize_portable(self, input, image);
                    convolve_portable(self, image, output);
                }
            }
        })
    }

    /// Runs `run(block, channels)` for every block of 8 output channels. Blocks are independent:
    /// with tract's multithreaded executor (`LoadOptions::threads` above 1) they are shared among
    /// its threads.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    fn per_block(&self, output: &mut [f32], run: impl Fn(usize, &mut [f32]) + Sync) {
        let g = &self.geometry;
        let (oh, ow) = g.output();
        in_chunks(
            &mut output[..g.out_channels * oh * ow],
            BLOCK_O * oh * ow,
            run,
        );
    }

    fn epilogue(&self, o: usize, sum: i32) -> f32 {
        finish(
            sum - self.zero_sums[o],
            self.scales[o],
            self.bias[o],
            self.requantize,
        )
    }
}

/// Runs `run(index, chunk)` for every `chunk`-long piece of `output` (the last may be shorter).
/// Pieces are independent: with tract's multithreaded executor (`LoadOptions::threads` above 1)
/// they are shared among its threads.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
fn in_chunks<T: Send>(output: &mut [T], chunk: usize, run: impl Fn(usize, &mut [T]) + Sync) {
    let chunks = output.chunks_mut(chunk.max(1));
    match tract_linalg::multithread::current_tract_executor() {
        tract_linalg::multithread::Executor::MultiThread(pool)
            if pool.current_num_threads() > 1 && chunks.len() > 1 =>
        {
            use rayon::prelude::*;
            let chunks: Vec<(usize, &mut [T])> = chunks.enumerate().collect();
            pool.install(|| {
                chunks
                    .into_par_iter()
                    .for_each(|(index, out)| run(index, out))
            });
        }
        _ => chunks.enumerate().for_each(|(index, out)| run(index, out)),
    }
}

/// The epilogue every kernel applies to an exact sum, less its zero-point term: scale, bias, and
/// the output's quantize/dequantize pair if there is one. The SIMD kernels' epilogues are the same
/// f32 operations in the same order (no fused multiply-add), so their results are this one's.
fn finish(sum: i32, scale: f32, bias: f32, requantize: Option<Requantize>) -> f32 {
    let v = sum as f32 * scale + bias;
    match requantize {
        None => v,
        Some(r) => {
            let z = f32::from(r.zero_point);
            (v * r.inv_scale).max(-z).min(255.0 - z).round_ties_even() * r.scale
        }
    }
}

/// The weights in `usmmla`'s layout when this CPU runs it: `[O/8][tap][pair of channel groups]
/// [pair of output channels][2][8]`, each output channel's 8 bytes being its weights for the pair's
/// 8 input channels (zero beyond the real ones). Built from the `[O/8][tap][C/4][8][4]` layout.
fn mmla_weights(g: &Geometry, packed: &[i8]) -> Option<Arc<Vec<i8>>> {
    if !Kernel::I8mm.available() {
        return None;
    }
    let (taps, groups) = (g.taps(), g.groups());
    let pairs = groups.div_ceil(2);
    let blocks = g.out_channels.div_ceil(BLOCK_O);
    let mut out = vec![0i8; blocks * taps * pairs * BLOCK_O * 8];
    for block in 0..blocks {
        for t in 0..taps {
            for pair in 0..pairs {
                for o in 0..BLOCK_O {
                    for k in 0..8 {
                        let group = 2 * pair + k / 4;
                        if group >= groups {
                            continue;
                        }
                        let from =
                            (((block * taps + t) * groups + group) * BLOCK_O + o) * 4 + k % 4;
                        let to = (((block * taps + t) * pairs + pair) * BLOCK_O + o) * 8 + k;
                        out[to] = packed[from];
                    }
                }
            }
        }
    }
    Some(Arc::new(out))
}

/// Each block of 8 output channels' zero-point terms, negated, as a `usmmla` accumulator holds
/// its channels: 4 vectors of lanes `(2k, 2k + 1, 2k, 2k + 1)`, 0 past the last channel. The
/// kernel starts its sums there instead of subtracting the term from each in its epilogue.
fn mmla_zero(zero_sums: &[i32]) -> Vec<i32> {
    let blocks = zero_sums.len().div_ceil(BLOCK_O);
    (0..blocks * BLOCK_O * 2)
        .map(|i| {
            let (block, lane) = (i / (BLOCK_O * 2), i % (BLOCK_O * 2));
            let channel = block * BLOCK_O + lane / 4 * 2 + lane % 2;
            zero_sums.get(channel).map_or(0, |&z| z.wrapping_neg())
        })
        .collect()
}

/// Whether the NEON kernel may sum two products in 16 bits: it adds, for each output channel,
/// input channel `c` of a pair's first group and `c` of its second (`c` and `c + 4`) at one tap,
/// each `(q − 128) · w` with both factors in −128..=127. One product is at most 128 · 128 = 2¹⁴
/// in magnitude, and two reach 2¹⁵ (past `i16::MAX`) only as (−128)·(−128) twice: so the kernel
/// is exact unless some output channel has the weight −128 at both of a pair's places.
fn neon_safe(g: &Geometry, packed: &[i8]) -> bool {
    // `packed` is `[O/8][tap][C/4][8][4]`: the pair's two groups are 32 bytes apart.
    let groups = g.groups();
    let line = BLOCK_O * 4;
    packed.chunks_exact(groups * line).all(|tap| {
        tap.chunks(2 * line)
            .filter(|pair| pair.len() == 2 * line)
            .all(|pair| {
                let (a, b) = pair.split_at(line);
                a.iter().zip(b).all(|(&x, &y)| x != -128 || y != -128)
            })
    })
}

thread_local! {
    /// The quantized input of the convolution running on this thread (the dense one's whole
    /// image, or one depthwise task's channels), reused between calls.
    static SCRATCH: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the first `len` elements of `key`'s vector, this thread's scratch, grown as needed
/// (holding whatever its last user left). Operators of one inference run one at a time and
/// `Runner` runs one inference at a time on a model's pool, so no call nests in another on one
/// thread: a pool thread waiting in `QConv` (which holds its scratch) only runs that operator's
/// blocks, which do not take one.
pub(super) fn with_scratch<T: Copy + Default, R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    key.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, T::default());
        }
        f(&mut scratch[..len])
    })
}

f32_operator!(QConv, "QConv", kernel);

impl QConv {
    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        let g = &self.geometry;
        format!(
            "{}x{} {}→{} on {}x{}, pad {:?}, input zero point {}, requantized: {}",
            g.kernel[0],
            g.kernel[1],
            g.channels,
            g.out_channels,
            g.height,
            g.width,
            g.pad,
            self.in_zero,
            self.requantize.is_some()
        )
    }
}

/// Checks that `out_shape` holds `channels × oh × ow` values (a constructor's check).
fn check_output_shape(
    out_shape: &[usize],
    channels: usize,
    (oh, ow): (usize, usize),
) -> TractResult<()> {
    ensure!(
        out_shape.iter().product::<usize>() == channels * oh * ow,
        "output shape {out_shape:?} does not hold {channels} × {oh} × {ow}"
    );
    Ok(())
}

/// Checks an integer operator's scales: a finite positive input scale, one finite weight scale
/// per output channel, and a usable requantization.
fn check_quantization(
    in_scale: f32,
    weight_scales: &[f32],
    requantize: Option<Requantize>,
    channels: usize,
) -> TractResult<()> {
    ensure!(weight_scales.len() == channels);
    ensure!(in_scale.is_finite() && in_scale > 0.0);
    ensure!(weight_scales.iter().all(|s| s.is_finite()));
    if let Some(r) = requantize {
        ensure!(r.inv_scale.is_finite() && r.inv_scale > 0.0 && r.scale.is_finite());
    }
    Ok(())
}

/// The bias per output channel: `bias`, which must have `channels` values, or zeros.
fn channel_bias(bias: Option<&[f32]>, channels: usize) -> TractResult<Vec<f32>> {
    match bias {
        Some(b) => {
            ensure!(b.len() == channels);
            Ok(b.to_vec())
        }
        None => Ok(vec![0.0; channels]),
    }
}

/// The `eval` of this module's operators (`f32_operator!`): checks that the input
/// holds `len` values, then runs `convolve` into a new f32 tensor of `out_shape`.
fn eval_into(
    inputs: &TVec<TValue>,
    len: usize,
    out_shape: &[usize],
    convolve: impl FnOnce(&[f32], &mut [f32]),
) -> TractResult<TVec<TValue>> {
    let input = inputs[0].try_as_plain_ram()?;
    let input = input.as_slice::<f32>()?;
    ensure!(
        input.len() == len,
        "convolution input has {} values, expected {len}",
        input.len()
    );
    // SAFETY: f32 has no invalid bit patterns; every operator writes its whole output (in the
    // tests and in debug builds, the output starts as NaN, so a value left unwritten shows).
    let mut output = unsafe { Tensor::uninitialized::<f32>(out_shape)? };
    {
        let mut out = output.try_as_plain_ram_mut()?;
        let out = out.as_slice_mut::<f32>()?;
        if cfg!(any(test, debug_assertions)) {
            out.fill(f32::NAN);
        }
        convolve(input, out);
    }
    Ok(tvec!(output.into_tvalue()))
}

#[cfg(test)]
mod tests;
