//! The engine's frame buffers: a taken frame copied into a reused buffer (or a lent camera buffer
//! kept instead), the camera side's state behind its lock, and the spare buffers the worker
//! allocates ahead so that `submit` finds one ready.

use std::sync::Mutex;
use std::time::Instant;

use super::{lock, CameraBuffer};
use crate::frame::{ColorMatrix, ColorRange, Frame, FrameError, PixelFormat, Plane, Rotation};
use crate::policy::QualityGate;
use crate::stream::sampling::{Sampler, Signature};

/// A frame copied out of the host's buffers (rows packed, YUV as I420 or NV12/NV21).
#[derive(Default)]
pub(super) struct FrameBuf {
    pub(super) data: Vec<u8>,
    format: Option<PixelFormat>,
    width: u32,
    height: u32,
    matrix: ColorMatrix,
    range: ColorRange,
    rotation: Rotation,
    mirror: bool,
    pub(super) timestamp_us: i64,
    pub(super) signature: Signature,
    pub(super) submitted: Option<Instant>,
    /// A lent camera buffer holding the pixels instead of `data`.
    pub(super) lent: Option<Box<dyn CameraBuffer>>,
}

impl FrameBuf {
    pub(super) fn copy_from(&mut self, f: &Frame<'_>) {
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.data.clear();
        let copy_rows = |data: &mut Vec<u8>, p: &Plane<'_>, row_bytes: usize, rows: usize| {
            append_rows(data, p.data, p.row_stride, row_bytes, rows)
        };
        let planes = f.planes();
        let format = match f.format() {
            PixelFormat::Nv12 | PixelFormat::Nv21 => {
                copy_rows(&mut self.data, &planes[0], w, h);
                copy_rows(&mut self.data, &planes[1], 2 * cw, ch);
                f.format()
            }
            PixelFormat::I420 | PixelFormat::Yuv420 => {
                copy_rows(&mut self.data, &planes[0], w, h);
                for p in &planes[1..3] {
                    for r in 0..ch {
                        self.data.extend((0..cw).map(|x| p.data[p.offset(x, r)]));
                    }
                }
                PixelFormat::I420
            }
            packed => {
                copy_rows(
                    &mut self.data,
                    &planes[0],
                    w * packed.packed_bytes_per_pixel().unwrap_or(4),
                    h,
                );
                packed
            }
        };
        self.format = Some(format);
        (self.width, self.height) = (f.width(), f.height());
        (self.matrix, self.range) = (f.matrix(), f.range());
        (self.rotation, self.mirror, self.timestamp_us) =
            (f.rotation(), f.mirror(), f.timestamp_us());
    }

    pub(super) fn frame(&self) -> std::result::Result<Frame<'_>, FrameError> {
        if let Some(lent) = &self.lent {
            return lent.frame();
        }
        let (w, h) = (self.width, self.height);
        let (wu, hu) = (w as usize, h as usize);
        let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
        let d = &self.data[..];
        let format = self.format.unwrap_or(PixelFormat::Rgb8);
        let f = match format {
            PixelFormat::Nv12 | PixelFormat::Nv21 => {
                let (y, c) = d.split_at((wu * hu).min(d.len()));
                let (y, c) = (Plane::new(y, wu), Plane::new(c, 2 * cw));
                if format == PixelFormat::Nv12 {
                    Frame::nv12(w, h, y, c)
                } else {
                    Frame::nv21(w, h, y, c)
                }
            }
            PixelFormat::I420 | PixelFormat::Yuv420 => {
                let (y, rest) = d.split_at((wu * hu).min(d.len()));
                let (u, v) = rest.split_at((cw * ch).min(rest.len()));
                Frame::i420(
                    w,
                    h,
                    Plane::new(y, wu),
                    Plane::new(u, cw),
                    Plane::new(v, cw),
                )
            }
            packed => Frame::packed(
                packed,
                w,
                h,
                d,
                wu * packed.packed_bytes_per_pixel().unwrap_or(4),
            ),
        }?;
        Ok(f.with_color(self.matrix, self.range)
            .with_orientation(self.rotation, self.mirror)
            .with_timestamp_us(self.timestamp_us))
    }
}

/// Appends `rows` rows of `row_bytes` from `src` (rows `stride` apart) to `dst`: one copy when the
/// rows are contiguous, else one per row.
fn append_rows(dst: &mut Vec<u8>, src: &[u8], stride: usize, row_bytes: usize, rows: usize) {
    if stride == row_bytes {
        dst.extend_from_slice(&src[..row_bytes * rows]);
    } else {
        for r in 0..rows {
            dst.extend_from_slice(&src[r * stride..r * stride + row_bytes]);
        }
    }
}

/// A submitted frame: borrowed (copied if taken) or in a buffer lent to the engine.
pub(super) enum Pixels<'f, 'a> {
    Borrowed(&'f Frame<'a>),
    Lent(Box<dyn CameraBuffer>),
}

/// The camera side: sampling and spare buffers, behind one lock (submit may come from any thread).
pub(super) struct Front {
    pub(super) sampler: Sampler,
    pub(super) quality: QualityGate,
    pub(super) spares: Vec<FrameBuf>,
    pub(super) signature: Signature,
}

/// How many spare buffers the camera side keeps; see [`keep_spares`].
const SPARES: usize = 2;

/// Makes sure the camera side finds [`SPARES`] spare buffers with room for `bytes`, allocated and
/// touched here (on the worker) rather than in `submit` (a first write to fresh pages costs page
/// faults). While the worker scores one buffer and another waits in the slot, `submit` fills a
/// third and swaps it in, and the one it replaces becomes a spare only after that. So `submit`
/// needs two spares to find one ready once the first frame has been taken. Spares too small for
/// `bytes` (the stream changed resolution) are replaced; larger ones are kept.
pub(super) fn keep_spares(front: &Mutex<Front>, bytes: usize) {
    loop {
        let missing = {
            let front = lock(front);
            front.spares.len() < SPARES || front.spares.iter().any(|s| s.data.capacity() < bytes)
        };
        if !missing {
            return;
        }
        // Not `vec![0; n]`: calloc'd pages are mapped lazily and would fault in `submit`.
        let mut data = Vec::with_capacity(bytes);
        data.resize(bytes, 1u8);
        let spare = FrameBuf {
            data,
            ..FrameBuf::default()
        };
        let mut front = lock(front);
        front.spares.retain(|s| s.data.capacity() >= bytes);
        if front.spares.len() < SPARES {
            front.spares.push(spare);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Spare buffers of `capacities` behind the camera side's lock.
    fn front_with(capacities: &[usize]) -> Mutex<Front> {
        let sampling = crate::policy::Sampling {
            base_fps: 2.0,
            burst_fps: 6.0,
        };
        Mutex::new(Front {
            sampler: Sampler::new(&sampling),
            quality: QualityGate::default(),
            spares: capacities
                .iter()
                .map(|&n| FrameBuf {
                    data: Vec::with_capacity(n),
                    ..FrameBuf::default()
                })
                .collect(),
            signature: Signature::default(),
        })
    }

    fn spare_capacities(front: &Mutex<Front>) -> Vec<usize> {
        let mut c: Vec<usize> = lock(front)
            .spares
            .iter()
            .map(|s| s.data.capacity())
            .collect();
        c.sort_unstable();
        c
    }

    /// The worker keeps exactly [`SPARES`] spares with room for the frame size: it makes them
    /// when there are none (filled, so their pages are touched), replaces the ones too small,
    /// keeps larger ones, and leaves a surplus spare (a replaced buffer handed back) alone
    /// unless it is too small. Fails if `keep_spares` did nothing, if its count or size tests
    /// were inverted or joined by `&&`, or if it pushed a spare when two fit already.
    #[test]
    fn the_worker_keeps_two_spares_big_enough_for_the_frame() {
        let front = front_with(&[]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front).len(), SPARES);
        for s in &lock(&front).spares {
            assert!(s.data.capacity() >= 100 && s.data.len() == 100);
            assert!(
                s.data.iter().all(|&b| b == 1),
                "written, so its pages are mapped"
            );
        }
        // One spare: a second is made.
        let front = front_with(&[500]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front).len(), 2);
        assert_eq!(spare_capacities(&front)[1], 500);
        // Too small for a larger frame: both replaced.
        let front = front_with(&[10, 10]);
        keep_spares(&front, 100);
        let c = spare_capacities(&front);
        assert!(c.len() == 2 && c.iter().all(|&n| n >= 100), "{c:?}");
        // Larger than needed: kept as they are.
        let front = front_with(&[400, 300]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front), [300, 400]);
        // Two that fit and one too small: the small one goes, no third is made.
        let front = front_with(&[200, 10, 300]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front), [200, 300]);
        // Three that fit: a surplus is not trimmed.
        let front = front_with(&[200, 300, 400]);
        keep_spares(&front, 100);
        assert_eq!(spare_capacities(&front), [200, 300, 400]);
    }

    proptest! {
        /// The plane copy gives exactly the rows' bytes, for any stride, row length and offset.
        #[test]
        fn append_rows_equals_a_plain_copy(
            row_bytes in 1usize..3000,
            pad in 0usize..40,
            rows in 1usize..400,
            prefix in 0usize..40,
            seed in any::<u8>(),
        ) {
            let stride = row_bytes + pad;
            let src: Vec<u8> = (0..stride * rows).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let mut dst = vec![7u8; prefix];
            append_rows(&mut dst, &src, stride, row_bytes, rows);
            let mut expected = vec![7u8; prefix];
            for r in 0..rows {
                expected.extend_from_slice(&src[r * stride..r * stride + row_bytes]);
            }
            prop_assert_eq!(dst, expected);
        }
    }
}
