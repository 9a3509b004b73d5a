//! Subsampling of the last two axes: what tract's declutter puts before each stride-2 1×1
//! convolution (ResNet's), as one `Downsample` per axis. tract copies each through a generic
//! strided ndarray view (open_nsfw's 12: 9 M aarch64 instructions per inference, 1.7 ms of 22 on
//! x86-64); this is one operator per pair, row copies, and NEON's `ld2` for stride 2 on aarch64. A
//! copy: the values are the input's, bit for bit.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Every `stride[0]`-th row from `offset[0]` and every `stride[1]`-th column from `offset[1]` of
/// each `H × W` image of a tensor (its last two axes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Subsample {
    /// Images (the product of the leading axes), height and width of the input.
    images: usize,
    height: usize,
    width: usize,
    stride: [usize; 2],
    offset: [usize; 2],
    out_shape: TVec<usize>,
    /// Whether to take the `ld2` path where there is one (always, but in tests).
    neon: bool,
}

impl Subsample {
    /// The operator for an input of `shape`, if the output is not empty.
    pub fn new(shape: &[usize], stride: [usize; 2], offset: [usize; 2]) -> Option<Subsample> {
        let rank = shape.len();
        if rank < 2 || stride.contains(&0) {
            return None;
        }
        let (height, width) = (shape[rank - 2], shape[rank - 1]);
        let images = shape[..rank - 2].iter().product::<usize>();
        let oh = height.checked_sub(offset[0])?.div_ceil(stride[0]);
        let ow = width.checked_sub(offset[1])?.div_ceil(stride[1]);
        if images == 0 || oh == 0 || ow == 0 {
            return None;
        }
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[rank - 2] = oh;
        out_shape[rank - 1] = ow;
        Some(Subsample {
            images,
            height,
            width,
            stride,
            offset,
            out_shape,
            neon: true,
        })
    }

    /// The operator's line in tract's graph dumps.
    fn describe(&self) -> String {
        format!(
            "{} images of {}x{}, stride {:?} from {:?}",
            self.images, self.height, self.width, self.stride, self.offset
        )
    }

    /// The output's height and width.
    fn output(&self) -> (usize, usize) {
        let rank = self.out_shape.len();
        (self.out_shape[rank - 2], self.out_shape[rank - 1])
    }

    /// Copies the kept values of `input` into `output`; `neon` takes the `ld2` path for stride 2
    /// where there is one (aarch64).
    fn copy(&self, input: &[f32], output: &mut [f32], neon: bool) {
        let (oh, ow) = self.output();
        let (h, w) = (self.height, self.width);
        assert!(input.len() == self.images * h * w && output.len() == self.images * oh * ow);
        let [sy, sx] = self.stride;
        let [oy, ox] = self.offset;
        for (image, out) in input
            .chunks_exact(h * w)
            .zip(output.chunks_exact_mut(oh * ow))
        {
            for (y, dst) in out.chunks_exact_mut(ow).enumerate() {
                let row = &image[(oy + y * sy) * w..][..w];
                row_copy(&row[ox..], dst, sx, neon);
            }
        }
    }
}

/// `dst[j] = src[j · stride]`.
#[inline]
fn row_copy(src: &[f32], dst: &mut [f32], stride: usize, neon: bool) {
    if stride == 1 {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    #[cfg_attr(not(target_arch = "aarch64"), allow(unused_mut))]
    let mut from = 0;
    #[cfg(target_arch = "aarch64")]
    if neon && stride == 2 {
        use std::arch::aarch64::*;
        // Whole `ld2`s of 8 floats (4 kept) inside the row.
        while 2 * from + 8 <= src.len() && from + 4 <= dst.len() {
            // SAFETY: NEON is part of the aarch64 base ISA; floats 2·from .. 2·from + 8 are
            // inside `src` and 4 from `from` inside `dst` (the loop's condition).
            unsafe {
                let v = vld2q_f32(src.as_ptr().add(2 * from));
                vst1q_f32(dst.as_mut_ptr().add(from), v.0);
            }
            from += 4;
        }
    }
    let _ = neon;
    for (d, s) in dst[from..]
        .iter_mut()
        .zip(src[from * stride..].iter().step_by(stride))
    {
        *d = *s;
    }
}

f32_operator!(Subsample, "Subsample", copy, neon, |op: &Subsample| {
    op.images * op.height * op.width
});

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::Downsample;

    /// tract's own `Downsample`s (rows, then columns) on `input`.
    fn tract_downsample(
        shape: &[usize],
        stride: [usize; 2],
        offset: [usize; 2],
        input: &[f32],
    ) -> Vec<f32> {
        let mut model = TypedModel::default();
        let rank = shape.len();
        let mut x = model.add_source("x", f32::fact(shape)).unwrap();
        for (i, axis) in [rank - 2, rank - 1].into_iter().enumerate() {
            let op = Downsample::new(axis, stride[i] as isize, offset[i]);
            x = model.wire_node(format!("down{i}"), op, &[x]).unwrap()[0];
        }
        model.select_output_outlets(&[x]).unwrap();
        let image = Tensor::from_shape(shape, input).unwrap();
        let out = model
            .into_runnable()
            .unwrap()
            .run(tvec![image.into_tvalue()])
            .unwrap();
        let out = out[0].try_as_plain_ram().unwrap();
        out.as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn both_paths_equal_tracts_downsample_bit_for_bit() {
        // ResNet's stride 2 on even and odd sizes (a partial `ld2` at the row's end), an offset,
        // stride 3, rows only, columns only, and rank 3.
        let cases: [(&[usize], [usize; 2], [usize; 2]); 7] = [
            (&[1, 256, 56, 56], [2, 2], [0, 0]),
            (&[1, 3, 7, 7], [2, 2], [0, 0]),
            (&[1, 2, 9, 11], [2, 2], [1, 1]),
            (&[1, 2, 10, 17], [3, 3], [2, 0]),
            (&[1, 2, 10, 17], [2, 1], [0, 0]),
            (&[1, 2, 10, 17], [1, 2], [0, 1]),
            (&[4, 5, 9], [2, 2], [0, 0]),
        ];
        for (shape, stride, offset) in cases {
            let n: usize = shape.iter().product();
            let input: Vec<f32> = (0..n as u32)
                .map(|i| match i % 5 {
                    0 => f32::from_bits(0x7FC0_0000 | i),
                    1 => -0.0,
                    _ => i as f32 * 0.37 - 11.0,
                })
                .collect();
            let op = Subsample::new(shape, stride, offset).unwrap();
            let want = tract_downsample(shape, stride, offset, &input);
            assert_eq!(op.out_shape.iter().product::<usize>(), want.len());
            for neon in [false, true] {
                let mut out = vec![0f32; want.len()];
                op.copy(&input, &mut out, neon);
                let same = out
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{shape:?} {stride:?} {offset:?} neon {neon}");
            }
        }
    }

    #[test]
    fn empty_outputs_and_zero_strides_are_not_taken() {
        assert!(Subsample::new(&[1, 2, 4, 4], [0, 2], [0, 0]).is_none());
        assert!(Subsample::new(&[1, 2, 4, 4], [2, 2], [4, 0]).is_none());
        assert!(Subsample::new(&[1, 2, 4, 4], [2, 2], [0, 5]).is_none());
        assert!(Subsample::new(&[0, 2, 4, 4], [2, 2], [0, 0]).is_none());
        assert!(Subsample::new(&[4], [2, 2], [0, 0]).is_none());
        let op = Subsample::new(&[1, 2, 5, 4], [2, 3], [0, 1]).unwrap();
        assert_eq!(op.out_shape[..], [1, 2, 3, 1]);
    }
}
