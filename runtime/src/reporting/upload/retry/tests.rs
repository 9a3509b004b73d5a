//! Unit tests of the retry timing and classification: backoff and its jitter, the verdict on each
//! status, and `Retry-After` values with their HTTP dates.

use super::*;
use crate::reporting::upload::tests::{policy, MS};

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
