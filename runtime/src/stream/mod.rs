//! The stream: frames to scores to flagged segments.
//!
//! [`screener`] runs the three stages on one frame; [`sampling`] decides which frames to score;
//! [`segmenter`] turns per-frame scores into flagged segments (both free of clocks, threads and
//! I/O); [`engine`] is the live engine around them (non-blocking submit, a worker thread, events,
//! metrics).

pub mod engine;
pub mod sampling;
pub mod screener;
pub mod segmenter;
