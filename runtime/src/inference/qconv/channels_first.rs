//! Channels-last to channels-first: a model whose input is NHWC (open_nsfw's `1×224×224×3`) starts
//! with a transpose to the NCHW its convolutions read. tract runs it as a generic strided copy,
//! about 60 aarch64 instructions per value (`benches/arm/profile.py`: 9 M of an inference); this
//! one copies each output row from its input row, through NEON's structure loads (`ld3`, `ld4`)
//! for 3 and 4 channels and a plain loop otherwise, rows shared over the model's pool. When the
//! planes go to an f32 convolution that pads them, the padding is written here
//! ([`ChannelsFirst::with_padding`]) and the convolution pads no more: tract pads before its
//! convolution as a pass of its own (a `Pad` node, single-threaded: 0.08 ms before nsfwjs's first
//! convolution on x86-64). A copy: the values are the input's, bit for bit, and the padding zeros.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::in_chunks;

/// Output values per task when the copy is shared among threads (whole rows).
const VALUES_PER_TASK: usize = 8 * 1024;

/// The `[1, H, W, C] → [1, C, H, W]` transpose of f32 values, each plane zero-padded when the
/// operator has padding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChannelsFirst {
    height: usize,
    width: usize,
    channels: usize,
    /// Zero rows and columns around each plane: top, left, bottom, right.
    pad: [usize; 4],
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
        h.checked_mul(w)?.checked_mul(c).filter(|&n| n > 0)?;
        let mut out_shape: TVec<usize> = tvec![c, h, w];
        if batch {
            out_shape.insert(0, 1);
        }
        Some(ChannelsFirst {
            height: h,
            width: w,
            channels: c,
            pad: [0; 4],
            out_shape,
            neon: true,
        })
    }

    /// The transpose with each plane padded by `[top, left, bottom, right]` zero rows and
    /// columns, if the padded output's size fits in memory's address range.
    pub fn with_padding(self, pad: [usize; 4]) -> Option<ChannelsFirst> {
        let [top, left, bottom, right] = pad;
        let ph = self.height.checked_add(top)?.checked_add(bottom)?;
        let pw = self.width.checked_add(left)?.checked_add(right)?;
        ph.checked_mul(pw)?.checked_mul(self.channels)?;
        let mut out_shape = self.out_shape.clone();
        let rank = out_shape.len();
        out_shape[rank - 2] = ph;
        out_shape[rank - 1] = pw;
        Some(ChannelsFirst {
            pad,
            out_shape,
            ..self
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
            "{}x{} pixels of {} channels to planes, padded by {:?}",
            self.height, self.width, self.channels, self.pad
        )
    }

    /// Copies `input` (pixels of `channels` values) into `output`'s padded planes, whole rows at a
    /// time, shared over the pool when there is one; `neon` takes the structure-load path where
    /// there is one (aarch64, 3 or 4 channels).
    fn split(&self, input: &[f32], output: &mut [f32], neon: bool) {
        let (h, w, c) = (self.height, self.width, self.channels);
        let [top, left, bottom, right] = self.pad;
        let (ph, pw) = (h + top + bottom, w + left + right);
        assert!(input.len() == h * w * c && output.len() == c * ph * pw);
        let rows = (VALUES_PER_TASK / pw).max(1);
        in_chunks(output, rows * pw, |task, out| {
            for (i, row) in out.chunks_exact_mut(pw).enumerate() {
                // Row `y` of plane `ch`, counting the padding's rows.
                let r = task * rows + i;
                let (ch, y) = (r / ph, r % ph);
                match y.checked_sub(top).filter(|&y| y < h) {
                    Some(y) => {
                        row[..left].fill(0.0);
                        row[left + w..].fill(0.0);
                        let pixels = &input[y * w * c..(y + 1) * w * c];
                        copy_row(pixels, ch, c, &mut row[left..left + w], neon);
                    }
                    None => row.fill(0.0),
                }
            }
        });
    }
}

/// Channel `ch` of `pixels` (of `channels` values each) into `dst`, one value per pixel; `neon`
/// takes the structure-load path where there is one (aarch64, 3 or 4 channels).
fn copy_row(pixels: &[f32], ch: usize, channels: usize, dst: &mut [f32], neon: bool) {
    assert!(ch < channels && pixels.len() == dst.len() * channels);
    #[cfg(target_arch = "aarch64")]
    if neon && (channels == 3 || channels == 4) {
        // SAFETY: NEON is part of the aarch64 base ISA; the lengths were checked above.
        unsafe { aarch64::copy_row(pixels, ch, channels, dst) };
        return;
    }
    let _ = neon;
    copy_row_portable(pixels, ch, channels, dst, 0);
}

/// Pixels `from ..` of [`copy_row`], one value at a time: the definition, and the NEON path's
/// tail.
fn copy_row_portable(pixels: &[f32], ch: usize, channels: usize, dst: &mut [f32], from: usize) {
    for (p, d) in dst.iter_mut().enumerate().skip(from) {
        *d = pixels[p * channels + ch];
    }
}

#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use std::arch::aarch64::*;

    /// 4 pixels at a time with `ld3`/`ld4`, keeping channel `ch`; the rest with the portable loop.
    ///
    /// # Safety
    /// `pixels` holds `dst.len() × channels` values, `channels` is 3 or 4 and `ch` below it.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn copy_row(pixels: &[f32], ch: usize, channels: usize, dst: &mut [f32]) {
        let (src, out) = (pixels.as_ptr(), dst.as_mut_ptr());
        let whole = dst.len() / 4 * 4;
        let mut p = 0;
        while p < whole {
            // SAFETY: pixels p..p+4 are inside `pixels`, and p+4 <= `dst.len()`.
            unsafe {
                let v = if channels == 3 {
                    let v = vld3q_f32(src.add(p * 3));
                    [v.0, v.1, v.2][ch]
                } else {
                    let v = vld4q_f32(src.add(p * 4));
                    [v.0, v.1, v.2, v.3][ch]
                };
                vst1q_f32(out.add(p), v);
            }
            p += 4;
        }
        super::copy_row_portable(pixels, ch, channels, dst, whole);
    }
}

f32_operator!(
    ChannelsFirst,
    "ChannelsFirst",
    split,
    neon,
    |op: &ChannelsFirst| { op.height * op.width * op.channels }
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

    /// Planes of `h × w` (the transpose's output, `planes` of them) with `[top, left, bottom,
    /// right]` zero rows and columns around each.
    fn padded(
        planes: &[f32],
        h: usize,
        w: usize,
        [top, left, bottom, right]: [usize; 4],
    ) -> Vec<f32> {
        let (ph, pw) = (h + top + bottom, w + left + right);
        let mut out = vec![];
        for plane in planes.chunks_exact(h * w) {
            for y in 0..ph {
                for x in 0..pw {
                    let inside = (top..top + h).contains(&y) && (left..left + w).contains(&x);
                    out.push(if inside {
                        plane[(y - top) * w + x - left]
                    } else {
                        0.0
                    });
                }
            }
        }
        out
    }

    #[test]
    fn both_paths_equal_tracts_transpose_bit_for_bit_padded_or_not() {
        // open_nsfw's input, 4 channels, odd pixel counts (a tail after the 4-pixel blocks), one
        // and five channels, and without the batch axis; NaN payloads and -0 among the values.
        // Each without padding, with nsfwjs's first convolution's (one row and column after) and
        // with uneven padding on every side; on one thread and shared over 2 and 3 (open_nsfw's
        // size takes several tasks, whose rows run across planes).
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
            let rank = shape.len();
            let (h, w) = (shape[rank - 3], shape[rank - 2]);
            let transposed = tract_move(&shape, &input);
            for pad in [[0; 4], [0, 0, 1, 1], [2, 1, 3, 4]] {
                let op = ChannelsFirst::new(&shape)
                    .unwrap()
                    .with_padding(pad)
                    .unwrap();
                let want = padded(&transposed, h, w, pad);
                assert_eq!(op.out_shape().iter().product::<usize>(), want.len());
                for (neon, threads) in [(false, 1), (true, 1), (true, 2), (false, 3)] {
                    let mut out = vec![f32::NAN; want.len()];
                    let executor = tract_linalg::multithread::Executor::multithread(threads);
                    tract_linalg::multithread::multithread_tract_scope(executor, || {
                        op.split(&input, &mut out, neon)
                    });
                    assert_eq!(
                        bits(&out),
                        bits(&want),
                        "{shape:?} {pad:?} neon {neon}, {threads} threads"
                    );
                }
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
        let padded = ChannelsFirst::new(&[1, 4, 5, 3]).unwrap();
        assert_eq!(
            padded
                .clone()
                .with_padding([1, 2, 3, 4])
                .unwrap()
                .out_shape(),
            [1, 3, 8, 11]
        );
        assert!(padded.with_padding([usize::MAX, 0, 0, 0]).is_none());
    }
}
