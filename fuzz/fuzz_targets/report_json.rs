//! `Report::from_json` on arbitrary bytes: an error, or a report that survives a round trip and
//! that the report JSON Schema accepts (the receiver would not dead-letter it).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prescreen::ingest::ReportChecker;
use prescreen_runtime::reporting::report::Report;

fuzz_target!(|data: &[u8]| {
    static CHECKER: OnceLock<ReportChecker> = OnceLock::new();
    let Ok(report) = Report::from_json(data) else {
        return;
    };
    let json = report.to_json();
    let again = Report::from_json(&json).expect("a parsed report serialises to a valid one");
    assert_eq!(again, report);
    let checker = CHECKER.get_or_init(|| ReportChecker::new().unwrap());
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(checker.schema_accepts(&value), "the schema refuses a report the runtime accepts");
});
