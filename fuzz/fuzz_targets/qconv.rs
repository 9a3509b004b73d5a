//! The integer convolutions, dense and depthwise, from arbitrary bytes (the same bytes read as
//! each): geometry, zero points, weights, scales and inputs (NaN and infinities included). Every
//! SIMD kernel this CPU runs must give the portable kernel's output bit for bit, and no kernel
//! may read or write outside its buffers (AddressSanitizer watches the unsafe kernels' loads and
//! stores).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    prescreen_runtime::fuzzing::fuzz_kernels(data);
    prescreen_runtime::fuzzing::fuzz_depthwise(data);
});
