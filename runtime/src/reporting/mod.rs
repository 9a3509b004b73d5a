//! Reporting: a closed segment to the server, losing nothing on the way.
//!
//! [`report`] builds the versioned JSON with its JPEG evidence; [`outbox`] is the durable,
//! budgeted store reports wait in; `upload` (feature `upload`) delivers them over HTTP(S).

pub mod outbox;
pub mod report;
#[cfg(feature = "upload")]
pub mod upload;
