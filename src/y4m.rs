//! A small reader for YUV4MPEG2 (`.y4m`) files with 4:2:0 chroma.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use prescreen_runtime::frame::ColorRange;

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
            let (tag, value) = f.split_at(1.min(f.len()));
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
                    let (n, d) = value
                        .split_once(':')
                        .ok_or_else(|| Y4mError::Format("bad frame rate".into()))?;
                    fps = (n.parse().unwrap_or(30), d.parse().unwrap_or(1));
                    if fps.0 == 0 || fps.1 == 0 {
                        return Err(Y4mError::Format("zero frame rate".into()));
                    }
                }
                "C" if !value.starts_with("420") => {
                    return Err(Y4mError::Format(format!(
                        "colour space C{value} (only 4:2:0 is read)"
                    )))
                }
                "X" if value == "COLORRANGE=FULL" => range = ColorRange::Full,
                _ => {}
            }
        }
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(Y4mError::Format(format!("size {width}x{height}")));
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
        let mut read = |n: usize| -> Result<Vec<u8>, Y4mError> {
            let mut buf = vec![0u8; n];
            self.input.read_exact(&mut buf)?;
            Ok(buf)
        };
        let (y, u, v) = (read(w * h)?, read(c)?, read(c)?);
        let mut frame = OwnedFrame::from_i420(self.width, self.height, y, u, v, self.range);
        frame.timestamp_us =
            (self.index * 1_000_000 * self.fps.1 as u64 / self.fps.0 as u64) as i64;
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
