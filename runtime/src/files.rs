//! Reading files the runtime does not control (models, manifests, policies, outbox reports)
//! without trusting them: only regular files, never more than a limit.
//!
//! A path may name a FIFO (opening it for reading waits for a writer, forever), a device such as
//! `/dev/zero` (endless bytes), or a symlink to either; or a regular file that grows between a
//! size check and the read. [`read_regular`] opens without blocking, checks the opened file (not
//! the path, which could be swapped in between), and reads through a hard limit.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// Reads the whole of `path` if it is a regular file (after following symlinks) of at most
/// `limit` bytes. Anything else is an [`io::ErrorKind::InvalidInput`] error, or
/// [`io::ErrorKind::FileTooLarge`] past the limit; nothing is read beyond `limit + 1` bytes.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > limit {
        return Err(too_large(meta.len(), limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        // The file grew while it was read: it has at least this many bytes.
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read_regular`] for UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// What a [`io::ErrorKind::FileTooLarge`] error from [`read_regular`] carries: the size seen on
/// the opened file (for a file that grew while it was read, the bytes read before stopping) and
/// the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// Bytes in the file.
    pub size: u64,
    /// Bytes accepted.
    pub limit: u64,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, larger than the {} accepted",
            self.size, self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

impl TooLarge {
    /// The size and limit of a file [`read_regular`] refused as too large; `None` for any other
    /// error.
    pub fn of(e: &io::Error) -> Option<TooLarge> {
        e.get_ref()?.downcast_ref::<TooLarge>().copied()
    }
}

fn too_large(size: u64, limit: u64) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, TooLarge { size, limit })
}

/// Opens for reading without waiting: a FIFO with no writer opens at once (and is then refused
/// as not a regular file) instead of blocking the caller.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_regular(&p, 5).unwrap(), b"12345");
        assert_eq!(read_regular_text(&p, 100).unwrap(), "12345");
        let e = read_regular(&p, 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(TooLarge::of(&e), Some(TooLarge { size: 5, limit: 4 }));
        assert_eq!(e.to_string(), "5 bytes, larger than the 4 accepted");
        let missing = read_regular(&dir.path().join("missing"), 4).unwrap_err();
        assert_eq!(TooLarge::of(&missing), None);
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_regular_text(&p, 100).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[cfg(unix)]
    #[test]
    fn fifos_devices_folders_and_links_to_them_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let to_fifo = dir.path().join("to-fifo");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        for p in [&fifo, &zero, &to_fifo, &dir.path().to_path_buf()] {
            let e = read_regular(p, 1 << 20).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{}", p.display());
        }
    }
}
