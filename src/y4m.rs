//! A small reader for YUV4MPEG2 (`.y4m`) files with 8-bit 4:2:0 chroma.
//!
//! Untrusted input: everything the header says is checked before it is used. Sizes within the
//! runtime's frame limits, a frame rate from one frame an hour to 1000 per second, 8-bit 4:2:0
//! only (`C420p10` and other deeper or subsampled formats are refused, never misread as 8-bit),
//! and timestamps that cannot overflow.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use prescreen_runtime::frame::{ColorRange, MAX_DIMENSION, MAX_PIXELS};

use crate::framegen::OwnedFrame;

/// Why a `.y4m` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    /// Reading failed.
    #[error("cannot read y4m: {0}")]
    Io(#[from] std::io::Error),
    /// The header or a frame marker is malformed, or the colour space is not 4:2:0.
    #[error("unsupported or malformed y4m: {0}")]
    Format(String),
}

/// Frames of a `.y4m` stream, decoded as I420 [`OwnedFrame`]s with timestamps from the frame rate.
pub struct Y4mReader<R> {
    input: BufReader<R>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second (numerator, denominator).
    pub fps: (u32, u32),
    range: ColorRange,
    index: u64,
}

impl Y4mReader<std::fs::File> {
    /// Opens a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Y4mError> {
        Self::new(std::fs::File::open(path)?)
    }
}

impl<R: Read> Y4mReader<R> {
    /// Reads the stream header.
    pub fn new(input: R) -> Result<Self, Y4mError> {
        let mut input = BufReader::new(input);
        let mut header = String::new();
        input.by_ref().take(1024).read_line(&mut header)?;
        let mut fields = header.trim_end().split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(Y4mError::Format("missing YUV4MPEG2 signature".into()));
        }
        let (mut width, mut height, mut fps, mut range) = (0, 0, (30, 1), ColorRange::Limited);
        for f in fields {
            // The tag is the field's first character, which may be any character (found by
            // fuzzing: splitting at byte 1 panicked inside a multi-byte one).
            let mut chars = f.chars();
            let tag = chars.next().map_or("", |c| &f[..c.len_utf8()]);
            let value = chars.as_str();
            match tag {
                "W" => {
                    width = value
                        .parse()
                        .map_err(|_| Y4mError::Format("bad width".into()))?
                }
                "H" => {
                    height = value
                        .parse()
                        .map_err(|_| Y4mError::Format("bad height".into()))?
                }
                "F" => {
                    let bad = || Y4mError::Format(format!("bad frame rate F{value}"));
                    let (n, d) = value.split_once(':').ok_or_else(bad)?;
                    let (n, d): (u32, u32) =
                        (n.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
                    // From one frame an hour to 1000 frames per second.
                    let rate = n as f64 / d as f64;
                    if n == 0 || d == 0 || !(1.0 / 3600.0..=1000.0).contains(&rate) {
                        return Err(Y4mError::Format(format!(
                            "frame rate {n}:{d} (one frame an hour to 1000 per second are read)"
                        )));
                    }
                    fps = (n, d);
                }
                "C" if !matches!(value, "420" | "420jpeg" | "420paldv" | "420mpeg2") => {
                    return Err(Y4mError::Format(format!(
                        "colour space C{value} (only 8-bit 4:2:0 is read)"
                    )))
                }
                "X" if value == "COLORRANGE=FULL" => range = ColorRange::Full,
                _ => {}
            }
        }
        if width == 0
            || height == 0
            || width > MAX_DIMENSION
            || height > MAX_DIMENSION
            || width as u64 * height as u64 > MAX_PIXELS
        {
            return Err(Y4mError::Format(format!(
                "size {width}x{height} (frames are 1 to {MAX_DIMENSION} a side, at most {MAX_PIXELS} pixels)"
            )));
        }
        Ok(Self {
            input,
            width,
            height,
            fps,
            range,
            index: 0,
        })
    }

    /// The next frame, `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<OwnedFrame>, Y4mError> {
        let mut marker = String::new();
        if self.input.by_ref().take(256).read_line(&mut marker)? == 0 {
            return Ok(None);
        }
        if !marker.starts_with("FRAME") {
            return Err(Y4mError::Format("missing FRAME marker".into()));
        }
        let (w, h) = (self.width as usize, self.height as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        // Read as the bytes arrive rather than allocated from the header's size up front: a
        // header claiming a large frame over a short file costs what the file holds.
        let mut read = |n: usize| -> Result<Vec<u8>, Y4mError> {
            let mut buf = Vec::new();
            self.input.by_ref().take(n as u64).read_to_end(&mut buf)?;
            if buf.len() < n {
                return Err(Y4mError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(buf)
        };
        let (y, u, v) = (read(w * h)?, read(c)?, read(c)?);
        let mut frame = OwnedFrame::from_i420(self.width, self.height, y, u, v, self.range);
        // At most u64::MAX * 1e6 * u32::MAX: fits in u128.
        let t = self.index as u128 * 1_000_000 * self.fps.1 as u128 / self.fps.0 as u128;
        frame.timestamp_us = i64::try_from(t)
            .map_err(|_| Y4mError::Format(format!("frame {} is too late", self.index)))?;
        self.index += 1;
        Ok(Some(frame))
    }
}

/// Writes an NV12 frame as one I420 frame of a `.y4m` stream (after [`write_header`]).
pub fn write_frame(out: &mut impl std::io::Write, frame: &OwnedFrame) -> std::io::Result<()> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let f = frame.frame().map_err(|e| invalid(e.to_string()))?;
    if f.format() != prescreen_runtime::frame::PixelFormat::Nv12 {
        return Err(invalid(format!(
            "write_frame takes NV12 frames, not {}",
            f.format()
        )));
    }
    out.write_all(b"FRAME\n")?;
    let (w, h) = (f.width() as usize, f.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let p = f.planes();
    for row in 0..h {
        out.write_all(&p[0].data[row * p[0].row_stride..][..w])?;
    }
    for k in 0..2 {
        for row in 0..ch {
            let line: Vec<u8> = (0..cw)
                .map(|x| p[1].data[row * p[1].row_stride + 2 * x + k])
                .collect();
            out.write_all(&line)?;
        }
    }
    Ok(())
}

/// Writes a `.y4m` header for I420 frames.
pub fn write_header(
    out: &mut impl std::io::Write,
    width: u32,
    height: u32,
    fps: u32,
) -> std::io::Result<()> {
    writeln!(
        out,
        "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(header: &str, frames: usize, frame_bytes: usize) -> Vec<u8> {
        let mut v = format!("{header}\n").into_bytes();
        for i in 0..frames {
            v.extend_from_slice(b"FRAME\n");
            v.extend((0..frame_bytes).map(|k| (i * 7 + k) as u8));
        }
        v
    }

    #[test]
    fn an_8_bit_420_stream_reads_with_timestamps_from_its_rate() {
        // 5x3: luma 15 bytes, each chroma plane 3x2 = 6.
        let bytes = stream("YUV4MPEG2 W5 H3 F25:2 Ip A1:1 C420jpeg", 3, 15 + 12);
        let mut r = Y4mReader::new(&bytes[..]).unwrap();
        assert_eq!((r.width, r.height, r.fps), (5, 3, (25, 2)));
        let mut ts = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            ts.push(f.timestamp_us);
        }
        assert_eq!(ts, [0, 80_000, 160_000]);
    }

    #[test]
    fn deep_or_odd_colour_spaces_absurd_sizes_and_rates_are_refused() {
        let max = MAX_DIMENSION + 1;
        for header in [
            "YUV4MPEG2 W4 H4 F30:1 C420p10",
            "YUV4MPEG2 W4 H4 F30:1 C420p12",
            "YUV4MPEG2 W4 H4 F30:1 C444",
            "YUV4MPEG2 W4 H4 F30:1 Cmono",
            &format!("YUV4MPEG2 W{max} H4 F30:1"),
            "YUV4MPEG2 W16384 H16384 F30:1",
            "YUV4MPEG2 W0 H4 F30:1",
            "YUV4MPEG2 W4 H4 F30:0",
            "YUV4MPEG2 W4 H4 F1:4294967295",
            "YUV4MPEG2 W4 H4 F4294967295:1",
            "YUV4MPEG2 W4 H4 Fx:1",
            "YUV4MPEG2 W4 H4 F30",
            "YUV4MPEG W4 H4 F30:1",
            "YUV4MPEG2 \u{32e}4 W0 H4",
        ] {
            match Y4mReader::new(header.as_bytes()) {
                Err(Y4mError::Format(_)) => {}
                Err(e) => panic!("{header}: {e}"),
                Ok(_) => panic!("{header} was accepted"),
            }
        }
    }

    #[test]
    fn a_truncated_frame_is_an_error_not_a_short_frame() {
        let mut bytes = stream("YUV4MPEG2 W4 H4 F30:1", 2, 16 + 8);
        bytes.truncate(bytes.len() - 3);
        let mut r = Y4mReader::new(&bytes[..]).unwrap();
        assert!(r.next_frame().unwrap().is_some());
        assert!(matches!(r.next_frame(), Err(Y4mError::Io(_))));
    }
}
