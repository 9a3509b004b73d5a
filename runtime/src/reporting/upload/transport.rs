//! The network side of an upload: the [`Transport`] that POSTs one report and the [`Reply`] it
//! gets, with [`UreqTransport`], the HTTP(S) one over `ureq`. Tests put a scripted transport in
//! its place.

use std::io::Read;
use std::time::{Duration, SystemTime};

use super::parse_retry_after;

/// The server's answer to one POST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The pause the `Retry-After` header asked for, if any (see [`parse_retry_after`]).
    pub retry_after: Option<Duration>,
    /// The start of the reply's body, as text (kept in dead-letter reasons, cut to
    /// [`MAX_REASON_CHARS`](super::MAX_REASON_CHARS)).
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
