//! From noisy per-frame scores to flagged segments: smoothing, hysteresis, minimum duration,
//! pre/post-roll and merging, one state machine per label.
//!
//! No clock, no threads, no I/O: timestamps and scores come in, events go out, so the same logic
//! runs in the engine, in tests with scripted scores, and in any binding.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::policy::{LabelPolicy, Policy, Segments};

/// A segment as known when an event is emitted.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Sequence number of the segment in this stream (per segmenter), from 1.
    pub id: u64,
    /// The label flagged.
    pub label: Arc<str>,
    /// Timestamp of the stream's first scored frame (reports give times relative to it).
    pub stream_start_us: i64,
    /// Start, with pre-roll, in microseconds (never before the stream's first frame).
    pub start_us: i64,
    /// End: for a closed segment the last frame above `exit` plus post-roll (never after the
    /// stream's last frame); while open, the last frame above `exit`.
    pub end_us: i64,
    /// Time of the first frame of the run that opened the segment (its smoothed score crossed `enter`).
    pub crossed_us: i64,
    /// Highest smoothed score.
    pub peak: f32,
    /// Time of the peak.
    pub peak_us: i64,
    /// Mean smoothed score over the frames scored inside the segment.
    pub mean: f32,
    /// Frames scored inside the segment.
    pub frames_scored: u32,
    /// The best evidence frames: `(timestamp_us, smoothed score)`, highest score first.
    pub evidence: Vec<(i64, f32)>,
}

impl Segment {
    /// Duration in microseconds.
    pub fn duration_us(&self) -> i64 {
        self.end_us - self.start_us
    }
}

/// What the segmenter decided on a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum SegmentEvent {
    /// A run above `enter` lasted the minimum duration.
    Opened(Segment),
    /// The peak of an open segment moved.
    Updated(Segment),
    /// The segment ended: the score stayed below `exit` for the merge gap (at least pre-roll +
    /// post-roll, so segments never overlap), or the stream ended.
    Closed(Segment),
}

impl SegmentEvent {
    /// The segment the event is about.
    pub fn segment(&self) -> &Segment {
        match self {
            Self::Opened(s) | Self::Updated(s) | Self::Closed(s) => s,
        }
    }
}

#[derive(Clone, Debug)]
struct Stats {
    crossed_us: i64,
    last_above_us: i64,
    peak: f32,
    peak_us: i64,
    sum: f64,
    frames: u32,
    evidence: Vec<(i64, f32)>,
}

impl Stats {
    fn new(t: i64) -> Self {
        Self {
            crossed_us: t,
            last_above_us: t,
            peak: f32::MIN,
            peak_us: t,
            sum: 0.0,
            frames: 0,
            evidence: Vec::new(),
        }
    }

    /// Adds a frame; true when the peak moved.
    fn add(&mut self, t: i64, s: f32, keep: usize) -> bool {
        self.sum += s as f64;
        self.frames += 1;
        self.add_evidence(t, s, keep);
        if s > self.peak {
            self.peak = s;
            self.peak_us = t;
            return true;
        }
        false
    }

    fn merge(&mut self, other: Stats, keep: usize) {
        for (t, s) in other.evidence {
            self.add_evidence(t, s, keep);
        }
        self.sum += other.sum;
        self.frames += other.frames;
        if other.peak > self.peak {
            self.peak = other.peak;
            self.peak_us = other.peak_us;
        }
    }

    /// Keeps `(t, s)` if it is among the `keep` best frames (ties: the earlier frame first).
    fn add_evidence(&mut self, t: i64, s: f32, keep: usize) {
        let at = self.evidence.partition_point(|&(_, e)| e >= s);
        if at < keep {
            self.evidence.insert(at, (t, s));
            self.evidence.truncate(keep);
        }
    }
}

#[derive(Clone, Debug)]
enum State {
    Idle,
    /// Above `enter` since `stats.crossed_us`, not yet for the minimum duration.
    Candidate(Stats),
    /// Open; `cooling` holds the frames since the score fell below `exit`, if it has.
    Open {
        id: u64,
        stats: Stats,
        cooling: Option<Stats>,
    },
}

/// The state machine of one label.
#[derive(Clone, Debug)]
struct Track {
    label: Arc<str>,
    index: usize,
    thresholds: LabelPolicy,
    window: VecDeque<f32>,
    smoothed: f32,
    state: State,
}

/// Segments for every label a policy flags.
#[derive(Clone, Debug)]
pub struct Segmenter {
    tracks: Vec<Track>,
    shape: Segments,
    window: usize,
    keep: usize,
    next_id: u64,
    first_us: Option<i64>,
    last_us: i64,
}

impl Segmenter {
    /// A segmenter for a model with `labels` (in output order) under `policy`. Labels the policy does
    /// not name are ignored; policy labels the model lacks are ignored too.
    pub fn new(policy: &Policy, labels: &[String]) -> Self {
        let tracks = labels
            .iter()
            .enumerate()
            .filter_map(|(index, name)| {
                policy.labels.get(name).map(|&thresholds| Track {
                    label: Arc::from(name.as_str()),
                    index,
                    thresholds,
                    window: VecDeque::with_capacity(policy.smoothing.window),
                    smoothed: 0.0,
                    state: State::Idle,
                })
            })
            .collect();
        Self {
            tracks,
            shape: policy.segments,
            window: policy.smoothing.window,
            keep: policy.evidence.thumbnails,
            next_id: 1,
            first_us: None,
            last_us: 0,
        }
    }

    /// Labels this segmenter watches.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.tracks.iter().map(|t| &*t.label)
    }

    /// True while any label is uncertain (smoothed score at or above its `watch` threshold) or has a
    /// segment open or about to open: the sampler bursts then.
    pub fn wants_burst(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.smoothed >= t.thresholds.watch || !matches!(t.state, State::Idle))
    }

    /// Timestamps of the evidence frames of every segment forming or open (the frames a report
    /// may show; the engine keeps thumbnails of exactly these).
    pub fn evidence_wanted(&self) -> impl Iterator<Item = i64> + '_ {
        self.tracks
            .iter()
            .flat_map(|t| match &t.state {
                State::Idle => &[][..],
                State::Candidate(stats) | State::Open { stats, .. } => &stats.evidence[..],
            })
            .map(|&(t, _)| t)
    }

    /// True while any segment is open.
    pub fn any_open(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| matches!(t.state, State::Open { .. }))
    }

    /// Smoothed score of each watched label, as `(label, score)`.
    pub fn smoothed(&self) -> impl Iterator<Item = (&str, f32)> {
        self.tracks.iter().map(|t| (&*t.label, t.smoothed))
    }

    /// Feeds the scores of a frame taken at `t_us` (model output order); appends events to `out`.
    /// Timestamps must not go backwards; a frame older than the last one is ignored.
    pub fn observe(&mut self, t_us: i64, scores: &[f32], out: &mut Vec<SegmentEvent>) {
        if self.first_us.is_some() && t_us < self.last_us {
            return;
        }
        self.first_us.get_or_insert(t_us);
        self.last_us = t_us;
        for i in 0..self.tracks.len() {
            let score = scores.get(self.tracks[i].index).copied().unwrap_or(0.0);
            self.step(i, t_us, score, out);
        }
    }

    /// Lets time pass without a scored frame (closes segments whose merge gap has run out).
    pub fn advance(&mut self, t_us: i64, out: &mut Vec<SegmentEvent>) {
        if t_us < self.last_us {
            return;
        }
        self.last_us = t_us;
        for i in 0..self.tracks.len() {
            self.close_if_gap_over(i, t_us, out);
        }
    }

    /// How long a segment stays open below `exit` waiting for a new run: the merge gap, but at least
    /// pre-roll + post-roll, so the next segment cannot overlap this one.
    fn gap_us(&self) -> i64 {
        let s = self.shape;
        (s.merge_gap_ms as i64 * 1000).max((s.pre_roll_ms + s.post_roll_ms) as i64 * 1000 + 1)
    }

    fn close_if_gap_over(&mut self, i: usize, t_us: i64, out: &mut Vec<SegmentEvent>) {
        if let State::Open {
            cooling: Some(_),
            stats,
            ..
        } = &self.tracks[i].state
        {
            if t_us - stats.last_above_us >= self.gap_us() {
                self.close(i, false, out);
            }
        }
    }

    /// The stream ended at `t_us`: closes open segments (post-roll clipped to the last frame) and
    /// drops candidates, which have not lasted the minimum duration.
    pub fn finish(&mut self, t_us: i64, out: &mut Vec<SegmentEvent>) {
        self.last_us = self.last_us.max(t_us);
        for i in 0..self.tracks.len() {
            match &self.tracks[i].state {
                State::Idle => {}
                // A candidate opens on the frame that completes the minimum duration, so one still
                // waiting at the end is too short.
                State::Candidate(_) => self.tracks[i].state = State::Idle,
                State::Open { .. } => self.close(i, true, out),
            }
        }
    }

    fn step(&mut self, i: usize, t: i64, score: f32, out: &mut Vec<SegmentEvent>) {
        let keep = self.keep;
        let min_us = self.shape.min_duration_ms as i64 * 1000;
        // A gap that ran out before this frame ends the segment before the frame is looked at.
        self.close_if_gap_over(i, t, out);
        let track = &mut self.tracks[i];
        if track.window.len() == self.window {
            track.window.pop_front();
        }
        track.window.push_back(score);
        let s = track.window.iter().sum::<f32>() / track.window.len() as f32;
        track.smoothed = s;
        let th = track.thresholds;
        match &mut track.state {
            State::Idle => {
                if s >= th.enter {
                    let mut stats = Stats::new(t);
                    stats.add(t, s, keep);
                    track.state = State::Candidate(stats);
                    if min_us == 0 {
                        self.open(i, out);
                    }
                }
            }
            State::Candidate(stats) => {
                if s >= th.enter {
                    stats.add(t, s, keep);
                    stats.last_above_us = t;
                    if t - stats.crossed_us >= min_us {
                        self.open(i, out);
                    }
                } else {
                    track.state = State::Idle;
                }
            }
            State::Open { stats, cooling, .. } => {
                let resumed = match cooling {
                    // Below `exit` earlier: only a new run above `enter` within the gap continues it.
                    Some(_) if s >= th.enter => true,
                    Some(_) => false,
                    None => s >= th.exit,
                };
                if resumed {
                    if let Some(c) = cooling.take() {
                        stats.merge(c, keep);
                    }
                    let peak_moved = stats.add(t, s, keep);
                    stats.last_above_us = t;
                    if peak_moved {
                        let seg = self.snapshot(i);
                        out.push(SegmentEvent::Updated(seg));
                    }
                } else {
                    cooling.get_or_insert_with(|| Stats::new(t)).add(t, s, keep);
                }
            }
        }
    }

    fn open(&mut self, i: usize, out: &mut Vec<SegmentEvent>) {
        let id = self.next_id;
        self.next_id += 1;
        let state = std::mem::replace(&mut self.tracks[i].state, State::Idle);
        if let State::Candidate(stats) = state {
            self.tracks[i].state = State::Open {
                id,
                stats,
                cooling: None,
            };
            out.push(SegmentEvent::Opened(self.snapshot(i)));
        }
    }

    /// Closes track `i`; at the end of the stream the post-roll is clipped to the last frame.
    fn close(&mut self, i: usize, at_end: bool, out: &mut Vec<SegmentEvent>) {
        let mut seg = self.snapshot(i);
        seg.end_us += self.shape.post_roll_ms as i64 * 1000;
        if at_end {
            seg.end_us = seg.end_us.min(self.last_us);
        }
        self.tracks[i].state = State::Idle;
        out.push(SegmentEvent::Closed(seg));
    }

    fn snapshot(&self, i: usize) -> Segment {
        let track = &self.tracks[i];
        let (id, stats) = match &track.state {
            State::Open { id, stats, .. } => (*id, stats),
            State::Candidate(stats) => (0, stats),
            State::Idle => unreachable!("snapshots are taken of open segments"),
        };
        let first = self.first_us.unwrap_or(stats.crossed_us);
        Segment {
            id,
            label: track.label.clone(),
            stream_start_us: first,
            start_us: (stats.crossed_us - self.shape.pre_roll_ms as i64 * 1000).max(first),
            end_us: stats.last_above_us,
            crossed_us: stats.crossed_us,
            peak: stats.peak,
            peak_us: stats.peak_us,
            // Never 0 / 0: a segment holds at least the frame that made it a candidate.
            mean: (stats.sum / stats.frames as f64) as f32,
            frames_scored: stats.frames,
            evidence: stats.evidence.clone(),
        }
    }
}
