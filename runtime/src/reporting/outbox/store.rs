//! Where the outbox keeps its files: the [`Area`]s, the [`Store`] trait, the on-disk [`FsStore`]
//! and the in-memory [`MemStore`] tests use. [`FsStore`] makes each change durable by the order of
//! its file-system calls (write to `tmp/`, fsync, rename, fsync the folder); its test checks that
//! order.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::lock;
use crate::error::{Error, Result};
use crate::reporting::report::MAX_REPORT_BYTES;

/// A folder of the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    /// Reports not yet delivered.
    Pending,
    /// Reports the server refused for good, each with a `.reason.txt`.
    DeadLetter,
    /// Files found in `pending/` that are not reports.
    Quarantine,
}

impl Area {
    /// The folder's name.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::DeadLetter => "dead-letter",
            Self::Quarantine => "quarantine",
        }
    }
}

/// Where the outbox keeps its files. Writes are atomic and durable: after `write` returns, the
/// file has its new content or, after a crash, the old one; never a mix.
pub trait Store: Send {
    /// Names and sizes of the files in `area`.
    fn list(&self, area: Area) -> io::Result<Vec<(String, u64)>>;
    /// A file's content.
    fn read(&self, area: Area, name: &str) -> io::Result<Vec<u8>>;
    /// Creates or replaces a file, atomically and durably.
    fn write(&mut self, area: Area, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Removes a file (durably).
    fn remove(&mut self, area: Area, name: &str) -> io::Result<()>;
    /// Moves a file to another area (durably).
    fn rename(&mut self, from: Area, name: &str, to: Area, new_name: &str) -> io::Result<()>;
}

/// A [`Store`] in a folder: `pending/`, `dead-letter/`, `quarantine/` and `tmp/`.
///
/// A write is durable by the order of its file-system calls: the content goes to a new file in
/// `tmp/`, that file is fsynced, renamed into its area, and the area's folder is fsynced (the
/// rename itself is only durable then). Removals and moves fsync the folders they change. Every
/// such call goes through one method below, which the unit tests journal to assert that order: a
/// crash test cannot, because the page cache survives the killed process.
#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
    counter: u64,
    /// The calls made, in order (unit tests only).
    #[cfg(test)]
    journal: Vec<String>,
}

impl FsStore {
    /// Opens (creating if needed) an outbox folder, and removes partial writes left in `tmp/`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let err = |op, name: &str, source| Error::Storage {
            op,
            name: name.to_string(),
            source,
        };
        for dir in ["tmp", "pending", "dead-letter", "quarantine"] {
            fs::create_dir_all(root.join(dir)).map_err(|e| err("create", dir, e))?;
        }
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(|e| err("list", "tmp", e))? {
            let entry = entry.map_err(|e| err("list", "tmp", e))?;
            let _ = fs::remove_file(entry.path());
        }
        let mut store = Self {
            root,
            counter: 0,
            #[cfg(test)]
            journal: Vec::new(),
        };
        store.sync_dir(None)?;
        Ok(store)
    }

    /// The outbox folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, area: Area, name: &str) -> PathBuf {
        self.root.join(area.dir_name()).join(name)
    }

    /// Notes a call in the unit tests' journal, with paths relative to the root.
    #[cfg_attr(not(test), allow(unused_variables))]
    fn note(&mut self, call: &str, paths: &[&Path]) {
        #[cfg(test)]
        {
            let paths: Vec<String> = paths
                .iter()
                .map(|p| {
                    p.strip_prefix(&self.root)
                        .unwrap_or(p)
                        .display()
                        .to_string()
                })
                .collect();
            self.journal
                .push(format!("{call} {}", paths.join(" ")).trim_end().to_owned());
        }
    }

    /// Creates `path` with `bytes` and fsyncs it.
    fn write_synced(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.note("write", &[path]);
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        self.note("fsync", &[path]);
        f.sync_all()
    }

    fn rename_file(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.note("rename", &[from, to]);
        fs::rename(from, to)
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.note("remove", &[path]);
        fs::remove_file(path)
    }

    /// Fsyncs an area's folder, or the root's.
    fn sync_dir(&mut self, area: Option<Area>) -> Result<()> {
        let dir = match area {
            Some(area) => self.root.join(area.dir_name()),
            None => self.root.clone(),
        };
        self.note("fsync-dir", &[&dir]);
        // Directories cannot be opened for fsync on Windows; there rename is durable enough.
        #[cfg(unix)]
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::Storage {
                op: "fsync",
                name: dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                source: e,
            })?;
        Ok(())
    }
}

fn io_of(e: Error) -> io::Error {
    match e {
        Error::Storage { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

impl Store for FsStore {
    fn list(&self, area: Area) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join(area.dir_name()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                if meta.is_file() { meta.len() } else { 0 },
            ));
        }
        Ok(out)
    }

    fn read(&self, area: Area, name: &str) -> io::Result<Vec<u8>> {
        crate::files::read_regular(&self.path(area, name), MAX_REPORT_BYTES as u64)
    }

    fn write(&mut self, area: Area, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.counter += 1;
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{name}.{}.{}", std::process::id(), self.counter));
        let result = (|| {
            self.write_synced(&tmp, bytes)?;
            self.rename_file(&tmp, &self.path(area, name))?;
            self.sync_dir(Some(area)).map_err(io_of)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn remove(&mut self, area: Area, name: &str) -> io::Result<()> {
        self.remove_file(&self.path(area, name))?;
        self.sync_dir(Some(area)).map_err(io_of)
    }

    fn rename(&mut self, from: Area, name: &str, to: Area, new_name: &str) -> io::Result<()> {
        self.rename_file(&self.path(from, name), &self.path(to, new_name))?;
        self.sync_dir(Some(to)).map_err(io_of)?;
        self.sync_dir(Some(from)).map_err(io_of)
    }
}

/// An in-memory [`Store`] for tests, shared between clones, with a capacity (writes beyond it fail
/// as a full disk does) and a switch that makes every write fail.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    inner: Arc<Mutex<MemInner>>,
}

#[derive(Debug, Default)]
struct MemInner {
    files: BTreeMap<(Area, String), Vec<u8>>,
    capacity: Option<u64>,
    fail_writes: bool,
}

impl MemStore {
    /// An empty store without a capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes the store may hold; `None` for no limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        lock(&self.inner).capacity = bytes;
    }

    /// Makes every write fail (`true`) or succeed again.
    pub fn set_fail_writes(&self, fail: bool) {
        lock(&self.inner).fail_writes = fail;
    }

    /// Puts a file in place directly (to plant corrupt or foreign files).
    pub fn plant(&self, area: Area, name: &str, bytes: &[u8]) {
        lock(&self.inner)
            .files
            .insert((area, name.to_string()), bytes.to_vec());
    }

    /// Names of the files in `area`.
    pub fn names(&self, area: Area) -> Vec<String> {
        lock(&self.inner)
            .files
            .keys()
            .filter(|(a, _)| *a == area)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file")
}

impl Store for MemStore {
    fn list(&self, area: Area) -> io::Result<Vec<(String, u64)>> {
        Ok(lock(&self.inner)
            .files
            .iter()
            .filter(|((a, _), _)| *a == area)
            .map(|((_, n), b)| (n.clone(), b.len() as u64))
            .collect())
    }

    fn read(&self, area: Area, name: &str) -> io::Result<Vec<u8>> {
        lock(&self.inner)
            .files
            .get(&(area, name.to_string()))
            .cloned()
            .ok_or_else(not_found)
    }

    fn write(&mut self, area: Area, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut m = lock(&self.inner);
        if m.fail_writes {
            return Err(io::Error::other("write failure injected"));
        }
        let key = (area, name.to_string());
        let used: u64 = m
            .files
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(_, b)| b.len() as u64)
            .sum();
        if m.capacity.is_some_and(|c| used + bytes.len() as u64 > c) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        m.files.insert(key, bytes.to_vec());
        Ok(())
    }

    fn remove(&mut self, area: Area, name: &str) -> io::Result<()> {
        lock(&self.inner)
            .files
            .remove(&(area, name.to_string()))
            .map(drop)
            .ok_or_else(not_found)
    }

    fn rename(&mut self, from: Area, name: &str, to: Area, new_name: &str) -> io::Result<()> {
        let mut m = lock(&self.inner);
        let bytes = m
            .files
            .remove(&(from, name.to_string()))
            .ok_or_else(not_found)?;
        m.files.insert((to, new_name.to_string()), bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order of the file-system calls that make each change durable. Kills: deleting the file's
    /// fsync or a folder's, renaming before the content is synced, syncing the wrong folder.
    #[test]
    fn every_change_is_made_durable_in_order() {
        let dir = std::env::temp_dir().join(format!("prescreen-journal-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut store = FsStore::open(&dir).unwrap();
        assert_eq!(store.journal, ["fsync-dir"]);
        store.journal.clear();
        store.write(Area::Pending, "a.json", b"{}").unwrap();
        let tmp = format!("tmp/a.json.{}.1", std::process::id());
        assert_eq!(
            store.journal,
            [
                format!("write {tmp}"),
                format!("fsync {tmp}"),
                format!("rename {tmp} pending/a.json"),
                "fsync-dir pending".into(),
            ]
        );
        assert_eq!(store.read(Area::Pending, "a.json").unwrap(), b"{}");
        store.journal.clear();
        store
            .rename(Area::Pending, "a.json", Area::DeadLetter, "a.json")
            .unwrap();
        assert_eq!(
            store.journal,
            [
                "rename pending/a.json dead-letter/a.json",
                "fsync-dir dead-letter",
                "fsync-dir pending"
            ]
        );
        store.journal.clear();
        store.remove(Area::DeadLetter, "a.json").unwrap();
        assert_eq!(
            store.journal,
            ["remove dead-letter/a.json", "fsync-dir dead-letter"]
        );
        assert!(store.list(Area::DeadLetter).unwrap().is_empty());
        // A write whose rename fails (its folder is gone) leaves nothing in tmp/ and syncs no
        // folder it did not change.
        fs::remove_dir(dir.join("quarantine")).unwrap();
        store.journal.clear();
        assert!(store.write(Area::Quarantine, "b.json", b"{}").is_err());
        let tmp = format!("tmp/b.json.{}.2", std::process::id());
        assert_eq!(
            store.journal,
            [
                format!("write {tmp}"),
                format!("fsync {tmp}"),
                format!("rename {tmp} quarantine/b.json"),
            ]
        );
        assert!(fs::read_dir(dir.join("tmp")).unwrap().next().is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
