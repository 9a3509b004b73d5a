//! The integer convolution from arbitrary bytes: geometry, zero points, weights, scales and
//! inputs (NaN and infinities included). Every SIMD kernel this CPU runs must give the portable
//! kernel's output bit for bit, and no kernel may read or write outside its buffers
//! (AddressSanitizer watches the pointer arithmetic of the unsafe kernels).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    prescreen_runtime::fuzzing::fuzz_kernels(data);
});
