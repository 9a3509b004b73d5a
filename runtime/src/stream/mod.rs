//! The stream: frames to scores to flagged segments.
//!
//! [`scorer`] scores one frame (preprocess, then the model); [`sampling`] decides which frames to score;
//! [`segmenter`] turns per-frame scores into flagged segments (both free of clocks, threads and
//! I/O); [`engine`] is the live engine around them (non-blocking submit, a worker thread, events,
//! metrics).

pub mod engine;
pub mod sampling;
pub mod scorer;
pub mod segmenter;
