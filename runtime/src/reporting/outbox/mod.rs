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

mod sink;
mod store;

pub use sink::{reporting_sink, ReportingStats};
pub use store::{Area, FsStore, MemStore, Store};

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::reporting::report::{check_id, now_unix_millis, Report};

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

#[cfg(test)]
mod tests;
