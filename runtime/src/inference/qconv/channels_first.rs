//! Channels-last to channels-first: a model whose input is NHWC (open_nsfw's `1×224×224×3`) starts
//! with a transpose to the NCHW its convolutions read. tract runs it as a generic strided copy,
//! about 60 aarch64 instructions per value (`benches/arm/profile.py`: 9 M of an inference); this
//! one splits pixels into planes with NEON's structure loads (`ld3`, `ld4`) for 3 and 4 channels,
//! and a plain loop otherwise. A copy: the values are the input's, bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// The `[1, H, W, C] → [1, C, H, W]` transpose of f32 values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChannelsFirst {
    /// Pixels (`H × W`).
    pixels: usize,
    /// Channels.
    channels: usize,
    out_shape: TVec<usize>,
    /// Whether to take the structure-load path where there is one (always, but in tests).
    neon: bool,
}

impl ChannelsFirst {
    /// The transpose of a `[1, H, W, C]` input (`[H, W, C]` without the batch), if it is one.
    pub fn new(in_shape: &[usize]) -> Option<ChannelsFirst> {
        let (batch, hwc) = match in_shape {
            [1, rest @ ..] if rest.len() == 3 => (true, rest),
            rest if rest.len() == 3 => (false, rest),
            _ => return None,
        };
        let [h, w, c] = [hwc[0], hwc[1], hwc[2]];
        let pixels = h.checked_mul(w)?;
        pixels.checked_mul(c).filter(|&n| n > 0)?;
        let mut out_shape: TVec<usize> = tvec![c, h, w];
        if batch {
            out_shape.insert(0, 1);
        }
        Some(ChannelsFirst {
            pixels,
            channels: c,
            out_shape,
            neon: true,
        })
    }

    /// The output's shape.
    #[cfg(test)]
    pub fn out_shape(&self) -> &[usize] {
        &self.out_shape
    }

    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        format!(
            "{} pixels of {} channels to planes",
            self.pixels, self.channels
        )
    }

    /// Splits `input` (pixels of `channels` values) into `output`'s planes; `neon` takes the
    /// structure-load path where there is one (aarch64, 3 or 4 channels).
    fn split(&self, input: &[f32], output: &mut [f32], neon: bool) {
        let (n, c) = (self.pixels, self.channels);
        assert!(input.len() == n * c && output.len() == n * c);
        #[cfg(target_arch = "aarch64")]
        if neon && (c == 3 || c == 4) {
            // SAFETY: NEON is part of the aarch64 base ISA; the lengths were checked above.
            unsafe { aarch64::split(input, output, n, c) };
            return;
        }
        let _ = neon;
        split_portable(input, output, n, c, 0);
    }
}

/// Pixels `from ..` of the transpose, one value at a time: the definition, and the NEON path's
/// tail.
fn split_portable(input: &[f32], output: &mut [f32], pixels: usize, channels: usize, from: usize) {
    for ch in 0..channels {
        let plane = &mut output[ch * pixels..(ch + 1) * pixels];
        for (p, o) in plane.iter_mut().enumerate().skip(from) {
            *o = input[p * channels + ch];
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use std::arch::aarch64::*;

    /// 4 pixels at a time with `ld3`/`ld4`, the rest with the portable loop.
    ///
    /// # Safety
    /// `input` and `output` hold `pixels × channels` values, `channels` is 3 or 4.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn split(input: &[f32], output: &mut [f32], pixels: usize, channels: usize) {
        let (src, dst) = (input.as_ptr(), output.as_mut_ptr());
        let whole = pixels / 4 * 4;
        let mut p = 0;
        while p < whole {
            // SAFETY: pixels p..p+4 are inside both tensors (p + 4 <= pixels).
            unsafe {
                if channels == 3 {
                    let v = vld3q_f32(src.add(p * 3));
                    vst1q_f32(dst.add(p), v.0);
                    vst1q_f32(dst.add(pixels + p), v.1);
                    vst1q_f32(dst.add(2 * pixels + p), v.2);
                } else {
                    let v = vld4q_f32(src.add(p * 4));
                    vst1q_f32(dst.add(p), v.0);
                    vst1q_f32(dst.add(pixels + p), v.1);
                    vst1q_f32(dst.add(2 * pixels + p), v.2);
                    vst1q_f32(dst.add(3 * pixels + p), v.3);
                }
            }
            p += 4;
        }
        super::split_portable(input, output, pixels, channels, whole);
    }
}

f32_operator!(
    ChannelsFirst,
    "ChannelsFirst",
    split,
    neon,
    |op: &ChannelsFirst| { op.pixels * op.channels }
);

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::change_axes::AxisOp;

    /// tract's own transpose of `input`.
    fn tract_move(shape: &[usize], input: &[f32]) -> Vec<f32> {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let rank = shape.len();
        let y = model
            .wire_node("move", AxisOp::Move(rank - 1, rank - 3), &[x])
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        let image = Tensor::from_shape(shape, input).unwrap();
        let out = model
            .into_runnable()
            .unwrap()
            .run(tvec![image.into_tvalue()])
            .unwrap();
        let out = out[0].try_as_plain_ram().unwrap();
        out.as_slice::<f32>().unwrap().to_vec()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn both_paths_equal_tracts_transpose_bit_for_bit() {
        // open_nsfw's input, 4 channels, odd pixel counts (a tail after the 4-pixel blocks), one
        // and five channels, and without the batch axis; NaN payloads and -0 among the values.
        for shape in [
            vec![1, 224, 224, 3],
            vec![1, 5, 3, 4],
            vec![1, 3, 3, 3],
            vec![1, 2, 7, 1],
            vec![1, 3, 1, 5],
            vec![7, 5, 3],
        ] {
            let n: usize = shape.iter().product();
            let input: Vec<f32> = (0..n as u32)
                .map(|i| match i % 7 {
                    0 => f32::from_bits(0x7FC0_0000 | i),
                    1 => -0.0,
                    _ => i as f32 * 0.37 - 11.0,
                })
                .collect();
            let op = ChannelsFirst::new(&shape).unwrap();
            let want = tract_move(&shape, &input);
            assert_eq!(op.out_shape().iter().product::<usize>(), n);
            for neon in [false, true] {
                let mut out = vec![0f32; n];
                op.split(&input, &mut out, neon);
                assert_eq!(bits(&out), bits(&want), "{shape:?} neon {neon}");
            }
        }
    }

    #[test]
    fn other_shapes_are_not_taken() {
        assert!(ChannelsFirst::new(&[2, 4, 4, 3]).is_none());
        assert!(ChannelsFirst::new(&[4, 3]).is_none());
        assert!(ChannelsFirst::new(&[1, 0, 4, 3]).is_none());
        assert!(ChannelsFirst::new(&[1, 1, 4, 4, 3]).is_none());
        assert_eq!(
            ChannelsFirst::new(&[1, 4, 5, 3]).unwrap().out_shape(),
            [1, 3, 4, 5]
        );
        assert_eq!(
            ChannelsFirst::new(&[4, 5, 3]).unwrap().out_shape(),
            [3, 4, 5]
        );
    }
}
