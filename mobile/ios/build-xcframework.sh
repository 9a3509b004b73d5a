#!/usr/bin/env bash
# Builds build/PrescreenFFI.xcframework for the Swift package, on a Mac with Xcode and rustup:
# the static library for iOS devices (arm64) and the simulator (arm64 + x86_64, one fat library),
# with the committed C header and module map (Sources/PrescreenFFI/include). The `mobile` profile (fat LTO, one codegen unit; see the workspace
# Cargo.toml); Xcode strips the app's symbols when it links.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
command -v xcodebuild >/dev/null || { echo "xcodebuild not found: this script runs on macOS with Xcode" >&2; exit 1; }
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${targets[@]}" >/dev/null
cd "$root"
export IPHONEOS_DEPLOYMENT_TARGET=15.0
for t in "${targets[@]}"; do
  # The crate is a cdylib + rlib for host builds; the static library is asked for here.
  cargo rustc --package prescreen-ios --lib --profile mobile --target "$t" --crate-type staticlib
done
build="$here/build"
rm -rf "$build/PrescreenFFI.xcframework" "$build/headers" "$build/sim"
mkdir -p "$build/headers" "$build/sim"
cp "$here/Sources/PrescreenFFI/include/prescreenFFI.h" "$here/Sources/PrescreenFFI/include/module.modulemap" "$build/headers/"
lipo -create \
  target/aarch64-apple-ios-sim/mobile/libprescreen_ios.a \
  target/x86_64-apple-ios/mobile/libprescreen_ios.a \
  -output "$build/sim/libprescreen_ios.a"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/mobile/libprescreen_ios.a -headers "$build/headers" \
  -library "$build/sim/libprescreen_ios.a" -headers "$build/headers" \
  -output "$build/PrescreenFFI.xcframework"
echo "built $build/PrescreenFFI.xcframework"
