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

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::reporting::outbox::Outbox;

/// Longest excerpt of a server's reply kept in a dead-letter reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// How often and how long to wait between tries of one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Pause after the first failed try (doubled after each further one, before jitter).
    pub initial_backoff: Duration,
    /// Longest computed pause.
    pub max_backoff: Duration,
    /// Tries of one report, the first included, before the round gives up (at least 1).
    pub max_attempts: u32,
    /// Longest `Retry-After` honoured; a server asking for more gets this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 500 ms doubling up to 60 s, 6 tries, `Retry-After` honoured up to 5 minutes.
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_attempts: 6,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed try number `attempt` (1 for the first) before the next one.
    ///
    /// Without `retry_after` it is `initial_backoff * 2^(attempt - 1)`, capped at `max_backoff`,
    /// then scaled into its upper half by `jitter` (0 gives half the backoff, 1 all of it; values
    /// outside `0..=1` are clamped, NaN counts as 0.5), so clients that failed together do not
    /// come back together. A `retry_after` from the server wins over the computed pause, capped
    /// at `max_retry_after`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let doublings = attempt.saturating_sub(1).min(31);
        let backoff = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let jitter = if jitter.is_nan() {
            0.5
        } else {
            jitter.clamp(0.0, 1.0)
        };
        Duration::try_from_secs_f64(backoff.as_secs_f64() * (0.5 + 0.5 * jitter))
            .unwrap_or(backoff)
            .min(backoff)
    }
}

/// What to do with a report after the server's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The server has the report: acknowledge it (remove it from the outbox).
    Delivered,
    /// A passing failure: try again later.
    Retry,
    /// The server refuses this report for good: dead-letter it.
    Reject,
    /// The server refuses the request, not the report (wrong endpoint, credentials, a redirect):
    /// every report would get the same answer, so stop the round and keep them all pending.
    Halt,
}

/// The verdict on an HTTP status.
///
/// * 2xx: [`Verdict::Delivered`]. The reference receiver answers 201 for a new report and 200 for
///   one it already had.
/// * 408 (request timeout), 425 (too early), 429 (too many requests) and every 5xx:
///   [`Verdict::Retry`].
/// * 409 (conflict): [`Verdict::Retry`]. With idempotency keys, 409 means that a request with the
///   same key is still being processed (IETF `Idempotency-Key` header draft); whether that one
///   succeeded is not known yet, so the report is sent again later, when the server answers 2xx
///   for a duplicate. A server that has the report already should answer 2xx, not 409.
/// * 1xx, 3xx (redirects are not followed: a POST must not silently turn into a GET), 401, 403,
///   404, 405 and 407: [`Verdict::Halt`]. These say the endpoint or its credentials are wrong, so
///   every report would be refused the same way; dead-lettering them all because of an expired
///   token or a typo in a URL would empty the queue.
/// * Every other status (400, 410, 413, 422 and the rest): [`Verdict::Reject`], this report
///   is refused.
///
/// Network errors and timeouts never reach this function; they are always [`Verdict::Retry`].
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 409 | 425 | 429 | 500..=599 => Verdict::Retry,
        100..=199 | 300..=399 | 401 | 403 | 404 | 405 | 407 => Verdict::Halt,
        _ => Verdict::Reject,
    }
}

/// Parses a `Retry-After` header value into the pause it asks for.
///
/// Accepts delta-seconds (`120`; larger than any clock saturates) and an IMF-fixdate HTTP-date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), taken relative to `now` (a date in the past asks for no
/// pause). The obsolete RFC 850 and asctime date forms and anything else give `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_imf_fixdate(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_imf_fixdate(value: &str) -> Option<u64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (weekday, rest) = value.split_once(", ")?;
    if !DAYS.contains(&weekday) {
        return None;
    }
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let number = |s: &str, len: usize| -> Option<u64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let day = number(day, 2)?;
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let year = number(year, 4)?;
    let mut hms = time.split(':');
    let (h, m, s) = (
        number(hms.next()?, 2)?,
        number(hms.next()?, 2)?,
        number(hms.next()?, 2)?,
    );
    if hms.next().is_some() || year < 1970 || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60
    {
        return None;
    }
    Some(days_since_epoch(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year >= 1970).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    const BEFORE_MONTH: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap_days = |y: u64| y / 4 - y / 100 + y / 400; // leap years in 1..=y
    let whole_years = year - 1970;
    let mut days = whole_years * 365 + leap_days(year - 1) - leap_days(1969);
    days += BEFORE_MONTH[(month - 1) as usize] + day - 1;
    if month > 2 && leap(year) {
        days += 1;
    }
    days
}

/// The server's answer to one POST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The pause the `Retry-After` header asked for, if any (see [`parse_retry_after`]).
    pub retry_after: Option<Duration>,
    /// The start of the reply's body, as text (kept in dead-letter reasons, cut to
    /// [`MAX_REASON_CHARS`]).
    pub message: String,
}

/// Sends one report. Implemented over HTTP by [`UreqTransport`]; tests script their own.
pub trait Transport: Send {
    /// POSTs `body` (a report's JSON) to `url` with `Content-Type: application/json` and
    /// `Idempotency-Key: idempotency_key`. Any HTTP answer is `Ok`, whatever its status; `Err`
    /// describes a failure to get one (connection refused, timeout, TLS, reset), which is
    /// always retried. The description must not contain the body.
    fn post(
        &mut self,
        url: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> std::result::Result<Reply, String>;
}

/// The HTTP(S) [`Transport`]: a `ureq` agent with a timeout on each exchange, no redirects
/// (a redirected POST is answered with its 3xx status) and HTTP errors returned as replies.
#[derive(Debug)]
pub struct UreqTransport {
    agent: ureq::Agent,
}

/// Bytes of a reply's body read for its message (the rest is left unread).
const REPLY_READ_BYTES: u64 = 1024;

impl UreqTransport {
    /// A transport whose every exchange (connect, send, receive) must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("prescreen-runtime/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.new_agent(),
        }
    }
}

impl Transport for UreqTransport {
    fn post(
        &mut self,
        url: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> std::result::Result<Reply, String> {
        let mut response = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", idempotency_key)
            .send(body)
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut text = Vec::new();
        // The message only explains a refusal; a reply cut short by the timeout still counts.
        let _ = response
            .body_mut()
            .as_reader()
            .take(REPLY_READ_BYTES)
            .read_to_end(&mut text);
        Ok(Reply {
            status,
            retry_after,
            message: String::from_utf8_lossy(&text).into_owned(),
        })
    }
}

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

/// A small pseudo-random generator for jitter (SplitMix64), seeded from the clock and the
/// process's random hasher keys; nothing here needs more than spreading clients apart.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        Self(hasher.finish())
    }

    /// The next value in `0..1`.
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::reporting::outbox::{Area, MemStore, OutboxOptions, Store};
    use crate::reporting::report::fixtures::{context, segment};
    use crate::reporting::report::Report;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: 100 * MS,
            max_backoff: 1000 * MS,
            max_attempts: 4,
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn delay_doubles_with_jitter_and_is_capped() {
        let p = policy();
        assert_eq!(p.delay(1, None, 1.0), 100 * MS);
        assert_eq!(p.delay(1, None, 0.0), 50 * MS);
        assert_eq!(p.delay(2, None, 1.0), 200 * MS);
        assert_eq!(p.delay(3, None, 0.5), 300 * MS);
        assert_eq!(p.delay(4, None, 1.0), 800 * MS);
        assert_eq!(p.delay(5, None, 1.0), 1000 * MS);
        assert_eq!(p.delay(u32::MAX, None, 1.0), 1000 * MS);
        assert_eq!(
            p.delay(0, None, 1.0),
            100 * MS,
            "attempt 0 counts as the first"
        );
        // Jitter outside 0..=1 is clamped; NaN is the middle.
        assert_eq!(p.delay(1, None, 7.0), 100 * MS);
        assert_eq!(p.delay(1, None, -1.0), 50 * MS);
        assert_eq!(p.delay(1, None, f64::NAN), 75 * MS);
        for i in 0..=100 {
            let d = p.delay(3, None, i as f64 / 100.0);
            assert!((200 * MS..=400 * MS).contains(&d), "{d:?}");
        }
    }

    #[test]
    fn delay_survives_huge_settings() {
        let p = RetryPolicy {
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            ..policy()
        };
        assert!(p.delay(40, None, 1.0) <= Duration::MAX);
        assert!(p.delay(40, None, 0.0) >= Duration::from_secs(u64::MAX / 4));
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3)), 0.0),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(4, Some(Duration::ZERO), 1.0), Duration::ZERO);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600)), 1.0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn statuses_are_classified() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(classify(s), Verdict::Delivered, "{s}");
        }
        for s in [408, 409, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(s), Verdict::Retry, "{s}");
        }
        for s in [
            100, 199, 300, 301, 302, 303, 307, 308, 401, 403, 404, 405, 407,
        ] {
            assert_eq!(classify(s), Verdict::Halt, "{s}");
        }
        for s in [0, 400, 410, 413, 415, 422, 451, 600, 999] {
            assert_eq!(classify(s), Verdict::Reject, "{s}");
        }
    }

    #[test]
    fn retry_after_is_parsed() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 10);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in [
            "",
            " ",
            "-1",
            "1.5",
            "+3",
            "soon",
            "1e3",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        // RFC 9110's example date is 784111777 seconds after the epoch.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(10))
        );
        // A date in the past asks for no pause.
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        // Leap years.
        assert_eq!(
            parse_imf_fixdate("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(1_709_164_800)
        );
        assert_eq!(
            parse_imf_fixdate("Fri, 01 Mar 2024 00:00:00 GMT"),
            Some(1_709_251_200)
        );
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_imf_fixdate("Wed, 01 Mar 2000 12:30:15 GMT"),
            Some(951_913_815)
        );
    }

    #[test]
    fn jitter_is_spread_in_unit_interval() {
        let mut j = Jitter(42);
        let values: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        assert_ne!(Jitter::seeded().0, Jitter::seeded().0);
    }

    fn config(endpoint: &str) -> UploadConfig {
        UploadConfig {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(1),
            retry: policy(),
        }
    }

    #[test]
    fn config_is_checked() {
        let err = |c: UploadConfig| match Uploader::new(c) {
            Err(Error::Upload(why)) => why,
            other => panic!("expected an upload error, got {other:?}"),
        };
        assert!(Uploader::new(config("http://127.0.0.1:9/v1/reports")).is_ok());
        assert!(err(config("ftp://example.invalid/x")).contains("http://"));
        assert!(err(config("example.invalid/x")).contains("http://"));
        assert!(err(config("not a url")).contains("http://"));
        assert!(err(config("http://sec ret@x/")).contains("not a valid URL"));
        let no_host = err(config("http:///v1/reports"));
        assert!(
            no_host.contains("host") || no_host.contains("not a valid URL"),
            "{no_host}"
        );
        assert!(Uploader::new(config("HTTP://127.0.0.1:9/")).is_ok());
        let mut c = config("http://127.0.0.1:9/");
        c.timeout = Duration::ZERO;
        assert!(err(c).contains("timeout"));
        let mut c = config("http://127.0.0.1:9/");
        c.retry.max_attempts = 0;
        assert!(err(c).contains("max_attempts"));
        let https = config("https://example.invalid/v1/reports");
        if cfg!(feature = "upload-tls") {
            assert!(Uploader::new(https.clone()).is_ok());
        } else {
            assert!(err(https.clone()).contains("upload-tls"));
        }
        let script = Script::new(vec![]);
        assert!(Uploader::with_transport(https, Box::new(script)).is_ok());
    }

    /// A transport that answers from a script and records what it was sent.
    #[derive(Clone)]
    struct Script {
        answers: Arc<Mutex<VecDeque<std::result::Result<Reply, String>>>>,
        sent: Arc<Mutex<Vec<(String, String, usize)>>>,
    }

    impl Script {
        fn new(answers: Vec<std::result::Result<Reply, String>>) -> Self {
            Self {
                answers: Arc::new(Mutex::new(answers.into())),
                sent: Arc::default(),
            }
        }

        fn keys(&self) -> Vec<String> {
            self.sent
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.1.clone())
                .collect()
        }
    }

    impl Transport for Script {
        fn post(
            &mut self,
            url: &str,
            key: &str,
            body: &[u8],
        ) -> std::result::Result<Reply, String> {
            self.sent
                .lock()
                .unwrap()
                .push((url.to_string(), key.to_string(), body.len()));
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("the script ran out of answers")
        }
    }

    fn status(status: u16) -> std::result::Result<Reply, String> {
        Ok(Reply {
            status,
            ..Reply::default()
        })
    }

    fn report(n: u64) -> Report {
        context().build(&segment(n, 1), &[], 1_000 + n).unwrap()
    }

    /// An outbox on a `MemStore` holding reports `1..=n`, oldest first.
    fn outbox(n: u64) -> (Outbox, MemStore, Vec<String>) {
        let store = MemStore::new();
        let outbox = Outbox::with_store(Box::new(store.clone()), OutboxOptions::default()).unwrap();
        let ids = (1..=n)
            .map(|i| {
                let r = report(i);
                outbox.put(&r).unwrap();
                r.report_id
            })
            .collect();
        (outbox, store, ids)
    }

    fn uploader(script: &Script) -> (Uploader, Arc<Mutex<Vec<Duration>>>) {
        let pauses = Arc::new(Mutex::new(Vec::new()));
        let recorded = pauses.clone();
        let up = Uploader::with_transport(
            config("http://127.0.0.1:9/v1/reports"),
            Box::new(script.clone()),
        )
        .unwrap()
        .with_sleep(move |d| recorded.lock().unwrap().push(d));
        (up, pauses)
    }

    #[test]
    fn delivers_everything_oldest_first() {
        let (outbox, _, ids) = outbox(3);
        let script = Script::new(vec![status(201), status(200), status(204)]);
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, ids);
        assert_eq!(script.keys(), ids);
        assert_eq!((s.deferred, s.attempts, s.dead_lettered.len()), (0, 3, 0));
        assert!(s.bytes_sent > 0);
        assert_eq!(s.last_error, None);
        assert!(outbox.pending().is_empty());
        assert_eq!(outbox.metrics().acked, 3);
        assert!(pauses.lock().unwrap().is_empty());
        let sent = script.sent.lock().unwrap();
        assert!(sent
            .iter()
            .all(|(url, _, _)| url == "http://127.0.0.1:9/v1/reports"));
        assert_eq!(sent.iter().map(|s| s.2 as u64).sum::<u64>(), s.bytes_sent);
    }

    #[test]
    fn retries_with_backoff_then_delivers() {
        let (outbox, _, ids) = outbox(2);
        let script = Script::new(vec![
            status(503),
            Err("connection reset".into()),
            status(201),
            status(201),
        ]);
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, ids);
        assert_eq!(s.attempts, 4);
        assert_eq!(s.last_error.as_deref(), Some("connection reset"));
        assert_eq!(script.keys(), [&*ids[0], &ids[0], &ids[0], &ids[1]]);
        let pauses = pauses.lock().unwrap();
        assert_eq!(pauses.len(), 2);
        assert!((50 * MS..=100 * MS).contains(&pauses[0]), "{pauses:?}");
        assert!((100 * MS..=200 * MS).contains(&pauses[1]), "{pauses:?}");
        assert!(outbox.pending().is_empty());
    }

    #[test]
    fn honours_retry_after() {
        let (outbox, _, ids) = outbox(1);
        let script = Script::new(vec![
            Ok(Reply {
                status: 429,
                retry_after: Some(Duration::from_secs(7)),
                message: String::new(),
            }),
            Ok(Reply {
                status: 503,
                retry_after: Some(Duration::from_secs(3600)),
                message: String::new(),
            }),
            status(200),
        ]);
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, ids);
        assert_eq!(
            *pauses.lock().unwrap(),
            [Duration::from_secs(7), Duration::from_secs(10)]
        );
    }

    #[test]
    fn gives_up_and_stops_the_round_when_the_network_is_down() {
        let (outbox, _, ids) = outbox(3);
        let script = Script::new((0..4).map(|_| Err("connection refused".into())).collect());
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert!(s.delivered.is_empty() && s.dead_lettered.is_empty());
        assert_eq!((s.deferred, s.attempts), (3, 4));
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
        // Only the oldest report was tried; the others were not hammered.
        assert_eq!(script.keys(), vec![ids[0].clone(); 4]);
        assert_eq!(
            pauses.lock().unwrap().len(),
            3,
            "no pause after the last try"
        );
        let pending: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
        assert_eq!(pending, ids);

        // The next round, with the network back, delivers them all.
        script
            .answers
            .lock()
            .unwrap()
            .extend([status(201), status(201), status(201)]);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, ids);
        assert!(outbox.pending().is_empty());
    }

    #[test]
    fn an_endpoint_refusal_halts_the_round_and_dead_letters_nothing() {
        for refusal in [401, 403, 404, 301] {
            let (outbox, _store, ids) = outbox(3);
            let script = Script::new(vec![status(201), status(refusal)]);
            let (mut up, pauses) = uploader(&script);
            let s = up.deliver(&outbox);
            assert_eq!(s.delivered, &ids[..1], "{refusal}");
            assert!(s.dead_lettered.is_empty(), "{refusal}");
            assert_eq!((s.deferred, s.attempts), (2, 2), "{refusal}");
            assert!(pauses.lock().unwrap().is_empty());
            let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
            assert_eq!(left, &ids[1..], "{refusal}");
            assert!(outbox.dead_letters().unwrap().is_empty());
        }
    }

    #[test]
    fn refused_reports_are_dead_lettered_and_the_round_goes_on() {
        let (outbox, store, ids) = outbox(3);
        let long = format!("bad report\n{}", "x".repeat(5000));
        let script = Script::new(vec![
            Ok(Reply {
                status: 400,
                retry_after: None,
                message: long,
            }),
            status(422),
            status(201),
        ]);
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.dead_lettered, &ids[..2]);
        assert_eq!(s.delivered, &ids[2..]);
        assert_eq!((s.deferred, s.attempts), (0, 3));
        assert!(pauses.lock().unwrap().is_empty());
        assert!(outbox.pending().is_empty());
        assert_eq!(outbox.dead_letters().unwrap(), {
            let mut d = ids[..2].to_vec();
            d.sort();
            d
        });
        let reason = |id: &str| {
            String::from_utf8(
                store
                    .read(Area::DeadLetter, &format!("{id}.reason.txt"))
                    .unwrap(),
            )
            .unwrap()
        };
        let first = reason(&ids[0]);
        assert!(first.starts_with("HTTP 400: bad report x"), "{first}");
        assert!(!first.contains('\n'));
        assert!(
            first.chars().count() <= MAX_REASON_CHARS + 12,
            "{}",
            first.len()
        );
        assert_eq!(reason(&ids[1]), "HTTP 422");
        assert!(store
            .names(Area::DeadLetter)
            .contains(&format!("{}.json", ids[0])));
    }

    #[test]
    fn an_empty_outbox_sends_nothing() {
        let (outbox, _, _) = outbox(0);
        let script = Script::new(vec![]);
        let (mut up, _) = uploader(&script);
        assert_eq!(up.deliver(&outbox), DeliverySummary::default());
        assert!(script.keys().is_empty());
    }

    #[test]
    fn a_report_that_cannot_be_read_is_skipped() {
        let (outbox, store, ids) = outbox(2);
        // The file vanishes behind the outbox's back (a user clearing app data, say).
        store
            .clone()
            .remove(Area::Pending, &format!("{}.json", ids[0]))
            .unwrap();
        let script = Script::new(vec![status(201)]);
        let (mut up, _) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, &ids[1..]);
        assert_eq!(s.deferred, 1);
        assert!(s.last_error.unwrap().starts_with("outbox:"));
    }

    /// The documented defaults: 500 ms doubling up to 60 s, 6 tries, `Retry-After` honoured up to
    /// 5 minutes, a 30 s timeout. Fails if `RetryPolicy::default` were replaced (it would recurse).
    #[test]
    fn defaults_are_the_documented_ones() {
        assert_eq!(
            UploadConfig::new("http://127.0.0.1:9/"),
            UploadConfig {
                endpoint: "http://127.0.0.1:9/".into(),
                timeout: Duration::from_secs(30),
                retry: RetryPolicy {
                    initial_backoff: 500 * MS,
                    max_backoff: Duration::from_secs(60),
                    max_attempts: 6,
                    max_retry_after: Duration::from_secs(300),
                },
            }
        );
    }

    /// The last valid value of each time field is accepted: hour 23, minute 59, second 60 (a leap
    /// second, counted as the next second); one past each is refused, as are a fourth time field
    /// and a year before 1970. Values from Python's `calendar.timegm`. Fails if `h > 23`,
    /// `m > 59` or `s > 60` became `>=` or `==`, if `year < 1970` became `==`, or if the first
    /// `||`s of the rejection became `&&`.
    #[test]
    fn imf_fixdate_fields_are_checked_at_their_bounds() {
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 23:59:59 GMT"),
            Some(784_166_399)
        );
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:59:37 GMT"),
            Some(784_112_377)
        );
        assert_eq!(
            parse_imf_fixdate("Sat, 31 Dec 2016 23:59:60 GMT"),
            Some(1_483_228_800)
        );
        for bad in [
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_imf_fixdate(bad), None, "{bad:?}");
        }
    }

    /// The jitter is SplitMix64: from state 0 its first outputs are the published reference values
    /// 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4 and 0x06c45d188009454f, whose top 53 bits over 2^53
    /// are the values below (computed in Python). Fails if a shift, an xor or the scaling of
    /// `Jitter::next` changed.
    #[test]
    fn jitter_is_splitmix64() {
        let mut j = Jitter(0);
        assert_eq!(j.next(), 0.8833108082136426);
        assert_eq!(j.next(), 0.43152799704850997);
        assert_eq!(j.next(), 0.026433771592597743);
    }

    /// A report that runs out of tries after an earlier one was delivered defers itself and the
    /// report after it: 2 of 3. Fails if the reports left were counted as `pending.len() + index`.
    #[test]
    fn giving_up_midway_defers_the_rest_of_the_round() {
        let (outbox, _, ids) = outbox(3);
        let mut answers = vec![status(201)];
        answers.extend((0..4).map(|_| Err("connection refused".to_string())));
        let script = Script::new(answers);
        let (mut up, pauses) = uploader(&script);
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, &ids[..1]);
        assert_eq!((s.deferred, s.attempts), (2, 5));
        assert_eq!(pauses.lock().unwrap().len(), 3);
        let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
        assert_eq!(left, &ids[1..]);
    }

    /// A refused report that cannot be moved to the dead-letter folder (every write fails) stays
    /// pending and is counted as deferred; the round goes on. Fails if that count's `+= 1` became
    /// `*= 1`.
    #[test]
    fn a_refusal_that_cannot_be_dead_lettered_is_deferred() {
        let (outbox, store, ids) = outbox(2);
        store.set_fail_writes(true);
        let script = Script::new(vec![status(400), status(201)]);
        let (mut up, _) = uploader(&script);
        let s = up.deliver(&outbox);
        assert!(s.dead_lettered.is_empty());
        assert_eq!(s.delivered, &ids[1..]);
        assert_eq!((s.deferred, s.attempts), (1, 2));
        let left: Vec<String> = outbox.pending().into_iter().map(|p| p.report_id).collect();
        assert_eq!(left, &ids[..1]);
        assert!(outbox.dead_letters().unwrap().is_empty());
    }

    /// A transport that, on its first post, acknowledges another report of the outbox, as the
    /// host (or a second uploader) may while a round runs.
    struct AckOnFirstPost {
        script: Script,
        outbox: Arc<Outbox>,
        ack: Option<String>,
    }

    impl Transport for AckOnFirstPost {
        fn post(
            &mut self,
            url: &str,
            key: &str,
            body: &[u8],
        ) -> std::result::Result<Reply, String> {
            if let Some(id) = self.ack.take() {
                assert!(self.outbox.ack(&id).unwrap());
            }
            self.script.post(url, key, body)
        }
    }

    /// A report acknowledged elsewhere while the round runs is skipped: neither sent, nor
    /// deferred, nor an error. Fails if the `UnknownReport` arm of `deliver` were deleted (the
    /// report would count as unreadable).
    #[test]
    fn a_report_acknowledged_during_the_round_is_skipped_quietly() {
        let (outbox, _, ids) = outbox(3);
        let outbox = Arc::new(outbox);
        let script = Script::new(vec![status(201), status(201)]);
        let transport = AckOnFirstPost {
            script: script.clone(),
            outbox: outbox.clone(),
            ack: Some(ids[1].clone()),
        };
        let mut up =
            Uploader::with_transport(config("http://127.0.0.1:9/v1/reports"), Box::new(transport))
                .unwrap()
                .with_sleep(|_| {});
        let s = up.deliver(&outbox);
        assert_eq!(s.delivered, [&*ids[0], &ids[2]]);
        assert_eq!((s.deferred, s.attempts), (0, 2));
        assert_eq!(s.last_error, None);
        assert_eq!(script.keys(), [&*ids[0], &ids[2]]);
        assert!(outbox.pending().is_empty());
    }

    /// The uploader's debug output shows its timeout and retry policy, never the endpoint (it may
    /// carry a token). Fails if its `fmt` wrote nothing.
    #[test]
    fn debug_output_shows_the_settings_but_not_the_endpoint() {
        let up = Uploader::with_transport(
            config("http://127.0.0.1:9/v1/reports?token=secret"),
            Box::new(Script::new(vec![])),
        )
        .unwrap();
        let shown = format!("{up:?}");
        assert!(
            shown.starts_with("Uploader { timeout: 1s, retry: RetryPolicy {")
                && shown.contains("max_attempts: 4"),
            "{shown}"
        );
        assert!(
            !shown.contains("secret") && !shown.contains("127.0.0.1"),
            "{shown}"
        );
    }
}
