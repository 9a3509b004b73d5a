//! [`reporting_sink`]: the engine sink that turns each closed segment into a report in the
//! outbox, retrying a failed write and counting what it loses. It lives beside the outbox, not in
//! it, so the outbox stays pure storage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Outbox;
use crate::reporting::report::{now_unix_millis, Report, ReportContext};
use crate::stream::engine::{Event, EventSink};
use crate::stream::segmenter::SegmentEvent;

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
