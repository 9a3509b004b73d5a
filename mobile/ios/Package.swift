// swift-tools-version:5.9
// prescreen for iOS: the UniFFI-generated Swift API (Sources/Prescreen/prescreen.swift), a
// CVPixelBuffer extension, and the native library as an XCFramework built by
// ./build-xcframework.sh (into build/, not committed). See README.md.
import PackageDescription

let package = Package(
    name: "Prescreen",
    platforms: [.iOS(.v15), .macOS(.v13)],
    products: [
        .library(name: "Prescreen", targets: ["Prescreen"]),
    ],
    targets: [
        // The static library and the C header of its FFI (module `prescreenFFI`).
        .binaryTarget(name: "PrescreenFFI", path: "build/PrescreenFFI.xcframework"),
        .target(
            name: "Prescreen",
            dependencies: ["PrescreenFFI"],
            path: "Sources/Prescreen",
            linkerSettings: [
                // wgpu's Metal backend and the runtime's system calls.
                .linkedFramework("Metal"),
                .linkedFramework("QuartzCore"),
                .linkedFramework("CoreGraphics"),
                .linkedFramework("Foundation"),
                .linkedFramework("CoreVideo"),
            ]
        ),
    ]
)
