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
//! in f32 run on [`FloatDepthwise`] (`float_depthwise.rs`).

use std::cell::RefCell;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// The tract operator traits of one of this module's convolutions: each takes one f32 tensor of
/// `geometry.channels x height x width` values and writes `out_shape` through its inherent
/// `convolve(input, out, self.$kernel)`; `info` is its inherent `describe()`.
macro_rules! f32_convolution_op {
    ($op:ty, $name:literal, $kernel:ident) => {
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
                let g = &self.geometry;
                let len = g.channels * g.height * g.width;
                $crate::inference::qconv::eval_into(&inputs, len, &self.out_shape, |input, out| {
                    self.convolve(input, out, self.$kernel)
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
}

mod depthwise;
mod float_depthwise;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub(crate) use depthwise::{DepthwiseGeometry, QDepthwise};
pub(crate) use float_depthwise::{FloatDepthwise, Simd};

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
}

impl Kernel {
    /// The SIMD kernels, fastest first.
    pub const SIMD: [Kernel; 3] = [Kernel::Vnni, Kernel::I8mm, Kernel::Dotprod];

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
        }
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
    /// The same weights for `usmmla`, where the CPU has it (see `arm::pack_mmla`).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    packed_mmla: Option<Arc<Vec<i8>>>,
    /// `zx · Σ qw[o]`, what the input's zero point adds to each output channel's sum.
    zero_sums: Vec<i32>,
    /// `(zx − 128) · Σ qw[o]`: the same for the `sdot` kernel, whose activations are `q − 128`.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    signed_zero_sums: Vec<i32>,
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
        for o in 0..g.out_channels {
            for c in 0..g.channels {
                for t in 0..taps {
                    let w = weights[(o * g.channels + c) * taps + t];
                    let at = (((o / BLOCK_O * taps + t) * groups + c / 4) * BLOCK_O + o % BLOCK_O)
                        * 4
                        + c % 4;
                    packed[at] = w;
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
        let zero_sums = weight_sums.iter().map(|s| s * i32::from(in_zero)).collect();
        let signed_zero_sums = weight_sums
            .iter()
            .map(|s| s * (i32::from(in_zero) - 128))
            .collect();
        let scales = weight_scales.iter().map(|&s| in_scale * s).collect();
        let packed_mmla = mmla_weights(&geometry, &packed);
        Ok(QConv {
            offsets: geometry.offsets(),
            plan: geometry.store_plan(),
            geometry,
            in_inv_scale: in_scale.recip(),
            in_zero,
            packed_mmla,
            packed: Arc::new(packed),
            zero_sums,
            signed_zero_sums,
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
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            // An even number of planes: `usmmla` reads channel groups in pairs, and the last
            // pair's second plane is multiplied by zero weights when the groups are odd.
            let len = g.groups().next_multiple_of(2) * g.plane();
            if scratch.len() < len {
                scratch.resize(len, 0);
            }
            let image = &mut scratch[..len];
            match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Vnni => {
                    // SAFETY: `available()` said the CPU has the kernel's features.
                    unsafe { x86::quantize(self, input, image) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`.
                        unsafe { x86::convolve_block(self, image, block, out) }
                    });
                }
                #[cfg(target_arch = "aarch64")]
                Kernel::I8mm if self.packed_mmla.is_some() => {
                    // SAFETY: `available()` said the CPU has the kernel's features.
                    unsafe { arm::quantize(self, input, image, false) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`, and
                        // the image has an even number of planes.
                        unsafe { arm::convolve_block_mmla(self, image, block, out) }
                    });
                }
                // Every CPU with i8mm has dotprod (ARMv8.4 made it mandatory); checked anyway.
                #[cfg(target_arch = "aarch64")]
                Kernel::Dotprod | Kernel::I8mm if Kernel::Dotprod.available() => {
                    // SAFETY: the guard said the CPU has dotprod.
                    unsafe { arm::quantize(self, input, image, true) };
                    let image = &*image;
                    self.per_block(output, |block, out| {
                        // SAFETY: as above; `out` is output channels block·8.. of `output`.
                        unsafe { arm::convolve_block_dotprod(self, image, block, out) }
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
fn in_chunks(output: &mut [f32], chunk: usize, run: impl Fn(usize, &mut [f32]) + Sync) {
    let chunks = output.chunks_mut(chunk.max(1));
    match tract_linalg::multithread::current_tract_executor() {
        tract_linalg::multithread::Executor::MultiThread(pool)
            if pool.current_num_threads() > 1 && chunks.len() > 1 =>
        {
            use rayon::prelude::*;
            let chunks: Vec<(usize, &mut [f32])> = chunks.enumerate().collect();
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

thread_local! {
    /// The quantized input of the convolution running on this thread, reused between calls.
    static SCRATCH: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn quantize_one(v: f32, inv: f32, zero: u8) -> u32 {
    let z = f32::from(zero);
    ((v * inv).max(-z).min(255.0 - z).round_ties_even() + z) as u32
}

/// Fills the padded, channel-interleaved quantized image (the zero point outside the input).
fn quantize_portable(op: &QConv, input: &[f32], image: &mut [u32]) {
    let g = &op.geometry;
    let (_, wp) = g.padded();
    let plane = g.plane();
    let hw = g.height * g.width;
    let fill = u32::from(op.in_zero) * 0x0101_0101;
    image.fill(fill);
    for group in 0..g.groups() {
        let dst = &mut image[group * plane..(group + 1) * plane];
        for y in 0..g.height {
            for x in 0..g.width {
                let mut px = 0u32;
                for i in 0..4 {
                    let c = group * 4 + i;
                    let q = if c < g.channels {
                        quantize_one(input[c * hw + y * g.width + x], op.in_inv_scale, op.in_zero)
                    } else {
                        u32::from(op.in_zero)
                    };
                    px |= q << (8 * i);
                }
                dst[(y + g.pad[0]) * wp + x + g.pad[1]] = px;
            }
        }
    }
}

/// The reference kernel: the same sums and epilogue, one output at a time.
fn convolve_portable(op: &QConv, image: &[u32], output: &mut [f32]) {
    let g = &op.geometry;
    let (oh, ow) = g.output();
    let (_, wp) = g.padded();
    let plane = g.plane();
    let offsets = &op.offsets;
    let groups = g.groups();
    for o in 0..g.out_channels {
        for y in 0..oh {
            for x in 0..ow {
                let at = y * wp + x;
                let mut sum = 0i32;
                for (t, off) in offsets.iter().enumerate() {
                    for group in 0..groups {
                        let px = image[group * plane + at + off].to_le_bytes();
                        let w = (((o / BLOCK_O * offsets.len() + t) * groups + group) * BLOCK_O
                            + o % BLOCK_O)
                            * 4;
                        for (i, &x) in px.iter().enumerate() {
                            sum += i32::from(x) * i32::from(op.packed[w + i]);
                        }
                    }
                }
                output[(o * oh + y) * ow + x] = op.epilogue(o, sum);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// Quantizes 16 floats (`mask` of them loaded; the others quantize as 0.0, i.e. to the zero
    /// point) to u8 values in i32 lanes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize16(
        src: *const f32,
        mask: __mmask16,
        inv: __m512,
        lo: __m512,
        hi: __m512,
        z: __m512i,
    ) -> __m512i {
        // SAFETY: the caller guarantees `mask` covers only readable floats.
        let v = unsafe { _mm512_maskz_loadu_ps(mask, src) };
        let v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi);
        // MXCSR's default rounding: nearest, ties to even, as `round_ties_even`.
        _mm512_add_epi32(_mm512_cvtps_epi32(v), z)
    }

    /// The output's quantize/dequantize pair as vectors: `1/scale`, the clamp bounds, `scale`.
    #[derive(Clone, Copy)]
    pub(super) struct Requant(Option<(__m512, __m512, __m512, __m512)>);

    impl Requant {
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub(super) fn new(r: Option<Requantize>) -> Requant {
            Requant(r.map(|r| {
                let z = f32::from(r.zero_point);
                (
                    _mm512_set1_ps(r.inv_scale),
                    _mm512_set1_ps(-z),
                    _mm512_set1_ps(255.0 - z),
                    _mm512_set1_ps(r.scale),
                )
            }))
        }
    }

    /// [`finish`] on 16 sums (their zero-point term already taken off): the same f32
    /// operations in the same order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn finish16(sum: __m512i, scale: f32, bias: f32, requant: Requant) -> __m512 {
        let v = _mm512_add_ps(
            _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(scale)),
            _mm512_set1_ps(bias),
        );
        match requant.0 {
            None => v,
            Some((inv, lo, hi, s)) => {
                let r = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi);
                // MXCSR-independent: nearest, ties to even, as `round_ties_even`.
                let r =
                    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(r);
                _mm512_mul_ps(r, s)
            }
        }
    }

    /// The SIMD twin of [`quantize_portable`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F/BW/VNNI; `input` holds the C×H×W image and `image` is
    /// `groups × plane` pixels.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize(op: &QConv, input: &[f32], image: &mut [u32]) {
        let g = &op.geometry;
        let (_, wp) = g.padded();
        let plane = g.plane();
        let hw = g.height * g.width;
        debug_assert!(input.len() >= g.channels * hw && image.len() >= g.groups() * plane);
        let fill = u32::from(op.in_zero) * 0x0101_0101;
        let z = f32::from(op.in_zero);
        let inv = _mm512_set1_ps(op.in_inv_scale);
        let lo = _mm512_set1_ps(-z);
        let hi = _mm512_set1_ps(255.0 - z);
        let zi = _mm512_set1_epi32(i32::from(op.in_zero));
        for group in 0..g.groups() {
            let dst = &mut image[group * plane..(group + 1) * plane];
            // The padding and the slack: the zero point.
            let top = g.pad[0] * wp;
            dst[..top + g.pad[1]].fill(fill);
            for y in 0..g.height {
                let row = (y + g.pad[0]) * wp + g.pad[1];
                let next = if y + 1 < g.height { row + wp } else { plane };
                dst[row + g.width..next].fill(fill);
            }
            let channels: [Option<usize>; 4] =
                std::array::from_fn(|i| Some(group * 4 + i).filter(|&c| c < g.channels));
            for y in 0..g.height {
                let row = (y + g.pad[0]) * wp + g.pad[1];
                let mut x = 0;
                while x < g.width {
                    let n = (g.width - x).min(LANES);
                    let mask: __mmask16 = if n == LANES { 0xFFFF } else { (1 << n) - 1 };
                    let mut px = _mm512_setzero_si512();
                    for (i, c) in channels.iter().enumerate() {
                        let q = match c {
                            // SAFETY: row y, columns x..x+n of channel c are inside `input`.
                            Some(c) => unsafe {
                                quantize16(
                                    input.as_ptr().add(c * hw + y * g.width + x),
                                    mask,
                                    inv,
                                    lo,
                                    hi,
                                    zi,
                                )
                            },
                            None => zi,
                        };
                        px = _mm512_or_si512(
                            px,
                            _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * i as i32)),
                        );
                    }
                    // SAFETY: pixels row+x..row+x+n are inside this group's plane.
                    unsafe {
                        _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(row + x).cast(), mask, px)
                    };
                    x += n;
                }
            }
        }
    }

    /// The SIMD twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`,
    /// written to `out` (those channels of the output).
    ///
    /// # Safety
    /// As [`quantize`]; `image` was filled by it.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn convolve_block(op: &QConv, image: &[u32], block: usize, out: &mut [f32]) {
        let g = &op.geometry;
        let (offsets, plan) = (&op.offsets[..], &op.plan[..]);
        let vectors = g.vectors();
        let chunk = offsets.len() * g.groups() * BLOCK_O * 4;
        let weights = &op.packed[block * chunk..(block + 1) * chunk];
        let mut v = 0;
        while v < vectors {
            let n = (vectors - v).min(BLOCK_P);
            // SAFETY: vectors v..v+n and their furthest taps lie inside each plane
            // (`Geometry::plane`), the weights chunk is whole, and the plan only stores the
            // outputs' valid lanes, for the channels `out` holds.
            unsafe {
                match n {
                    3 => tile::<3>(op, image, weights, offsets, block, v, plan, out),
                    2 => tile::<2>(op, image, weights, offsets, block, v, plan, out),
                    _ => tile::<1>(op, image, weights, offsets, block, v, plan, out),
                }
            }
            v += n;
        }
    }

    /// One register block: `P` vectors of 16 pixels × 8 output channels, summed over every tap
    /// and channel group, then scaled, biased, requantized and stored.
    // Indexing the accumulators by (pixel vector, channel) reads as the block it is.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile<const P: usize>(
        op: &QConv,
        image: &[u32],
        weights: &[i8],
        offsets: &[usize],
        block: usize,
        first: usize,
        plan: &[(u16, usize)],
        output: &mut [f32],
    ) {
        let g = &op.geometry;
        let plane = g.plane();
        let groups = g.groups();
        let mut acc = [[_mm512_setzero_si512(); BLOCK_O]; P];
        let mut w = weights.as_ptr();
        let base = image.as_ptr();
        for &off in offsets {
            for group in 0..groups {
                // SAFETY (whole loop): see `convolve`. The pointer is formed for each group
                // rather than advanced past the last one: `add` must stay inside the image even
                // when the result is never read.
                let src = unsafe { base.add(first * LANES + off + group * plane) };
                let mut xs = [_mm512_setzero_si512(); P];
                for (p, x) in xs.iter_mut().enumerate() {
                    *x = unsafe { _mm512_loadu_si512(src.add(p * LANES).cast()) };
                }
                for o in 0..BLOCK_O {
                    let wb =
                        _mm512_set1_epi32(unsafe { w.add(4 * o).cast::<i32>().read_unaligned() });
                    for p in 0..P {
                        acc[p][o] = _mm512_dpbusd_epi32(acc[p][o], xs[p], wb);
                    }
                }
                // At most one past the block's weights after the last group, which `add` allows.
                unsafe {
                    w = w.add(4 * BLOCK_O);
                }
            }
        }
        let (oh, ow) = g.output();
        let per_channel = oh * ow;
        let requant = Requant::new(op.requantize);
        for o in 0..BLOCK_O {
            let oc = block * BLOCK_O + o;
            if oc >= g.out_channels {
                break;
            }
            let zero = _mm512_set1_epi32(op.zero_sums[oc]);
            for p in 0..P {
                let sum = _mm512_sub_epi32(acc[p][o], zero);
                let v = finish16(sum, op.scales[oc], op.bias[oc], requant);
                let (mask, at) = plan[first + p];
                debug_assert!((o + 1) * per_channel <= output.len());
                // SAFETY: `at` + the valid lane count stays inside channel o of the block.
                unsafe {
                    let dst = output.as_mut_ptr().add(o * per_channel + at);
                    if mask == 0xFFFF {
                        _mm512_storeu_ps(dst, v);
                    } else {
                        let packed = _mm512_maskz_compress_ps(mask, v);
                        let n = mask.count_ones();
                        _mm512_mask_storeu_ps(dst, ((1u32 << n) - 1) as __mmask16, packed);
                    }
                }
            }
        }
    }
}

/// The aarch64 kernels. `sdot` and friends are still unstable as intrinsics in Rust, so the dot
/// products are single `asm!` instructions inside functions compiled for the extension; the
/// rest is NEON intrinsics (baseline on aarch64).
#[cfg(target_arch = "aarch64")]
mod arm {
    use super::*;
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// Pixels per NEON vector of the quantized image (one pixel's 4 channels per 32-bit lane).
    const QUAD: usize = 4;
    /// Quads per register block: 3 quads × 8 output channels = 24 accumulators, plus 3 vectors
    /// of pixels and 2 of weights: 29 of the 32 vector registers.
    const BLOCK_Q: usize = 3;

    /// Quantizes 4 floats to u8 values in i32 lanes: the same f32 operations as
    /// [`quantize_one`]. `fmaxnm`/`fminnm` return the number when the other operand is NaN, as
    /// `f32::max`/`min` do; `fcvtns` rounds to nearest, ties to even, as `round_ties_even`.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn quantize4(
        v: float32x4_t,
        inv: float32x4_t,
        lo: float32x4_t,
        hi: float32x4_t,
        z: int32x4_t,
    ) -> uint32x4_t {
        let v = vminnmq_f32(vmaxnmq_f32(vmulq_f32(v, inv), lo), hi);
        vreinterpretq_u32_s32(vaddq_s32(vcvtnq_s32_f32(v), z))
    }

    /// The NEON twin of [`quantize_portable`]. With `offset`, every byte is stored as `q − 128`
    /// (`q ^ 0x80`): the signed operand `sdot` multiplies.
    ///
    /// # Safety
    /// `input` holds the C×H×W image and `image` is `groups × plane` pixels.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn quantize(op: &QConv, input: &[f32], image: &mut [u32], offset: bool) {
        let g = &op.geometry;
        let (_, wp) = g.padded();
        let plane = g.plane();
        let hw = g.height * g.width;
        assert!(input.len() >= g.channels * hw && image.len() >= g.groups() * plane);
        let flip = if offset { 0x8080_8080u32 } else { 0 };
        image.fill((u32::from(op.in_zero) * 0x0101_0101) ^ flip);
        let zero = f32::from(op.in_zero);
        let (inv, lo, hi) = (
            vdupq_n_f32(op.in_inv_scale),
            vdupq_n_f32(-zero),
            vdupq_n_f32(255.0 - zero),
        );
        let z = vdupq_n_s32(i32::from(op.in_zero));
        let flip_v = vdupq_n_u32(flip);
        for group in 0..g.groups() {
            let dst = &mut image[group * plane..(group + 1) * plane];
            let channels: [Option<usize>; 4] =
                std::array::from_fn(|i| Some(group * 4 + i).filter(|&c| c < g.channels));
            for y in 0..g.height {
                let row = (y + g.pad[0]) * wp + g.pad[1];
                let mut x = 0;
                while x + QUAD <= g.width {
                    let mut px = flip_v;
                    for (i, c) in channels.iter().enumerate() {
                        let q = match c {
                            Some(c) => {
                                let at = c * hw + y * g.width + x;
                                // SAFETY: row y, columns x..x+4 of channel c are inside `input`.
                                let v = unsafe { vld1q_f32(input.as_ptr().add(at)) };
                                unsafe { quantize4(v, inv, lo, hi, z) }
                            }
                            None => vreinterpretq_u32_s32(z),
                        };
                        px = veorq_u32(px, vshlq_u32(q, vdupq_n_s32(8 * i as i32)));
                    }
                    // SAFETY: pixels row+x..row+x+4 are inside this group's plane.
                    unsafe { vst1q_u32(dst.as_mut_ptr().add(row + x), px) };
                    x += QUAD;
                }
                for x in x..g.width {
                    let mut px = 0u32;
                    for (i, c) in channels.iter().enumerate() {
                        let q = match c {
                            Some(c) => quantize_one(
                                input[c * hw + y * g.width + x],
                                op.in_inv_scale,
                                op.in_zero,
                            ),
                            None => u32::from(op.in_zero),
                        };
                        px |= q << (8 * i);
                    }
                    dst[row + x] = px ^ flip;
                }
            }
        }
    }

    /// One indexed dot product: `acc.4s += x.16b · w.4b[lane]`.
    macro_rules! dot {
        ($ins:literal, $acc:expr, $x:expr, $w:expr, $lane:literal) => {
            // SAFETY: register-only arithmetic; the caller's target features include the
            // instruction's extension.
            unsafe {
                asm!(
                    concat!($ins, " {a:v}.4s, {x:v}.16b, {w:v}.4b[", $lane, "]"),
                    a = inout(vreg) $acc,
                    x = in(vreg) $x,
                    w = in(vreg) $w,
                    options(pure, nomem, nostack, preserves_flags)
                )
            }
        };
    }

    /// The `sdot` twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`,
    /// written to `out` (those channels of the output).
    ///
    /// # Safety
    /// The CPU must have dotprod; `image` was filled by [`quantize`] with `offset`.
    #[target_feature(enable = "neon,dotprod")]
    pub(super) unsafe fn convolve_block_dotprod(
        op: &QConv,
        image: &[u32],
        block: usize,
        out: &mut [f32],
    ) {
        let g = &op.geometry;
        let quads = g.vectors() * (LANES / QUAD);
        let chunk = op.offsets.len() * g.groups() * BLOCK_O * 4;
        let weights = &op.packed[block * chunk..(block + 1) * chunk];
        let mut q = 0;
        while q < quads {
            let n = (quads - q).min(BLOCK_Q);
            // SAFETY: quads q..q+n and their furthest taps lie inside each plane
            // (`Geometry::plane` covers every vector's reach), the weights chunk is whole, and
            // `store` writes only the valid lanes of the channels `out` holds.
            unsafe {
                match n {
                    3 => tile_dotprod::<3>(op, image, weights, block, q, out),
                    2 => tile_dotprod::<2>(op, image, weights, block, q, out),
                    _ => tile_dotprod::<1>(op, image, weights, block, q, out),
                }
            }
            q += n;
        }
    }

    /// One register block: `P` quads of 4 pixels × 8 output channels, summed over every tap and
    /// channel group, then finished and stored.
    // Indexing the accumulators by (quad, channel) reads as the block it is.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn tile_dotprod<const P: usize>(
        op: &QConv,
        image: &[u32],
        weights: &[i8],
        block: usize,
        first: usize,
        out: &mut [f32],
    ) {
        let g = &op.geometry;
        let plane = g.plane();
        let groups = g.groups();
        // Accumulators for up to BLOCK_Q quads, the unused ones never touched. They are indexed
        // with constants only (the `quad!` copies below), so they stay in registers; the
        // epilogue reads a copy.
        let mut acc = [[vdupq_n_s32(0); BLOCK_O]; BLOCK_Q];
        let base = image.as_ptr();
        let mut w = weights.as_ptr();
        for &off in &op.offsets {
            for group in 0..groups {
                // SAFETY (whole loop): see `convolve_block_dotprod`; the pointer is formed for
                // each group, so it never leaves the image.
                let src = unsafe { base.add(first * QUAD + off + group * plane) };
                let (w0, w1) = unsafe { (vld1q_s8(w), vld1q_s8(w.add(16))) };
                // Written out per quad: a loop around `asm!` is not unrolled, and its
                // accumulators would go through the stack.
                macro_rules! quad {
                    ($p:literal) => {
                        if P > $p {
                            let x = unsafe { vld1q_s8(src.add($p * QUAD).cast()) };
                            dot!("sdot", acc[$p][0], x, w0, 0);
                            dot!("sdot", acc[$p][1], x, w0, 1);
                            dot!("sdot", acc[$p][2], x, w0, 2);
                            dot!("sdot", acc[$p][3], x, w0, 3);
                            dot!("sdot", acc[$p][4], x, w1, 0);
                            dot!("sdot", acc[$p][5], x, w1, 1);
                            dot!("sdot", acc[$p][6], x, w1, 2);
                            dot!("sdot", acc[$p][7], x, w1, 3);
                        }
                    };
                }
                quad!(0);
                quad!(1);
                quad!(2);
                // At most one past the block's weights after the last group, which `add` allows.
                w = unsafe { w.add(4 * BLOCK_O) };
            }
        }
        let sums = acc;
        // SAFETY: as the caller's.
        unsafe {
            finish_block::<P>(op, &op.signed_zero_sums, block, first, out, |p, o| {
                sums[p][o]
            })
        };
    }

    /// One `usmmla`: `acc.4s += [x row 0, x row 1] · [w row 0, w row 1]ᵀ` (u8 × s8, 2×8 by 8×2).
    macro_rules! mmla {
        ($acc:expr, $x:expr, $w:expr) => {
            // SAFETY: register-only arithmetic; the caller's target features include i8mm.
            unsafe {
                asm!(
                    "usmmla {a:v}.4s, {x:v}.16b, {w:v}.16b",
                    a = inout(vreg) $acc,
                    x = in(vreg) $x,
                    w = in(vreg) $w,
                    options(pure, nomem, nostack, preserves_flags)
                )
            }
        };
    }

    /// Quads per `usmmla` register block: 2 quads × 2 pixel pairs × 4 channel pairs = 16
    /// accumulators, 4 pixel vectors and 4 weight vectors.
    const BLOCK_Q_MMLA: usize = 2;

    /// The `usmmla` twin of [`convolve_portable`] for output channels `block·8 .. block·8 + 8`.
    ///
    /// # Safety
    /// The CPU must have i8mm; `image` was filled by [`quantize`] without the offset and has an
    /// even number of planes; `op.packed_mmla` is set.
    #[target_feature(enable = "neon,i8mm")]
    pub(super) unsafe fn convolve_block_mmla(
        op: &QConv,
        image: &[u32],
        block: usize,
        out: &mut [f32],
    ) {
        let g = &op.geometry;
        let quads = g.vectors() * (LANES / QUAD);
        let packed = op.packed_mmla.as_deref().expect("usmmla weights");
        let chunk = op.offsets.len() * g.groups().div_ceil(2) * BLOCK_O * 8;
        let weights = &packed[block * chunk..(block + 1) * chunk];
        assert!(image.len() >= g.groups().next_multiple_of(2) * g.plane());
        let mut q = 0;
        while q < quads {
            let n = (quads - q).min(BLOCK_Q_MMLA);
            // SAFETY: as in `convolve_block_dotprod`, over the even number of planes.
            unsafe {
                match n {
                    2 => tile_mmla::<2>(op, image, weights, block, q, out),
                    _ => tile_mmla::<1>(op, image, weights, block, q, out),
                }
            }
            q += n;
        }
    }

    /// One register block: `P` quads × 8 output channels. Each `usmmla` multiplies two pixels'
    /// 8 channels (a pair of channel groups, zipped from their two planes) by two output
    /// channels' weights: its 4 lanes are (pixel 0, channel 0), (0, 1), (1, 0), (1, 1).
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "neon,i8mm")]
    unsafe fn tile_mmla<const P: usize>(
        op: &QConv,
        image: &[u32],
        weights: &[i8],
        block: usize,
        first: usize,
        out: &mut [f32],
    ) {
        let g = &op.geometry;
        let plane = g.plane();
        let pairs = g.groups().div_ceil(2);
        // [quad][pixel pair][output channel pair], indexed with constants only (see
        // `tile_dotprod`).
        let mut acc = [[[vdupq_n_s32(0); BLOCK_O / 2]; 2]; BLOCK_Q_MMLA];
        let base = image.as_ptr();
        let mut w = weights.as_ptr();
        for &off in &op.offsets {
            for pair in 0..pairs {
                // SAFETY (whole loop): both planes of the pair lie inside the image (an even
                // number of planes), each quad's reach inside its plane.
                let a = unsafe { base.add(first * QUAD + off + 2 * pair * plane) };
                let b = unsafe { a.add(plane) };
                let (w0, w1, w2, w3) = unsafe {
                    (
                        vld1q_s8(w),
                        vld1q_s8(w.add(16)),
                        vld1q_s8(w.add(32)),
                        vld1q_s8(w.add(48)),
                    )
                };
                macro_rules! quad {
                    ($p:literal) => {
                        if P > $p {
                            let (xa, xb) = unsafe {
                                (vld1q_u32(a.add($p * QUAD)), vld1q_u32(b.add($p * QUAD)))
                            };
                            let low = vreinterpretq_u8_u32(vzip1q_u32(xa, xb));
                            let high = vreinterpretq_u8_u32(vzip2q_u32(xa, xb));
                            mmla!(acc[$p][0][0], low, w0);
                            mmla!(acc[$p][0][1], low, w1);
                            mmla!(acc[$p][0][2], low, w2);
                            mmla!(acc[$p][0][3], low, w3);
                            mmla!(acc[$p][1][0], high, w0);
                            mmla!(acc[$p][1][1], high, w1);
                            mmla!(acc[$p][1][2], high, w2);
                            mmla!(acc[$p][1][3], high, w3);
                        }
                    };
                }
                quad!(0);
                quad!(1);
                // At most one past the block's weights after the last pair, which `add` allows.
                w = unsafe { w.add(8 * BLOCK_O) };
            }
        }
        let sums = acc;
        // Lanes (pixel 0, channel 0), (0, 1), (1, 0), (1, 1): the even lanes of two pixel pairs
        // are an even channel's 4 pixels, the odd lanes the odd channel's.
        // SAFETY: as the caller's.
        unsafe {
            finish_block::<P>(op, &op.zero_sums, block, first, out, |p, o| {
                let (pixels01, pixels23) = (sums[p][0][o / 2], sums[p][1][o / 2]);
                if o % 2 == 0 {
                    vuzp1q_s32(pixels01, pixels23)
                } else {
                    vuzp2q_s32(pixels01, pixels23)
                }
            })
        };
    }

    /// The shared epilogue of a register block: for each output channel `o` of the block and
    /// quad `p`, the sums `sum_of(p, o)` less the channel's zero-point term, finished and stored.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn finish_block<const P: usize>(
        op: &QConv,
        zero_sums: &[i32],
        block: usize,
        first: usize,
        out: &mut [f32],
        sum_of: impl Fn(usize, usize) -> int32x4_t,
    ) {
        let g = &op.geometry;
        for o in 0..BLOCK_O {
            let oc = block * BLOCK_O + o;
            if oc >= g.out_channels {
                break;
            }
            let zero = vdupq_n_s32(zero_sums[oc]);
            for p in 0..P {
                let sum = vsubq_s32(sum_of(p, o), zero);
                // SAFETY: as the caller's.
                unsafe { finish_and_store(op, oc, sum, first + p, &mut out[o * g.output_len()..]) };
            }
        }
    }

    /// [`finish`] on 4 sums (their zero-point term already taken off): the same f32 operations
    /// in the same order. `fmaxnm`/`fminnm` treat NaN as `f32::max`/`min` do; `frintn` rounds
    /// to nearest, ties to even.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) fn finish4(
        sum: int32x4_t,
        scale: f32,
        bias: f32,
        requantize: Option<Requantize>,
    ) -> float32x4_t {
        let v = vaddq_f32(
            vmulq_f32(vcvtq_f32_s32(sum), vdupq_n_f32(scale)),
            vdupq_n_f32(bias),
        );
        match requantize {
            None => v,
            Some(r) => {
                let z = f32::from(r.zero_point);
                let clamped = vminnmq_f32(
                    vmaxnmq_f32(vmulq_f32(v, vdupq_n_f32(r.inv_scale)), vdupq_n_f32(-z)),
                    vdupq_n_f32(255.0 - z),
                );
                vmulq_f32(vrndnq_f32(clamped), vdupq_n_f32(r.scale))
            }
        }
    }

    /// The epilogue of [`QConv::epilogue`] on 4 sums (the same f32 operations in the same order:
    /// no fused multiply-add), stored at quad `quad`'s valid lanes in one output channel.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn finish_and_store(
        op: &QConv,
        oc: usize,
        sum: int32x4_t,
        quad: usize,
        out: &mut [f32],
    ) {
        let v = finish4(sum, op.scales[oc], op.bias[oc], op.requantize);
        let (mask, at) = op.plan[quad / (LANES / QUAD)];
        let shift = QUAD * (quad % (LANES / QUAD));
        let lanes = (mask >> shift) & 0xF;
        if lanes == 0 {
            return;
        }
        let at = at + (mask & ((1u16 << shift) - 1)).count_ones() as usize;
        if lanes == 0xF {
            assert!(at + QUAD <= out.len());
            // SAFETY: checked just above.
            unsafe { vst1q_f32(out.as_mut_ptr().add(at), v) };
        } else {
            let mut values = [0f32; QUAD];
            // SAFETY: 4 floats into a 4-float array.
            unsafe { vst1q_f32(values.as_mut_ptr(), v) };
            let mut k = at;
            for (l, value) in values.iter().enumerate() {
                if lanes & (1 << l) != 0 {
                    out[k] = *value;
                    k += 1;
                }
            }
        }
    }
}

f32_convolution_op!(QConv, "QConv", kernel);

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

/// The `eval` of the three convolution operators (`f32_convolution_op!`): checks that the input
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
    let mut output = Tensor::zero::<f32>(out_shape)?;
    {
        let mut out = output.try_as_plain_ram_mut()?;
        convolve(input, out.as_slice_mut::<f32>()?);
    }
    Ok(tvec!(output.into_tvalue()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values (xorshift), no dependency.
    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(super) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn case(g: Geometry, in_zero: u8, requant: bool, seed: u64) -> (QConv, Vec<f32>, Vec<i8>) {
        let mut rng = Rng(seed);
        let sx = 0.02f32;
        // Inputs on the quantization grid, as a dequantized tensor is, plus a few off it.
        let input: Vec<f32> = (0..g.channels * g.height * g.width)
            .map(|i| {
                let q = rng.below(256) as f32;
                let off = if i % 7 == 0 { 0.004 } else { 0.0 };
                (q - f32::from(in_zero)) * sx + off
            })
            .collect();
        let weights: Vec<i8> = (0..g.out_channels * g.channels * g.taps())
            .map(|_| (rng.below(256) as i32 - 128) as i8)
            .collect();
        let scales: Vec<f32> = (0..g.out_channels)
            .map(|o| 0.001 + o as f32 * 1e-4)
            .collect();
        let bias: Vec<f32> = (0..g.out_channels).map(|o| o as f32 * 0.25 - 1.0).collect();
        let requantize = requant.then_some(Requantize {
            inv_scale: 1.0 / 0.05,
            zero_point: 100,
            scale: 0.05,
        });
        let (oh, ow) = g.output();
        let shape = tvec![1, g.out_channels, oh, ow];
        let op = QConv::new(
            g,
            sx,
            in_zero,
            &weights,
            &scales,
            Some(&bias),
            requantize,
            shape,
        )
        .unwrap();
        (op, input, weights)
    }

    /// The convolution in f64 straight from the definition, on the quantized input.
    fn direct(
        op: &QConv,
        weights_of: impl Fn(usize, usize, usize) -> i8,
        input: &[f32],
    ) -> Vec<f64> {
        let g = &op.geometry;
        let (oh, ow) = g.output();
        let mut out = vec![0.0; g.out_channels * oh * ow];
        for o in 0..g.out_channels {
            for y in 0..oh {
                for x in 0..ow {
                    let mut sum = 0i64;
                    for c in 0..g.channels {
                        for dy in 0..g.kernel[0] {
                            for dx in 0..g.kernel[1] {
                                let (iy, ix) = (y + dy, x + dx);
                                if iy < g.pad[0] || ix < g.pad[1] {
                                    continue;
                                }
                                let (iy, ix) = (iy - g.pad[0], ix - g.pad[1]);
                                if iy >= g.height || ix >= g.width {
                                    continue;
                                }
                                let v = input[(c * g.height + iy) * g.width + ix];
                                let q =
                                    i64::from(quantize_one(v, op.in_inv_scale, op.in_zero) as u8)
                                        - i64::from(op.in_zero);
                                let w = i64::from(weights_of(o, c, dy * g.kernel[1] + dx));
                                sum += q * w;
                            }
                        }
                    }
                    out[(o * oh + y) * ow + x] =
                        sum as f64 * f64::from(op.scales[o]) + f64::from(op.bias[o]);
                }
            }
        }
        out
    }

    fn geometries() -> Vec<Geometry> {
        let g = |channels, height, width, kernel: [usize; 2], pad, out_channels| Geometry {
            channels,
            height,
            width,
            kernel,
            pad,
            out_channels,
        };
        vec![
            g(64, 7, 7, [1, 1], [0; 4], 24), // 1x1, channels a multiple of 4 and 8
            g(13, 9, 21, [1, 1], [0; 4], 11), // ragged channels, width over one vector
            g(32, 14, 14, [3, 3], [1; 4], 16), // 3x3 "same"
            g(5, 6, 17, [3, 3], [1, 1, 1, 1], 9), // ragged everything
            g(8, 5, 5, [3, 2], [2, 1, 0, 1], 3), // uneven kernel and padding
            g(3, 4, 4, [3, 3], [0; 4], 2),   // no padding, 2x2 output
        ]
    }

    #[test]
    fn the_portable_kernel_computes_the_exact_integer_convolution() {
        for (i, g) in geometries().into_iter().enumerate() {
            for zero in [0u8, 3, 128] {
                let (op, input, weights) = case(g.clone(), zero, false, 7 + i as u64);
                let taps = g.taps();
                let expected = direct(
                    &op,
                    |o, c, t| weights[(o * g.channels + c) * taps + t],
                    &input,
                );
                let mut out = vec![f32::NAN; expected.len()];
                op.convolve(&input, &mut out, Kernel::Portable);
                for (k, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                    assert!(
                        (f64::from(got) - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "{g:?} zero point {zero}: output {k} is {got}, expected {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn requantized_outputs_lie_on_the_output_grid() {
        let (op, input, _) = case(geometries()[3].clone(), 3, true, 99);
        let (plain, _, _) = case(geometries()[3].clone(), 3, false, 99);
        let mut out = vec![0.0; op.out_shape.iter().product()];
        let mut raw = out.clone();
        op.convolve(&input, &mut out, Kernel::Portable);
        plain.convolve(&input, &mut raw, Kernel::Portable);
        for (&q, &v) in out.iter().zip(&raw) {
            let step = (q / 0.05).round();
            assert!(
                (q - step * 0.05).abs() < 1e-6,
                "{q} is not a multiple of the scale"
            );
            assert!(
                (-100.0..=155.0).contains(&step),
                "{q} is outside the u8 range"
            );
            let expected = (v * (1.0 / 0.05)).clamp(-100.0, 155.0).round_ties_even() * 0.05;
            assert_eq!(q.to_bits(), expected.to_bits());
        }
    }

    /// Kernels this test must find on this machine, named in `PRESCREEN_REQUIRE_KERNELS`
    /// (comma-separated [`Kernel::name`]s): `make test-arm` sets it for the emulated CPUs that
    /// have them, so a detection bug cannot turn the bit-exactness test into a skip.
    pub(super) fn required_kernels() -> Vec<String> {
        std::env::var("PRESCREEN_REQUIRE_KERNELS")
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A kernel of this architecture that this CPU does not run, so a test cannot try it: a
    /// printed skip, which fails under `CI` unless `PRESCREEN_WAIVE_KERNELS` (comma-separated
    /// names) waives it. A CI machine that loses a kernel must say so; `make test-arm` waives what
    /// each emulated CPU lacks. Kernels of the other architecture are not this machine's concern.
    pub(super) fn missing(kernel: Kernel) {
        let native = match kernel {
            Kernel::Portable => true,
            Kernel::Vnni => cfg!(target_arch = "x86_64"),
            Kernel::Dotprod | Kernel::I8mm => cfg!(target_arch = "aarch64"),
        };
        if native {
            missing_named(kernel.name());
        }
    }

    /// [`missing`] for a kernel of this architecture known by its name.
    pub(crate) fn missing_named(name: &str) {
        let waived = std::env::var("PRESCREEN_WAIVE_KERNELS").unwrap_or_default();
        let waived = waived.split(',').any(|k| k == name);
        assert!(
            std::env::var_os("CI").is_none() || waived,
            "this CPU has no {name} kernel; under CI that fails unless PRESCREEN_WAIVE_KERNELS names it"
        );
        let note = if waived { " (waived)" } else { "" };
        eprintln!("SKIPPED {name}: not on this CPU{note}");
    }

    /// Asserts that a SIMD kernel's outputs are the portable kernel's, bit for bit.
    pub(super) fn assert_same_bits(
        kernel: Kernel,
        what: &dyn std::fmt::Debug,
        simd: &[f32],
        portable: &[f32],
    ) {
        assert_eq!(simd.len(), portable.len());
        for (k, (a, b)) in simd.iter().zip(portable).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{} {what:?}: output {k}: {a} vs {b}",
                kernel.name()
            );
        }
    }

    #[test]
    fn every_simd_kernel_matches_the_portable_one_bit_for_bit() {
        let required = required_kernels();
        for name in &required {
            assert!(
                Kernel::SIMD
                    .iter()
                    .any(|k| k.name() == name && k.available()),
                "PRESCREEN_REQUIRE_KERNELS names {name}, which this CPU does not run"
            );
        }
        for kernel in Kernel::SIMD {
            if !kernel.available() {
                // The loader never selects a kernel the CPU lacks (`Kernel::detect`).
                missing(kernel);
                continue;
            }
            for (i, g) in geometries().into_iter().enumerate() {
                for (zero, requant) in [
                    (0u8, false),
                    (3, true),
                    (200, false),
                    (128, true),
                    (255, true),
                ] {
                    let (op, input, _) = case(g.clone(), zero, requant, 1000 + i as u64);
                    let n = op.out_shape.iter().product();
                    let (mut simd, mut portable) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                    op.convolve(&input, &mut simd, kernel);
                    op.convolve(&input, &mut portable, Kernel::Portable);
                    assert_same_bits(kernel, &(&g, zero), &simd, &portable);
                }
            }
        }
    }

    #[test]
    fn extreme_inputs_quantize_alike_in_every_kernel() {
        // NaN, infinities, values far outside the grid and exact ties: the SIMD quantizers must
        // clamp and round them as `quantize_one` does.
        let g = Geometry {
            channels: 6,
            height: 3,
            width: 11,
            kernel: [1, 1],
            pad: [0; 4],
            out_channels: 9,
        };
        let (op, mut input, _) = case(g, 7, true, 5);
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e30,
            -1e30,
            0.01,
            0.03,
            -0.01,
            f32::MIN_POSITIVE,
        ];
        for (i, v) in input.iter_mut().enumerate().step_by(3) {
            *v = specials[i / 3 % specials.len()];
        }
        for kernel in Kernel::SIMD {
            if !kernel.available() {
                missing(kernel);
                continue;
            }
            let n = op.out_shape.iter().product();
            let (mut simd, mut portable) = (vec![0f32; n], vec![1f32; n]);
            op.convolve(&input, &mut simd, kernel);
            op.convolve(&input, &mut portable, Kernel::Portable);
            assert_same_bits(kernel, &"extreme inputs", &simd, &portable);
        }
    }

    #[test]
    fn absurd_geometries_are_refused() {
        let g = Geometry {
            channels: 1 << 20,
            height: 2,
            width: 2,
            kernel: [1, 1],
            pad: [0; 4],
            out_channels: 1,
        };
        assert!(!g.is_valid());
        let g = Geometry {
            kernel: [3, 3],
            pad: [3, 0, 0, 0],
            channels: 4,
            height: 4,
            width: 4,
            out_channels: 1,
        };
        assert!(!g.is_valid());
    }
}
