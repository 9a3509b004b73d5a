//! Still-image decoding within the frame limits: an error or a picture inside the limits, with
//! memory bounded by the limits whatever the header claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prescreen_runtime::frame::{MAX_DIMENSION, MAX_PIXELS};

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = prescreen::images::decode_rgb(data) {
        let (w, h) = img.dimensions();
        assert!(w <= MAX_DIMENSION && h <= MAX_DIMENSION && w as u64 * h as u64 <= MAX_PIXELS);
    }
});
