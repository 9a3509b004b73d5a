#!/usr/bin/env bash
# Builds libprescreen_android.so for the Android ABIs with cargo-ndk, into OUT/<abi>/ (default
# library/build/jniLibs), with the `mobile` profile (fat LTO, one codegen unit, stripped; see the
# workspace Cargo.toml). Needs: rustup targets aarch64-linux-android,
# armv7-linux-androideabi, x86_64-linux-android; `cargo install cargo-ndk`; ANDROID_NDK_HOME.
# The Gradle module runs it before every build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/library/build/jniLibs}"
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to the NDK (for example \$ANDROID_HOME/ndk/27.2.12479018)}"
command -v cargo-ndk >/dev/null || { echo "cargo-ndk not found: cargo install cargo-ndk" >&2; exit 1; }
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android >/dev/null
cd "$here"
# API level 24 (Android 7.0), the library's minSdk.
cargo ndk --platform 24 -t arm64-v8a -t armeabi-v7a -t x86_64 -o "$out" \
  build --profile mobile --package prescreen-android
echo "native libraries in $out:"
find "$out" -name '*.so' -exec ls -l {} +
