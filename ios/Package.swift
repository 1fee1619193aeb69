// swift-tools-version:5.9
// Alliance for iOS: the Swift wrapper (`Alliance`) over the uniffi-generated Swift
// (`AllianceBindings`, generated, never committed) and the Rust library (`AllianceFFI`).
//
// By default `AllianceFFI` is AllianceFFI.xcframework, built by scripts/build-xcframework.sh.
// With ALLIANCE_LOCAL_FFI=1 it is a system library over a host build of alliance-ffi instead
// (target/debug/liballiance_ffi.so and target/bindings/swift/alliance_ffiFFI.h), which is how
// scripts/test-bindings.sh runs the tests on Linux.
import Foundation
import PackageDescription

let useLocalFFI = ProcessInfo.processInfo.environment["ALLIANCE_LOCAL_FFI"] == "1"
// scripts/test-bindings.sh builds the host library with its test hooks (alliance-ffi's
// `test-hooks` feature) and says so: only then are the tests that use them compiled.
let testHooks = useLocalFFI && ProcessInfo.processInfo.environment["ALLIANCE_TEST_HOOKS"] == "1"

// Both variants provide the C module `alliance_ffiFFI` that the generated Swift imports.
let ffiTarget: Target = useLocalFFI
    ? .systemLibrary(name: "AllianceFFI", path: "LocalFFI")
    : .binaryTarget(name: "AllianceFFI", path: "AllianceFFI.xcframework")

let package = Package(
    name: "Alliance",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Alliance", targets: ["Alliance"]),
    ],
    targets: [
        ffiTarget,
        // Holds alliance_ffi.swift, copied from uniffi-bindgen's output by the build scripts.
        .target(name: "AllianceBindings", dependencies: ["AllianceFFI"]),
        .target(name: "Alliance", dependencies: ["AllianceBindings"]),
        .testTarget(name: "AllianceTests", dependencies: ["Alliance"],
                    swiftSettings: testHooks ? [.define("ALLIANCE_TEST_HOOKS")] : []),
    ]
)
