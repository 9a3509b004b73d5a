//! When to try a report again: the verdict on an HTTP status ([`classify`]), the pause before the
//! next try ([`RetryPolicy`], with [`Jitter`] to spread clients apart) and the server's
//! `Retry-After` ([`parse_retry_after`]). Pure functions, free of I/O, so tests cover them whole.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A small pseudo-random generator for jitter (SplitMix64), seeded from the clock and the
/// process's random hasher keys; nothing here needs more than spreading clients apart.
pub(super) struct Jitter(u64);

impl Jitter {
    pub(super) fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        Self(hasher.finish())
    }

    /// The next value in `0..1`.
    pub(super) fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
