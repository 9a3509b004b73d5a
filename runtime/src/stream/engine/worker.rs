//! The worker thread: takes the frame waiting in the slot, scores it, feeds the segmenter and sends
//! the events to the host's sink, until the engine finishes or stops.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::buffers::{keep_spares, FrameBuf};
use super::thumbnails::Thumbnailer;
use super::{lock, EngineOptions, Event, EventSink, Shared};
use crate::error::Error;
use crate::stream::scorer::Scorer;
use crate::stream::segmenter::{SegmentEvent, Segmenter};

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) scorer: Scorer,
    pub(super) segmenter: Segmenter,
    pub(super) thumbnails: Thumbnailer,
    pub(super) sink: EventSink,
    pub(super) options: EngineOptions,
    /// Recent scored frames: (timestamp, when submitted), to time detections.
    pub(super) crossings: VecDeque<(i64, Instant)>,
}

impl Worker {
    pub(super) fn run(mut self) {
        let mut events = Vec::new();
        let mut last_t = 0;
        loop {
            let (mut buf, finishing) = {
                let mut slot = lock(&self.shared.slot);
                loop {
                    if slot.stopping {
                        return;
                    }
                    if let Some(buf) = slot.waiting.take() {
                        slot.gate.scored(buf.timestamp_us, buf.signature.clone());
                        slot.busy = true;
                        break (Some(buf), false);
                    }
                    if slot.finishing {
                        break (None, true);
                    }
                    slot = self
                        .shared
                        .wake
                        .wait(slot)
                        .unwrap_or_else(|p| p.into_inner());
                }
            };
            if finishing {
                self.segmenter.finish(last_t, &mut events);
                self.emit(&mut events);
                self.shared.wake.notify_all();
                return;
            }
            if let Some(buf) = buf.as_mut() {
                keep_spares(&self.shared.front, buf.data.len());
                last_t = last_t.max(buf.timestamp_us);
                self.score(buf, &mut events);
            }
            if let Some(mut buf) = buf {
                // The host's buffer goes back now, outside the engine's locks.
                drop(buf.lent.take());
                lock(&self.shared.front).spares.push(buf);
            }
            lock(&self.shared.slot).busy = false;
            self.shared.wake.notify_all();
        }
    }

    fn score(&mut self, buf: &FrameBuf, events: &mut Vec<SegmentEvent>) {
        let s = &*self.shared;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match buf.frame() {
            Ok(frame) => self.scorer.score(&frame),
            Err(e) => Err(Error::Frame(e)),
        }));
        let screened = match result {
            Ok(Ok(screened)) => screened,
            Ok(Err(e)) => return self.fail(e.to_string()),
            Err(_) => return self.fail("preprocessing or inference panicked".into()),
        };
        s.scored.fetch_add(1, Ordering::Relaxed);
        {
            let mut m = lock(&s.latencies);
            m.preprocess.record(screened.preprocess);
            m.infer.record(screened.infer);
            m.backend = Some(self.scorer.active_backend());
            m.gpu_fallbacks = self.scorer.preprocessor().fallbacks();
        }
        let t = buf.timestamp_us;
        if let Some(at) = buf.submitted {
            self.crossings.push_back((t, at));
            if self.crossings.len() > 256 {
                self.crossings.pop_front();
            }
        }
        if self.options.emit_scores {
            (self.sink)(Event::Scored {
                timestamp_us: t,
                scores: screened.scores.probabilities.clone(),
            });
        }
        self.segmenter
            .observe(t, &screened.scores.probabilities, events);
        self.shared
            .burst
            .store(self.segmenter.wants_burst(), Ordering::Relaxed);
        if self.segmenter.evidence_wanted().any(|w| w == t) {
            if let Ok(frame) = buf.frame() {
                self.thumbnails.keep(&frame);
            }
        }
        self.emit(events);
        // Forget pictures no forming or open segment still wants (closed ones took theirs).
        let wanted: Vec<i64> = self.segmenter.evidence_wanted().collect();
        self.thumbnails.retain(&wanted);
    }

    fn fail(&mut self, message: String) {
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        log::warn!("frame not scored: {message}");
        (self.sink)(Event::Error(message));
    }

    fn emit(&mut self, events: &mut Vec<SegmentEvent>) {
        for e in events.drain(..) {
            if let SegmentEvent::Opened(seg) = &e {
                if let Some(&(_, at)) = self.crossings.iter().find(|(t, _)| *t == seg.crossed_us) {
                    lock(&self.shared.latencies).detection.record(at.elapsed());
                }
            }
            let thumbnails = match &e {
                SegmentEvent::Closed(seg) => self.thumbnails.take(&seg.evidence),
                _ => Vec::new(),
            };
            (self.sink)(Event::Segment(e, thumbnails));
        }
    }
}
