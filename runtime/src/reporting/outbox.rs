//! The durable outbox: reports wait here, on disk, until the server has them.
//!
//! Each report is one file `pending/<report_id>.json`, written to `tmp/`, fsynced, renamed into
//! place and the folder fsynced ([`FsStore`]), so a crash at any instant leaves either the whole
//! report or nothing, and a report whose [`Outbox::put`] returned survives. `tmp/` is emptied when
//! an outbox is opened; only complete files are ever listed as pending.
//!
//! The bookkeeping (index, disk budget, quarantine, dead letters) works on any [`Store`];
//! [`MemStore`] is the in-memory one tests use, with injectable failures (a full disk).
//!
//! **Disk budget.** When pending reports exceed [`OutboxOptions::budget_bytes`], the thumbnails of
//! the oldest reports are dropped first (their metadata stays); only when no thumbnail is left are
//! whole reports evicted, oldest first, never the one just written. The host is told through
//! [`OutboxEvent`]s and [`OutboxMetrics`].
//!
//! **Foreign and corrupt files** in `pending/` are moved to `quarantine/` when the outbox is opened,
//! reported, and never block the other reports.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::reporting::report::{
    check_id, now_unix_millis, Report, ReportContext, MAX_REPORT_BYTES,
};
use crate::stream::engine::{Event, EventSink};
use crate::stream::segmenter::SegmentEvent;

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the outbox tells the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxEvent {
    /// A report was stored durably.
    Stored {
        /// Its id.
        report_id: String,
    },
    /// The disk budget dropped a report's thumbnails (its metadata stays pending).
    ThumbnailsDropped {
        /// The report.
        report_id: String,
        /// Thumbnails removed.
        count: usize,
    },
    /// The disk budget was still exceeded without any thumbnail: a whole report was removed.
    ReportEvicted {
        /// The report.
        report_id: String,
    },
    /// A file in `pending/` was not a valid report and was moved to `quarantine/`.
    Quarantined {
        /// Its name in `quarantine/`.
        file: String,
        /// Why.
        reason: String,
    },
    /// The server refused a report for good; it moved to `dead-letter/`.
    DeadLettered {
        /// The report.
        report_id: String,
        /// Why (HTTP status and a short reason).
        reason: String,
    },
}

/// Receives [`OutboxEvent`]s, on whichever thread caused them.
pub type OutboxSink = Arc<dyn Fn(OutboxEvent) + Send + Sync>;

/// Outbox settings.
#[derive(Clone)]
pub struct OutboxOptions {
    /// Bytes the pending reports may take (default 32 MiB).
    pub budget_bytes: u64,
    /// Where events go (default: only `log`).
    pub events: Option<OutboxSink>,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            budget_bytes: 32 << 20,
            events: None,
        }
    }
}

impl std::fmt::Debug for OutboxOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxOptions")
            .field("budget_bytes", &self.budget_bytes)
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// Counters of an outbox (since it was opened, but `pending*`, which are current).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxMetrics {
    /// Reports pending now.
    pub pending: u64,
    /// Bytes they take.
    pub pending_bytes: u64,
    /// Reports stored.
    pub stored: u64,
    /// Reports acknowledged (delivered).
    pub acked: u64,
    /// Thumbnails dropped by the budget.
    pub thumbnails_dropped: u64,
    /// Reports evicted whole by the budget.
    pub reports_evicted: u64,
    /// Files quarantined.
    pub quarantined: u64,
    /// Reports moved to the dead-letter folder.
    pub dead_lettered: u64,
    /// Writes that failed (disk full, I/O error); the report stayed with the caller.
    pub write_failures: u64,
}

/// A report waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingReport {
    /// Its id (the idempotency key).
    pub report_id: String,
    /// Size of its JSON.
    pub bytes: u64,
    /// When it was made.
    pub created_unix_millis: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    report_id: String,
    bytes: u64,
    created: u64,
    thumbnails: usize,
}

struct Inner {
    store: Box<dyn Store>,
    /// Pending reports, oldest first.
    index: Vec<Entry>,
    metrics: OutboxMetrics,
}

/// The durable outbox. All methods take `&self`; share it with `Arc`.
pub struct Outbox {
    inner: Mutex<Inner>,
    options: OutboxOptions,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn file_name(id: &str) -> String {
    format!("{id}.json")
}

fn storage<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Storage {
        op,
        name: name.to_string(),
        source,
    }
}

impl Outbox {
    /// Opens the outbox in folder `dir` (created if needed).
    pub fn open(dir: impl AsRef<Path>, options: OutboxOptions) -> Result<Self> {
        Self::with_store(Box::new(FsStore::open(dir)?), options)
    }

    /// Opens an outbox on any store: indexes the pending reports and quarantines what is not one.
    pub fn with_store(store: Box<dyn Store>, options: OutboxOptions) -> Result<Self> {
        let outbox = Self {
            inner: Mutex::new(Inner {
                store,
                index: Vec::new(),
                metrics: OutboxMetrics::default(),
            }),
            options,
        };
        let mut events = Vec::new();
        {
            let mut inner = lock(&outbox.inner);
            let files = inner
                .store
                .list(Area::Pending)
                .map_err(storage("list", "pending"))?;
            for (name, _) in files {
                match Self::load_entry(&*inner.store, &name) {
                    Ok(entry) => inner.index.push(entry),
                    Err(reason) => Self::quarantine(&mut inner, &name, reason, &mut events),
                }
            }
            inner
                .index
                .sort_by(|a, b| (a.created, &a.report_id).cmp(&(b.created, &b.report_id)));
            Self::refresh(&mut inner);
        }
        outbox.emit(events);
        Ok(outbox)
    }

    fn load_entry(store: &dyn Store, name: &str) -> std::result::Result<Entry, String> {
        let id = name
            .strip_suffix(".json")
            .filter(|id| check_id(id).is_ok())
            .ok_or("not a report file name")?;
        let bytes = store
            .read(Area::Pending, name)
            .map_err(|e| format!("unreadable: {e}"))?;
        let report = Report::from_json(&bytes).map_err(|e| e.to_string())?;
        if report.report_id != id {
            return Err("its report id differs from its file name".into());
        }
        Ok(Entry {
            report_id: report.report_id.clone(),
            bytes: bytes.len() as u64,
            created: report.created_unix_millis,
            thumbnails: report.thumbnails(),
        })
    }

    fn quarantine(inner: &mut Inner, name: &str, reason: String, events: &mut Vec<OutboxEvent>) {
        // A unique name in quarantine/, free of anything but safe characters: time and a sequence
        // number keep two names that sanitise alike (`a b`, `a?b`) from replacing each other.
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        let target = format!("{}-{}-{safe}", now_unix_millis(), inner.metrics.quarantined);
        match inner
            .store
            .rename(Area::Pending, name, Area::Quarantine, &target)
        {
            Ok(()) => {
                log::warn!("outbox: quarantined {target}: {reason}");
                inner.metrics.quarantined += 1;
                events.push(OutboxEvent::Quarantined {
                    file: target,
                    reason,
                });
            }
            Err(e) => log::error!("outbox: cannot quarantine a file in pending/: {e}"),
        }
    }

    fn refresh(inner: &mut Inner) {
        inner.metrics.pending = inner.index.len() as u64;
        inner.metrics.pending_bytes = inner.index.iter().map(|e| e.bytes).sum();
    }

    fn emit(&self, events: Vec<OutboxEvent>) {
        if let Some(sink) = &self.options.events {
            for e in events {
                sink(e);
            }
        }
    }

    /// Stores a report durably (replacing a pending one with the same id), then applies the disk
    /// budget. When this returns `Ok`, the report survives a crash. On `Err` nothing changed.
    pub fn put(&self, report: &Report) -> Result<()> {
        check_id(&report.report_id)?;
        let bytes = report.to_json();
        let name = file_name(&report.report_id);
        let mut events = Vec::new();
        {
            let mut inner = lock(&self.inner);
            if let Err(e) = inner.store.write(Area::Pending, &name, &bytes) {
                inner.metrics.write_failures += 1;
                return Err(storage("write", &name)(e));
            }
            inner.index.retain(|e| e.report_id != report.report_id);
            inner.index.push(Entry {
                report_id: report.report_id.clone(),
                bytes: bytes.len() as u64,
                created: report.created_unix_millis,
                thumbnails: report.thumbnails(),
            });
            inner.metrics.stored += 1;
            events.push(OutboxEvent::Stored {
                report_id: report.report_id.clone(),
            });
            self.enforce_budget(&mut inner, &report.report_id, &mut events);
            Self::refresh(&mut inner);
        }
        self.emit(events);
        Ok(())
    }

    fn enforce_budget(&self, inner: &mut Inner, keep: &str, events: &mut Vec<OutboxEvent>) {
        let budget = self.options.budget_bytes;
        let total = |inner: &Inner| inner.index.iter().map(|e| e.bytes).sum::<u64>();
        while total(inner) > budget {
            // Thumbnails first, oldest report first.
            if let Some(i) = inner.index.iter().position(|e| e.thumbnails > 0) {
                let id = inner.index[i].report_id.clone();
                match Self::strip(inner, &id) {
                    Ok((bytes, count)) => {
                        inner.index[i].bytes = bytes;
                        inner.index[i].thumbnails = 0;
                        inner.metrics.thumbnails_dropped += count as u64;
                        log::info!("outbox over budget: dropped {count} thumbnails of {id}");
                        events.push(OutboxEvent::ThumbnailsDropped {
                            report_id: id,
                            count,
                        });
                    }
                    Err(e) => {
                        // Leave it as it is; the budget is best effort when the disk fails.
                        log::error!("outbox: cannot drop thumbnails of {id}: {e}");
                        inner.index[i].thumbnails = 0;
                    }
                }
                continue;
            }
            let Some(i) = inner.index.iter().position(|e| e.report_id != keep) else {
                break;
            };
            let id = inner.index[i].report_id.clone();
            if let Err(e) = inner.store.remove(Area::Pending, &file_name(&id)) {
                log::error!("outbox: cannot evict {id}: {e}");
                break;
            }
            inner.index.remove(i);
            inner.metrics.reports_evicted += 1;
            log::warn!("outbox over budget with metadata alone: evicted report {id}");
            events.push(OutboxEvent::ReportEvicted { report_id: id });
        }
    }

    /// Rewrites a pending report without thumbnails; returns its new size and how many were dropped.
    fn strip(inner: &mut Inner, id: &str) -> Result<(u64, usize)> {
        let name = file_name(id);
        let bytes = inner
            .store
            .read(Area::Pending, &name)
            .map_err(storage("read", &name))?;
        let mut report = Report::from_json(&bytes)?;
        let count = report.drop_thumbnails();
        let bytes = report.to_json();
        inner
            .store
            .write(Area::Pending, &name, &bytes)
            .map_err(storage("write", &name))?;
        Ok((bytes.len() as u64, count))
    }

    /// The pending reports, oldest first.
    pub fn pending(&self) -> Vec<PendingReport> {
        lock(&self.inner)
            .index
            .iter()
            .map(|e| PendingReport {
                report_id: e.report_id.clone(),
                bytes: e.bytes,
                created_unix_millis: e.created,
            })
            .collect()
    }

    /// The JSON of a pending report, as it is to be sent.
    pub fn read(&self, report_id: &str) -> Result<Vec<u8>> {
        check_id(report_id)?;
        let inner = lock(&self.inner);
        if !inner.index.iter().any(|e| e.report_id == report_id) {
            return Err(Error::UnknownReport(report_id.to_string()));
        }
        let name = file_name(report_id);
        inner
            .store
            .read(Area::Pending, &name)
            .map_err(storage("read", &name))
    }

    /// Marks a report delivered and removes it. Returns `false` when it was not pending (already
    /// acknowledged, evicted or dead-lettered): acknowledging twice is harmless.
    pub fn ack(&self, report_id: &str) -> Result<bool> {
        check_id(report_id)?;
        let mut inner = lock(&self.inner);
        let Some(i) = inner.index.iter().position(|e| e.report_id == report_id) else {
            return Ok(false);
        };
        let name = file_name(report_id);
        match inner.store.remove(Area::Pending, &name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage("remove", &name)(e)),
        }
        inner.index.remove(i);
        inner.metrics.acked += 1;
        Self::refresh(&mut inner);
        Ok(true)
    }

    /// Moves a report the server refused for good to `dead-letter/`, with `reason` beside it.
    pub fn dead_letter(&self, report_id: &str, reason: &str) -> Result<()> {
        check_id(report_id)?;
        let name = file_name(report_id);
        {
            let mut inner = lock(&self.inner);
            let Some(i) = inner.index.iter().position(|e| e.report_id == report_id) else {
                return Err(Error::UnknownReport(report_id.to_string()));
            };
            let reason_name = format!("{report_id}.reason.txt");
            inner
                .store
                .write(Area::DeadLetter, &reason_name, reason.as_bytes())
                .map_err(storage("write", &reason_name))?;
            inner
                .store
                .rename(Area::Pending, &name, Area::DeadLetter, &name)
                .map_err(storage("move", &name))?;
            inner.index.remove(i);
            inner.metrics.dead_lettered += 1;
            Self::refresh(&mut inner);
        }
        log::warn!("outbox: report {report_id} dead-lettered: {reason}");
        self.emit(vec![OutboxEvent::DeadLettered {
            report_id: report_id.to_string(),
            reason: reason.to_string(),
        }]);
        Ok(())
    }

    /// Ids of the dead-lettered reports.
    pub fn dead_letters(&self) -> Result<Vec<String>> {
        let inner = lock(&self.inner);
        let mut ids: Vec<String> = inner
            .store
            .list(Area::DeadLetter)
            .map_err(storage("list", "dead-letter"))?
            .into_iter()
            .filter_map(|(n, _)| n.strip_suffix(".json").map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> OutboxMetrics {
        lock(&self.inner).metrics.clone()
    }
}

/// Reports queued by [`reporting_sink`] whose `put` failed, kept for the next attempt (bounded).
const MAX_UNSTORED: usize = 64;

/// Counts reports that a [`reporting_sink`] could not store even after retrying (shared so the
/// host can read it).
#[derive(Debug, Default)]
pub struct ReportingStats {
    /// Reports given up on: the store kept failing while more than the retry list holds arrived,
    /// or was still failing when the stream ended. Each one was also sent as [`Event::Error`].
    pub lost: AtomicU64,
}

/// Wraps the host's engine sink: every closed segment becomes a report in `outbox` (then
/// [`Event::ReportQueued`] follows the `Closed` event). A report whose write fails (full disk,
/// read-only storage) is kept in memory and retried with each later event, up to a bound, and
/// once more when the stream ends (the engine drops its sink when its worker stops, after
/// `finish` or on drop). A report that still cannot be stored then is counted in
/// [`ReportingStats::lost`] and sent as [`Event::Error`]: none vanishes uncounted.
pub fn reporting_sink(
    context: ReportContext,
    outbox: Arc<Outbox>,
    stats: Arc<ReportingStats>,
    host: EventSink,
) -> EventSink {
    let mut sink = ReportingSink {
        context,
        outbox,
        stats,
        host,
        unstored: Vec::new(),
    };
    Box::new(move |event: Event| sink.handle(event))
}

/// The state behind [`reporting_sink`].
struct ReportingSink {
    context: ReportContext,
    outbox: Arc<Outbox>,
    stats: Arc<ReportingStats>,
    host: EventSink,
    /// Reports whose `put` failed, oldest first, to retry (at most [`MAX_UNSTORED`]).
    unstored: Vec<Report>,
}

impl ReportingSink {
    fn handle(&mut self, event: Event) {
        let mut queued = Vec::new();
        if let Event::Segment(SegmentEvent::Closed(segment), thumbnails) = &event {
            match self.context.build(segment, thumbnails, now_unix_millis()) {
                Ok(report) => self.unstored.push(report),
                Err(e) => {
                    // Nothing to store or retry: this report is lost, and counted.
                    self.stats.lost.fetch_add(1, Ordering::Relaxed);
                    log::error!("report of segment {} lost: not built: {e}", segment.id);
                    queued.push(Event::Error(format!(
                        "report of segment {} lost: not built: {e}",
                        segment.id
                    )));
                }
            }
        }
        self.store_unstored(&mut queued, false);
        (self.host)(event);
        for e in queued {
            (self.host)(e);
        }
    }

    /// Tries to store every unstored report. A failure keeps the report for later while there is
    /// room and the stream goes on (`last` false); otherwise the report is lost, and counted.
    fn store_unstored(&mut self, queued: &mut Vec<Event>, last: bool) {
        for report in std::mem::take(&mut self.unstored) {
            match self.outbox.put(&report) {
                Ok(()) => queued.push(Event::ReportQueued {
                    report_id: report.report_id.clone(),
                    label: report.label.clone(),
                }),
                Err(e) if !last && self.unstored.len() < MAX_UNSTORED => {
                    queued.push(Event::Error(format!(
                        "report {} not stored yet: {e}",
                        report.report_id
                    )));
                    self.unstored.push(report);
                }
                Err(e) => {
                    self.stats.lost.fetch_add(1, Ordering::Relaxed);
                    let why = if last {
                        "the stream ended"
                    } else {
                        "too many reports wait"
                    };
                    log::error!("report {} lost ({why}): {e}", report.report_id);
                    queued.push(Event::Error(format!(
                        "report {} lost: it could not be stored and {why}: {e}",
                        report.report_id
                    )));
                }
            }
        }
    }
}

impl Drop for ReportingSink {
    /// The stream ended: one last attempt for each unstored report, then it is lost and counted.
    fn drop(&mut self) {
        if self.unstored.is_empty() {
            return;
        }
        let mut queued = Vec::new();
        self.store_unstored(&mut queued, true);
        for e in queued {
            (self.host)(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::report::fixtures::{context, segment};
    use crate::stream::engine::Thumbnail;

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

    /// The report of segment `n` with `thumbs` 8x8 thumbnails.
    fn report(n: u64, thumbs: usize) -> Report {
        let segment = segment(n, thumbs);
        let thumbnails: Vec<Thumbnail> = segment.evidence[..thumbs]
            .iter()
            .map(|&(t, _)| Thumbnail {
                timestamp_us: t,
                width: 8,
                height: 8,
                rgb: vec![(n * 40) as u8; 8 * 8 * 3],
            })
            .collect();
        context().build(&segment, &thumbnails, 1_000 + n).unwrap()
    }

    fn size(report: &Report) -> u64 {
        report.to_json().len() as u64
    }

    fn mem_outbox(budget_bytes: u64) -> (Outbox, MemStore) {
        let store = MemStore::new();
        let options = OutboxOptions {
            budget_bytes,
            events: None,
        };
        let outbox = Outbox::with_store(Box::new(store.clone()), options).unwrap();
        (outbox, store)
    }

    fn assert_full(result: Result<()>) {
        match result {
            Err(Error::Storage {
                op: "write",
                source,
                ..
            }) if source.kind() == io::ErrorKind::StorageFull => {}
            other => panic!("expected a full store, got {other:?}"),
        }
    }

    /// A `MemStore`'s capacity is inclusive and counts every file but the one being replaced: a
    /// report that exactly fills it is stored and can be stored again, one byte less of room
    /// refuses it, and a second report does not fit beside it. Fails if the capacity test became
    /// `>=`, `==` or `<`, its `+` became `*`, or if `used` counted only the replaced file (`!=`
    /// became `==`).
    #[test]
    fn memstore_capacity_is_inclusive_and_a_replaced_file_is_not_counted() {
        let (a, b) = (report(1, 0), report(2, 0));
        let (outbox, store) = mem_outbox(u64::MAX);
        store.set_capacity(Some(size(&a) - 1));
        assert_full(outbox.put(&a));
        store.set_capacity(Some(size(&a)));
        outbox.put(&a).unwrap();
        outbox.put(&a).unwrap();
        assert_full(outbox.put(&b));
        store.set_capacity(Some(size(&a) + size(&b)));
        outbox.put(&b).unwrap();
        assert_eq!(outbox.metrics().write_failures, 2);
        assert_eq!(outbox.pending().len(), 2);
    }

    /// The disk budget is inclusive: reports that exactly fill it keep their thumbnails; with one
    /// byte less the oldest report loses its two. Fails if the budget test `total > budget`
    /// became `>=` or `==`.
    #[test]
    fn reports_that_exactly_fill_the_budget_keep_their_thumbnails() {
        let (a, b) = (report(1, 2), report(2, 2));
        let budget = size(&a) + size(&b);
        let (outbox, _) = mem_outbox(budget);
        outbox.put(&a).unwrap();
        outbox.put(&b).unwrap();
        let m = outbox.metrics();
        assert_eq!(
            (
                m.pending,
                m.pending_bytes,
                m.thumbnails_dropped,
                m.reports_evicted
            ),
            (2, budget, 0, 0)
        );

        let (outbox, _) = mem_outbox(budget - 1);
        outbox.put(&a).unwrap();
        outbox.put(&b).unwrap();
        let m = outbox.metrics();
        assert_eq!(
            (m.pending, m.thumbnails_dropped, m.reports_evicted),
            (2, 2, 0)
        );
        let thumbnails = |r: &Report| {
            Report::from_json(&outbox.read(&r.report_id).unwrap())
                .unwrap()
                .thumbnails()
        };
        assert_eq!((thumbnails(&a), thumbnails(&b)), (0, 2));
    }

    /// Acknowledging a report whose file already vanished (removed behind the outbox's back)
    /// succeeds and forgets it. Fails if the `NotFound` guard of `ack` was negated or replaced
    /// with `false`.
    #[test]
    fn acking_a_report_whose_file_vanished_succeeds() {
        let (outbox, store) = mem_outbox(u64::MAX);
        let r = report(1, 0);
        outbox.put(&r).unwrap();
        let mut behind = store.clone();
        behind
            .remove(Area::Pending, &file_name(&r.report_id))
            .unwrap();
        assert!(outbox.ack(&r.report_id).unwrap());
        assert!(outbox.pending().is_empty());
        assert_eq!(outbox.metrics().acked, 1);
    }

    /// A removal that fails for any other reason than a missing file (here the report's file was
    /// replaced by a folder, which unlink refuses) is a storage error, and the report stays
    /// pending. Fails if the `NotFound` guard of `ack` was replaced with `true` or negated.
    #[test]
    fn acking_fails_when_the_file_cannot_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), OutboxOptions::default()).unwrap();
        let r = report(1, 0);
        outbox.put(&r).unwrap();
        let path = dir.path().join("pending").join(file_name(&r.report_id));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        match outbox.ack(&r.report_id) {
            Err(Error::Storage { op: "remove", .. }) => {}
            other => panic!("expected a storage error, got {other:?}"),
        }
        assert_eq!(outbox.pending().len(), 1);
        assert_eq!(outbox.metrics().acked, 0);
    }

    /// Every counter after four puts (one replacing a pending report), an ack and a dead letter:
    /// 4 stored, 1 acked, 1 dead-lettered, one report pending with its bytes. Fails if a
    /// counter's `+= 1` became `*= 1` (stuck at 0), or a replaced report were indexed twice.
    #[test]
    fn counters_count_each_operation_once() {
        let (a, b, c) = (report(1, 0), report(2, 0), report(3, 0));
        let (outbox, _) = mem_outbox(u64::MAX);
        for r in [&a, &b, &c, &b] {
            outbox.put(r).unwrap();
        }
        assert_eq!(outbox.pending().len(), 3);
        assert!(outbox.ack(&a.report_id).unwrap());
        outbox.dead_letter(&c.report_id, "HTTP 400").unwrap();
        assert_eq!(
            outbox.metrics(),
            OutboxMetrics {
                pending: 1,
                pending_bytes: size(&b),
                stored: 4,
                acked: 1,
                thumbnails_dropped: 0,
                reports_evicted: 0,
                quarantined: 0,
                dead_lettered: 1,
                write_failures: 0,
            }
        );
    }

    /// A quarantined file is renamed `<millis>-<sequence>-<name>`, the name keeping letters,
    /// digits, `.` and `-` and every other character becoming `_`. Fails if an `||` of the
    /// character test became `&&`, or one of its `==` became `!=`.
    #[test]
    fn quarantined_names_keep_only_safe_characters() {
        let store = MemStore::new();
        for name in ["../up.json", "a b.json", "x-Y.9?.txt"] {
            store.plant(Area::Pending, name, b"{}");
        }
        let outbox = Outbox::with_store(Box::new(store.clone()), OutboxOptions::default()).unwrap();
        assert_eq!(outbox.metrics().quarantined, 3);
        let mut names: Vec<(u64, String)> = store
            .names(Area::Quarantine)
            .iter()
            .map(|n| {
                let mut parts = n.splitn(3, '-');
                let millis = parts.next().unwrap();
                assert!(millis.parse::<u64>().is_ok(), "{n}");
                let sequence = parts.next().unwrap().parse().unwrap();
                (sequence, parts.next().unwrap().to_string())
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                (0, ".._up.json".to_string()),
                (1, "a_b.json".to_string()),
                (2, "x-Y.9_.txt".to_string())
            ]
        );
    }

    /// The debug output of the options and of the outbox shows the budget (32 MiB = 33554432
    /// bytes by default) and whether an event sink is set, never the sink. Fails if either `fmt`
    /// wrote nothing.
    #[test]
    fn debug_output_shows_the_options() {
        assert_eq!(
            format!("{:?}", OutboxOptions::default()),
            "OutboxOptions { budget_bytes: 33554432, events: false }"
        );
        let options = OutboxOptions {
            budget_bytes: 1234,
            events: Some(Arc::new(|_| {})),
        };
        let outbox = Outbox::with_store(Box::new(MemStore::new()), options).unwrap();
        assert_eq!(
            format!("{outbox:?}"),
            "Outbox { options: OutboxOptions { budget_bytes: 1234, events: true }, .. }"
        );
    }

    /// While the stream runs, at most 64 reports wait for a failing store: the 65th is lost,
    /// counted once and reported; the 64 kept are stored once the store works again. Fails if the
    /// bound `unstored.len() < MAX_UNSTORED` became `<=` (65 kept).
    #[test]
    fn at_most_64_unstored_reports_wait_for_the_store() {
        let (outbox, store) = mem_outbox(u64::MAX);
        let outbox = Arc::new(outbox);
        let stats = Arc::new(ReportingStats::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let mut sink = reporting_sink(
            context(),
            outbox.clone(),
            stats.clone(),
            Box::new(move |e| drop(tx.send(e))),
        );
        store.set_fail_writes(true);
        for n in 1..=65 {
            sink(Event::Segment(SegmentEvent::Closed(segment(n, 0)), vec![]));
        }
        assert_eq!(stats.lost.load(Ordering::Relaxed), 1);
        let lost = rx
            .try_iter()
            .filter(|e| {
                matches!(e, Event::Error(m) if m.contains("could not be stored and too many reports wait"))
            })
            .count();
        assert_eq!(lost, 1);
        store.set_fail_writes(false);
        sink(Event::Error("any later event retries".into()));
        assert_eq!(outbox.pending().len(), 64);
        drop(sink);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 1);
    }
}
