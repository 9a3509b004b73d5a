//! The `.y4m` reader on arbitrary bytes: a typed error or frames that are valid `Frame`s, never a
//! panic, and never more memory than the bytes given hold (a header's size is not trusted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prescreen::y4m::Y4mReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Y4mReader::new(data) else {
        return;
    };
    let mut last = None;
    for _ in 0..8 {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                let f = frame.frame().expect("a frame read from y4m is valid");
                assert_eq!((f.width(), f.height()), (reader.width, reader.height));
                assert!(last.is_none_or(|t| frame.timestamp_us > t));
                last = Some(frame.timestamp_us);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
