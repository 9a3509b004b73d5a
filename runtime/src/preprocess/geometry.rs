//! Where each tensor pixel comes from: resize mode, crop, rotation and mirror, as one plan.
//!
//! All backends share this plan so they sample the same source area. The plan is worked out in the
//! upright (rotated, mirrored) picture, as the manifest describes it, then mapped back to the frame
//! as stored so the expensive resampling reads the planes in memory order and rotation becomes an
//! index permutation of the small resized result.

use crate::frame::{Frame, Rotation};
use crate::manifest::{InputSpec, ResizeMode};

/// A rectangle with fractional position and size, in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxF {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

impl BoxF {
    /// The same box in the coordinates of a 4:2:0 chroma plane (half resolution, centred siting).
    pub fn half(self) -> BoxF {
        BoxF {
            left: self.left / 2.0,
            top: self.top / 2.0,
            width: self.width / 2.0,
            height: self.height / 2.0,
        }
    }
}

/// An integer rectangle in the output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// Whether PIL resizes a `w` x `h` picture to `rw` x `rh` with its vertical pass first. Pillow 13
/// does (its pull request 9549) when the height shrinks by more than twice what the width shrinks
/// by, whatever the source box; before, always across first. The 8-bit rounding between its two
/// passes makes the order show in the values. Checked against Pillow 13.0 on 800 random
/// geometries, half of them with a source box, with no miss (`models/pillow_order.py`).
pub fn pil_down_first(w: u32, h: u32, rw: u32, rh: u32) -> bool {
    let (w, h, rw, rh) = (i64::from(w), i64::from(h), i64::from(rw), i64::from(rh));
    h > rh && h - rh > 2 * (w - rw)
}

/// The manifest's resize and crop applied to an upright picture of `uw` x `uh`.
///
/// Returns the source box in the upright picture (after mirroring, if the picture is mirrored),
/// the tensor rectangle it fills (outside it is padding, letterbox only), and the size the
/// reference resizes the whole picture to before cropping (which decides PIL's pass order,
/// [`pil_down_first`]).
pub fn upright_layout(spec: &InputSpec, uw: u32, uh: u32) -> (BoxF, Rect, (u32, u32)) {
    let (uwf, uhf) = (uw as f64, uh as f64);
    let (rw, rh) = (spec.resize.width, spec.resize.height);
    let (tw, th) = (spec.width, spec.height);
    match spec.resize.mode {
        ResizeMode::Stretch | ResizeMode::ShorterSide => {
            // Size of the whole resized picture, then a centre crop of it (PIL/torchvision style:
            // offsets rounded down).
            let (fw, fh) = if spec.resize.mode == ResizeMode::Stretch {
                (rw, rh)
            } else {
                let s = rw as f64 / uwf.min(uhf);
                if uw <= uh {
                    (rw, ((uhf * s).round() as u32).max(1))
                } else {
                    (((uwf * s).round() as u32).max(1), rw)
                }
            };
            let (cw, ch) = spec
                .crop
                .map_or((fw, fh), |c| (c.width.min(fw), c.height.min(fh)));
            let (ox, oy) = ((fw - cw) / 2, (fh - ch) / 2);
            let (sx, sy) = (uwf / fw as f64, uhf / fh as f64);
            let b = BoxF {
                left: ox as f64 * sx,
                top: oy as f64 * sy,
                width: cw as f64 * sx,
                height: ch as f64 * sy,
            };
            // A shorter-side resize of an extreme aspect ratio can crop less than the tensor; centre it.
            (
                b,
                Rect {
                    x: (tw - cw) / 2,
                    y: (th - ch) / 2,
                    w: cw,
                    h: ch,
                },
                (fw, fh),
            )
        }
        ResizeMode::Letterbox => {
            let s = (tw as f64 / uwf).min(th as f64 / uhf);
            let cw = ((uwf * s).round() as u32).clamp(1, tw);
            let ch = ((uhf * s).round() as u32).clamp(1, th);
            let full = BoxF {
                left: 0.0,
                top: 0.0,
                width: uwf,
                height: uhf,
            };
            (
                full,
                Rect {
                    x: (tw - cw) / 2,
                    y: (th - ch) / 2,
                    w: cw,
                    h: ch,
                },
                (cw, ch),
            )
        }
    }
}

/// The full plan for one frame: what to resample in the stored frame, and where each result goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Tensor width.
    pub out_w: u32,
    /// Tensor height.
    pub out_h: u32,
    /// Tensor rectangle filled with picture (the rest is padding).
    pub dst: Rect,
    /// Source box in the luma plane of the frame as stored.
    pub src: BoxF,
    /// Width of the resampled picture, in stored-frame orientation.
    pub resized_w: u32,
    /// Height of the resampled picture, in stored-frame orientation.
    pub resized_h: u32,
    /// Whether an 8-bit resample runs its vertical pass (down the stored frame) first: where PIL
    /// would on the upright picture ([`pil_down_first`]), whose rows are stored columns when the
    /// rotation swaps the axes. Only packed RGB with a filter that rounds between passes cares.
    pub down_first: bool,
    rotation: Rotation,
    mirror: bool,
}

impl Plan {
    /// Plans `frame` for the input `spec`.
    pub fn new(spec: &InputSpec, frame: &Frame<'_>) -> Plan {
        Self::for_geometry(
            spec,
            frame.width(),
            frame.height(),
            frame.rotation(),
            frame.mirror(),
        )
    }

    /// Plans a stored frame of `w` x `h` with the given orientation.
    pub fn for_geometry(
        spec: &InputSpec,
        w: u32,
        h: u32,
        rotation: Rotation,
        mirror: bool,
    ) -> Plan {
        let (uw, uh) = if rotation.swaps_axes() {
            (h, w)
        } else {
            (w, h)
        };
        let (mut b, dst, (fw, fh)) = upright_layout(spec, uw, uh);
        let down_first = pil_down_first(uw, uh, fw, fh) != rotation.swaps_axes();
        if mirror {
            b.left = uw as f64 - b.left - b.width;
        }
        let (wf, hf) = (w as f64, h as f64);
        // Upright x runs along stored rows or columns, forwards or backwards, by rotation.
        let src = match rotation {
            Rotation::R0 => b,
            Rotation::R90 => BoxF {
                left: b.top,
                top: hf - b.left - b.width,
                width: b.height,
                height: b.width,
            },
            Rotation::R180 => BoxF {
                left: wf - b.left - b.width,
                top: hf - b.top - b.height,
                width: b.width,
                height: b.height,
            },
            Rotation::R270 => BoxF {
                left: wf - b.top - b.height,
                top: b.left,
                width: b.height,
                height: b.width,
            },
        };
        let (resized_w, resized_h) = if rotation.swaps_axes() {
            (dst.h, dst.w)
        } else {
            (dst.w, dst.h)
        };
        Plan {
            out_w: spec.width,
            out_h: spec.height,
            dst,
            src,
            resized_w,
            resized_h,
            down_first,
            rotation,
            mirror,
        }
    }

    /// For picture pixel `(dx, dy)` of the destination rectangle, the index `(x, y)` of the resampled
    /// stored-orientation picture that holds it.
    #[inline(always)]
    pub fn source_index(&self, dx: u32, dy: u32) -> (u32, u32) {
        let ux = if self.mirror { self.dst.w - 1 - dx } else { dx };
        let (rw, rh) = (self.resized_w, self.resized_h);
        match self.rotation {
            Rotation::R0 => (ux, dy),
            Rotation::R90 => (dy, rh - 1 - ux),
            Rotation::R180 => (rw - 1 - ux, rh - 1 - dy),
            Rotation::R270 => (rw - 1 - dy, ux),
        }
    }

    /// True when the picture does not cover the whole tensor (letterbox padding).
    pub fn has_padding(&self) -> bool {
        self.dst
            != Rect {
                x: 0,
                y: 0,
                w: self.out_w,
                h: self.out_h,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::pil_down_first;

    /// Orders Pillow 13.0 was seen to take (`models/pillow_order.py`'s method), the boundary cases
    /// included.
    #[test]
    fn pil_goes_down_first_where_pillow_13_does() {
        let cases = [
            ((200, 300), (256, 256), true),
            ((300, 400), (256, 256), true),
            ((275, 330), (256, 256), true),
            ((255, 257), (256, 256), true),
            ((216, 371), (36, 10), true),
            ((300, 200), (256, 256), false),
            ((400, 300), (256, 256), false),
            ((150, 200), (256, 256), false),
            ((257, 255), (256, 256), false),
            ((446, 551), (259, 195), false),
            // 241 - 193 = 2 · (130 - 106): not more than twice.
            ((130, 241), (106, 193), false),
        ];
        for ((w, h), (rw, rh), down) in cases {
            assert_eq!(pil_down_first(w, h, rw, rh), down, "{w}x{h} -> {rw}x{rh}");
        }
    }
}
