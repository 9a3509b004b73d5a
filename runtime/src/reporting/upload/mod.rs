//! Delivery of outbox reports over HTTP(S) (feature `upload`; HTTPS with `upload-tls`).
//!
//! [`Uploader::deliver`] takes the pending reports of an [`Outbox`], oldest first, and POSTs each
//! one to the endpoint as `application/json` with its report id as the `Idempotency-Key` header,
//! so the server can deduplicate a report sent twice (after a lost reply, a crash between the
//! server's answer and the acknowledgement, or a re-queued copy).
//!
//! What happens with each answer is decided by pure functions, free of I/O:
//!
//! * [`classify`] maps the HTTP status to a [`Verdict`]: delivered (acknowledged and removed from
//!   the outbox), retry later, or rejected for good (moved to the dead-letter folder with the
//!   status and a short excerpt of the server's reply);
//! * [`RetryPolicy::delay`] is the pause before the next try: exponential backoff with jitter,
//!   capped, unless the server said when to come back ([`parse_retry_after`]).
//!
//! The network is reached through a [`Transport`] ([`UreqTransport`] by default) and time passes
//! through an injectable sleep, so the whole loop runs in tests against a scripted transport
//! without waiting.
//!
//! When a report still cannot be delivered after [`RetryPolicy::max_attempts`] tries, the round
//! stops: the network or the server is down, and trying every other report would only hammer it.
//! Everything not delivered stays pending for the next round; nothing is lost.
//!
//! Logs name report ids, statuses and network errors; never report contents.

mod retry;
mod transport;

pub use retry::{classify, parse_retry_after, RetryPolicy, Verdict};
pub use transport::{Reply, Transport, UreqTransport};

use std::time::Duration;

use crate::error::{Error, Result};
use crate::reporting::outbox::Outbox;
use retry::Jitter;

/// Longest excerpt of a server's reply kept in a dead-letter reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// Where and how to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// The URL reports are POSTed to, `http://` or `https://` (the latter needs the
    /// `upload-tls` feature with the default transport).
    pub endpoint: String,
    /// Longest one try may take, from connecting to the end of the reply.
    pub timeout: Duration,
    /// Pauses and tries.
    pub retry: RetryPolicy,
}

impl UploadConfig {
    /// Defaults for `endpoint`: a 30 s timeout and the default [`RetryPolicy`].
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// What one [`Uploader::deliver`] round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    /// Reports the server has (acknowledged in the outbox), in the order sent.
    pub delivered: Vec<String>,
    /// Reports the server refused for good (moved to the dead-letter folder).
    pub dead_lettered: Vec<String>,
    /// Reports left pending for a later round: the one that ran out of tries, those the round
    /// did not reach after it gave up, and any whose outbox file could not be read or moved.
    pub deferred: usize,
    /// Report bytes handed to the transport, every try counted.
    pub bytes_sent: u64,
    /// POSTs tried.
    pub attempts: u32,
    /// The last failure seen (a network error or an HTTP status), if any.
    pub last_error: Option<String>,
}

/// How the uploader waits between tries (by default `std::thread::sleep`).
pub type Sleep = Box<dyn FnMut(Duration) + Send>;

/// Delivers the reports of an [`Outbox`]. See the [module documentation](self).
pub struct Uploader {
    config: UploadConfig,
    transport: Box<dyn Transport>,
    sleep: Sleep,
    jitter: Jitter,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("timeout", &self.config.timeout)
            .field("retry", &self.config.retry)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// An uploader over HTTP(S) ([`UreqTransport`]).
    ///
    /// Fails with [`Error::Upload`] when the endpoint is not an `http://` or `https://` URL with
    /// a host, when it is `https://` in a build without the `upload-tls` feature, or when the
    /// timeout or the number of tries is zero.
    pub fn new(config: UploadConfig) -> Result<Self> {
        check_config(&config, cfg!(feature = "upload-tls"))?;
        let transport = UreqTransport::new(config.timeout);
        Ok(Self::build(config, Box::new(transport)))
    }

    /// An uploader over another transport (the host's own HTTP stack, or a test script). The
    /// endpoint is checked as by [`Uploader::new`], but `https://` is left to the transport.
    pub fn with_transport(config: UploadConfig, transport: Box<dyn Transport>) -> Result<Self> {
        check_config(&config, true)?;
        Ok(Self::build(config, transport))
    }

    fn build(config: UploadConfig, transport: Box<dyn Transport>) -> Self {
        Self {
            config,
            transport,
            sleep: Box::new(std::thread::sleep),
            jitter: Jitter::seeded(),
        }
    }

    /// Waits between tries with `sleep` instead of `std::thread::sleep` (tests pass a function
    /// that records the pauses and returns at once).
    pub fn with_sleep(mut self, sleep: impl FnMut(Duration) + Send + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &UploadConfig {
        &self.config
    }

    /// One delivery round: every pending report, oldest first, until all are delivered or
    /// dead-lettered, or one of them runs out of tries (then the round stops and the rest stay
    /// pending). Blocks for the tries and the pauses between them.
    pub fn deliver(&mut self, outbox: &Outbox) -> DeliverySummary {
        let mut summary = DeliverySummary::default();
        let pending = outbox.pending();
        log::debug!("upload: {} reports pending", pending.len());
        for (index, report) in pending.iter().enumerate() {
            let id = report.report_id.as_str();
            let body = match outbox.read(id) {
                Ok(body) => body,
                // Acknowledged, evicted or dead-lettered since the list was taken.
                Err(Error::UnknownReport(_)) => continue,
                Err(e) => {
                    log::error!("upload: cannot read report {id} from the outbox: {e}");
                    summary.deferred += 1;
                    summary.last_error = Some(format!("outbox: {e}"));
                    continue;
                }
            };
            match self.send(id, &body, &mut summary) {
                Outcome::Delivered => {
                    if let Err(e) = outbox.ack(id) {
                        // The server has it; sending it again later is harmless (idempotent).
                        log::error!("upload: report {id} delivered but not acknowledged: {e}");
                    }
                    summary.delivered.push(id.to_string());
                }
                Outcome::Rejected(reason) => match outbox.dead_letter(id, &reason) {
                    Ok(()) => summary.dead_lettered.push(id.to_string()),
                    Err(e) => {
                        log::error!("upload: cannot dead-letter report {id}: {e}");
                        summary.deferred += 1;
                    }
                },
                Outcome::Halted(status) => {
                    let left = pending.len() - index;
                    log::error!(
                        "upload: the endpoint refuses requests (HTTP {status}); \
                         stopping this round with {left} reports pending"
                    );
                    summary.deferred += left;
                    break;
                }
                Outcome::GaveUp => {
                    let left = pending.len() - index;
                    log::warn!(
                        "upload: report {id} not delivered after {} tries ({}); \
                         stopping this round with {left} reports pending",
                        self.config.retry.max_attempts.max(1),
                        summary.last_error.as_deref().unwrap_or("no reply"),
                    );
                    summary.deferred += left;
                    break;
                }
            }
        }
        log::info!(
            "upload round: {} delivered, {} dead-lettered, {} deferred, {} tries, {} bytes",
            summary.delivered.len(),
            summary.dead_lettered.len(),
            summary.deferred,
            summary.attempts,
            summary.bytes_sent
        );
        summary
    }

    /// Tries one report until the server takes or refuses it, or the tries run out.
    fn send(&mut self, id: &str, body: &[u8], summary: &mut DeliverySummary) -> Outcome {
        let max_attempts = self.config.retry.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            summary.attempts += 1;
            summary.bytes_sent += body.len() as u64;
            let retry_after = match self.transport.post(&self.config.endpoint, id, body) {
                Ok(reply) => match classify(reply.status) {
                    Verdict::Delivered => {
                        log::info!("upload: report {id} delivered (HTTP {})", reply.status);
                        return Outcome::Delivered;
                    }
                    Verdict::Reject => {
                        let reason = reject_reason(reply.status, &reply.message);
                        summary.last_error = Some(format!("HTTP {}", reply.status));
                        log::warn!("upload: report {id} refused with HTTP {}", reply.status);
                        return Outcome::Rejected(reason);
                    }
                    Verdict::Halt => {
                        summary.last_error = Some(format!("HTTP {}", reply.status));
                        return Outcome::Halted(reply.status);
                    }
                    Verdict::Retry => {
                        summary.last_error = Some(format!("HTTP {}", reply.status));
                        reply.retry_after
                    }
                },
                Err(e) => {
                    summary.last_error = Some(e);
                    None
                }
            };
            if attempt == max_attempts {
                break;
            }
            let pause = self
                .config
                .retry
                .delay(attempt, retry_after, self.jitter.next());
            log::warn!(
                "upload: report {id} try {attempt}/{max_attempts} failed ({}); next in {} ms",
                summary.last_error.as_deref().unwrap_or(""),
                pause.as_millis()
            );
            (self.sleep)(pause);
        }
        Outcome::GaveUp
    }
}

/// How the tries of one report ended.
enum Outcome {
    Delivered,
    /// Refused for good, with the dead-letter reason.
    Rejected(String),
    /// The endpoint refuses requests (its HTTP status).
    Halted(u16),
    /// Out of tries.
    GaveUp,
}

/// The dead-letter reason of a refusal: the status and the start of the server's reply, on one
/// line.
fn reject_reason(status: u16, message: &str) -> String {
    let excerpt: String = message
        .trim()
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    }
}

/// Checks the endpoint and limits; the endpoint itself is never echoed (it may carry a token).
fn check_config(config: &UploadConfig, tls: bool) -> Result<()> {
    let endpoint = config.endpoint.as_str();
    let scheme_is = |scheme: &str| {
        endpoint
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if scheme_is("https://") && !tls {
        return Err(Error::Upload(
            "an https:// endpoint needs TLS, and this build has none (enable the `upload-tls` \
             feature of prescreen-runtime)"
                .into(),
        ));
    }
    if !scheme_is("http://") && !scheme_is("https://") {
        return Err(Error::Upload(
            "the endpoint must start with http:// or https://".into(),
        ));
    }
    let uri: ureq::http::Uri = endpoint
        .parse()
        .map_err(|_| Error::Upload("the endpoint is not a valid URL".into()))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::Upload("the endpoint has no host".into()));
    }
    if config.timeout.is_zero() {
        return Err(Error::Upload("the timeout must be more than zero".into()));
    }
    if config.retry.max_attempts == 0 {
        return Err(Error::Upload("max_attempts must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
