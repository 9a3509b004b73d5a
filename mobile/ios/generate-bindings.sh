#!/usr/bin/env bash
# Regenerates the Swift bindings of prescreen-ios with UniFFI in library mode, from the host build
# of the library (the interface is the same on every platform):
#   Sources/Prescreen/prescreen.swift              the Swift API (committed)
#   Sources/PrescreenFFI/include/prescreenFFI.h    the C header of the FFI (committed)
#   Sources/PrescreenFFI/include/module.modulemap  its module map (committed)
# With an argument, writes that tree under DIR instead (the tests compare it with the committed
# one). Unformatted (--no-format), so the output is the same with or without swift-format.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here}"
cd "$root"
cargo build --workspace --all-targets --quiet
# Cargo's build folder: CARGO_TARGET_DIR when set.
target="${CARGO_TARGET_DIR:-target}"
case "$(uname -s)" in
  Darwin) lib="$target/debug/libprescreen_ios.dylib" ;;
  *) lib="$target/debug/libprescreen_ios.so" ;;
esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$target/debug/uniffi-bindgen" generate "$lib" --language swift --no-format --out-dir "$tmp" >/dev/null
mkdir -p "$out/Sources/Prescreen" "$out/Sources/PrescreenFFI/include"
cp "$tmp/prescreen.swift" "$out/Sources/Prescreen/prescreen.swift"
cp "$tmp/prescreenFFI.h" "$out/Sources/PrescreenFFI/include/prescreenFFI.h"
cp "$tmp/prescreenFFI.modulemap" "$out/Sources/PrescreenFFI/include/module.modulemap"
