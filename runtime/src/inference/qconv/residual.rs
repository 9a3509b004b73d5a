//! The residual add of a QDQ graph: two f32 activations added, and the sum's
//! `QuantizeLinear → DequantizeLinear` pair, as one operator whose passes are shared over the
//! model's pool. tract ran it as one single-threaded chain of element-wise steps (nsfwjs int8's
//! 10 residual adds: 0.22 ms at one thread and at two), and the pool's other thread fell asleep
//! meanwhile, so the convolution after each paid for waking it (on this project's 2-vCPU VM, the
//! quantizer of the 1x1 convolution after a residual add took 5.5 us at one thread and 20 us at
//! two).
//!
//! The values are those of the fused pair (`rewrite::fuse`): `(clamp((a + b) · (1/s), −z, 255 − z)
//! + R − R) · s`, the same f32 operations in the same order, so the same bits.

use super::*;
use crate::inference::rewrite::ROUNDING_BIAS;

/// Values per task when the add is shared among threads (64 KiB of each input and the output).
const CHUNK: usize = 16 * 1024;

/// `a + b` quantized and dequantized (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResidualAdd {
    /// The multiplier that quantizes the sum (`1/s`, as tract stores it), the zero point, and the
    /// scale that dequantizes it.
    inv_scale: f32,
    zero_point: u8,
    scale: f32,
    shape: TVec<usize>,
}

impl Eq for ResidualAdd {}

impl ResidualAdd {
    /// The operator for two inputs of `shape`, their sum quantized with `inv_scale` and
    /// `zero_point` and dequantized with `scale` (finite, positive).
    pub fn new(
        inv_scale: f32,
        zero_point: u8,
        scale: f32,
        shape: TVec<usize>,
    ) -> TractResult<ResidualAdd> {
        ensure!(
            inv_scale.is_finite() && inv_scale > 0.0 && scale.is_finite() && scale > 0.0,
            "quantization scales out of range: 1/s = {inv_scale}, s = {scale}"
        );
        Ok(ResidualAdd {
            inv_scale,
            zero_point,
            scale,
            shape,
        })
    }

    /// `out = dq(q(a + b))`, in chunks shared over the pool when there is one.
    fn add(&self, a: &[f32], b: &[f32], out: &mut [f32]) {
        assert!(a.len() == out.len() && b.len() == out.len());
        let z = f32::from(self.zero_point);
        let (inv, scale, low, high) = (self.inv_scale, self.scale, -z, 255.0 - z);
        in_chunks(out, CHUNK, |task, out| {
            let at = task * CHUNK;
            for ((o, &a), &b) in out.iter_mut().zip(&a[at..]).zip(&b[at..]) {
                let v = ((a + b) * inv).max(low).min(high);
                *o = (v + ROUNDING_BIAS - ROUNDING_BIAS) * scale;
            }
        });
    }

    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        format!(
            "{:?}, quantized with 1/s = {}, zero point {}, s = {}",
            self.shape, self.inv_scale, self.zero_point, self.scale
        )
    }
}

impl Op for ResidualAdd {
    fn name(&self) -> StaticName {
        "ResidualAdd".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![self.describe()])
    }

    op_as_typed_op!();
}

impl EvalOp for ResidualAdd {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 2, "a residual add takes two inputs");
        let len: usize = self.shape.iter().product();
        let (a, b) = (inputs[0].try_as_plain_ram()?, inputs[1].try_as_plain_ram()?);
        let (a, b) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
        ensure!(
            a.len() == len && b.len() == len,
            "residual add inputs have {} and {} values, expected {len}",
            a.len(),
            b.len()
        );
        // SAFETY: f32 has no invalid bit patterns, and `add` writes every value.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.shape)? };
        {
            let mut out = output.try_as_plain_ram_mut()?;
            let out = out.as_slice_mut::<f32>()?;
            if cfg!(any(test, debug_assertions)) {
                out.fill(f32::NAN);
            }
            self.add(a, b, out);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for ResidualAdd {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2);
        for fact in inputs {
            ensure!(fact.datum_type == f32::datum_type());
            ensure!(fact.shape.as_concrete() == Some(&self.shape[..]));
        }
        Ok(tvec!(f32::fact(self.shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused pair's arithmetic one value at a time, written out as `rewrite::fuse` wires it.
    fn definition(op: &ResidualAdd, a: f32, b: f32) -> f32 {
        let z = f32::from(op.zero_point);
        let v = (a + b) * op.inv_scale;
        let v = v.max(-z);
        let v = v.min(255.0 - z);
        let v = v + ROUNDING_BIAS;
        let v = v - ROUNDING_BIAS;
        v * op.scale
    }

    #[test]
    fn every_value_is_the_fused_pairs_with_or_without_a_pool() {
        // More values than two chunks, an odd count, and sums beyond both clamp bounds.
        let n = 2 * CHUNK + 37;
        let scale = 0.05f32;
        let op = ResidualAdd::new(1.0 / scale, 131, scale, tvec![1, n]).unwrap();
        let a: Vec<f32> = (0..n).map(|i| (i % 997) as f32 * 0.031 - 15.0).collect();
        let b: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.025 - 0.1).collect();
        let want: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(&a, &b)| definition(&op, a, b))
            .collect();
        assert!(want.contains(&(-131.0 * scale)));
        assert!(want.contains(&(124.0 * scale)));
        for threads in [1, 2, 3] {
            let executor = tract_linalg::multithread::Executor::multithread(threads);
            let mut got = vec![f32::NAN; n];
            tract_linalg::multithread::multithread_tract_scope(executor, || {
                op.add(&a, &b, &mut got)
            });
            let same = got
                .iter()
                .zip(&want)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{threads} threads");
        }
    }

    #[test]
    fn a_sum_is_rounded_to_the_nearest_step_ties_to_even() {
        // Scale 1/4 and zero point 0: 0.375 + 0.25 = 0.625 is 2.5 steps -> 2 -> 0.5;
        // 0.125 + 0.5 = 0.625 too; 0.5 + 0.375 = 0.875 is 3.5 steps -> 4 -> 1.0; a negative sum
        // clamps to 0; 100 clamps to 255 steps.
        let op = ResidualAdd::new(4.0, 0, 0.25, tvec![5]).unwrap();
        let mut out = [f32::NAN; 5];
        op.add(
            &[0.375, 0.125, 0.5, -3.0, 60.0],
            &[0.25, 0.5, 0.375, 1.0, 40.0],
            &mut out,
        );
        assert_eq!(out, [0.5, 0.5, 1.0, 0.0, 63.75]);
    }

    #[test]
    fn scales_out_of_range_are_refused() {
        for (inv, s) in [
            (0.0, 1.0),
            (1.0, -1.0),
            (f32::NAN, 1.0),
            (1.0, f32::INFINITY),
        ] {
            assert!(ResidualAdd::new(inv, 0, s, tvec![1]).is_err());
        }
    }
}
