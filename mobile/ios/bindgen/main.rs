//! `uniffi-bindgen`, the generator of the Swift (and, for host tests, Python) bindings of
//! `prescreen-ios`, built from the same uniffi version as the library (mobile/ios/README.md).

fn main() {
    uniffi::uniffi_bindgen_main()
}
