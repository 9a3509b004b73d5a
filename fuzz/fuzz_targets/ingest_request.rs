//! The reference receiver's request handling on arbitrary bytes: the head parser, then the body
//! checks (JSON, schema, the runtime's checks, the idempotency key). Never a panic; a refusal's
//! reason never echoes the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prescreen::ingest::{parse_head, ReportChecker};

fuzz_target!(|data: &[u8]| {
    static CHECKER: OnceLock<ReportChecker> = OnceLock::new();
    let checker = CHECKER.get_or_init(|| ReportChecker::new().unwrap());
    let (head, body) = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let key = match parse_head(head) {
        Ok(h) => h.idempotency_key,
        Err((status, _)) => {
            assert!((400..500).contains(&status));
            None
        }
    };
    if let Err(reason) = checker.check(body, key.as_deref()) {
        assert!(reason.len() < 400, "{reason}");
    }
});
