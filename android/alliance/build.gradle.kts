// The Alliance Android library: the Kotlin wrapper (src/main/kotlin), the uniffi-generated Kotlin
// (generated at build time, never committed) and liballiance_ffi.so for each ABI, built by cargo-ndk.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

/** The Cargo workspace: android/ sits in it. */
val repoRoot: File = rootProject.projectDir.parentFile
/**
 * The Cargo profile of the Rust library: "mobile" (default; LTO, one codegen unit, stripped: see
 * [profile.mobile] in the workspace Cargo.toml) or "debug" (`-Palliance.rustProfile=debug`,
 * unoptimized, for faster local builds).
 */
val rustProfile: String = providers.gradleProperty("alliance.rustProfile").getOrElse("mobile")
/** The ABIs shipped in the AAR; cargo-ndk maps them to Rust targets. */
val rustAbis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")
val minApi = 26

val rustJniLibs = layout.buildDirectory.dir("rustJniLibs")
val uniffiKotlin = layout.buildDirectory.dir("generated/uniffi/kotlin")

android {
    namespace = "org.alliance"
    compileSdk = 36

    defaultConfig {
        minSdk = minApi
        consumerProguardFiles("consumer-rules.pro")
        ndk { abiFilters += rustAbis }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets["main"].apply {
        jniLibs.srcDir(rustJniLibs)
        kotlin.srcDir(uniffiKotlin)
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    // The generated Kotlin calls the Rust library through JNA; the AAR carries its native part.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    // suspend functions and Flow<Plan> are part of the public API.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.10.2")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}

/** Fails the build with what to install when cargo-ndk or an NDK is missing. */
fun requireRustAndroidTools(sdkDir: File) {
    val cargoNdk = try {
        ProcessBuilder("cargo", "ndk", "--version").redirectErrorStream(true).start().waitFor() == 0
    } catch (e: java.io.IOException) {
        false
    }
    if (!cargoNdk) {
        throw GradleException(
            "The Rust library needs cargo and cargo-ndk: install Rust with rustup, then " +
                "`cargo install cargo-ndk`."
        )
    }
    val ndkHome = System.getenv("ANDROID_NDK_HOME") ?: System.getenv("ANDROID_NDK_ROOT")
    if (ndkHome == null && !sdkDir.resolve("ndk").isDirectory) {
        throw GradleException(
            "No Android NDK found: set ANDROID_NDK_HOME, or install an NDK (r28 or later) " +
                "with the SDK manager (`sdkmanager --list | grep ndk`, then `sdkmanager \"ndk;VERSION\"`)."
        )
    }
}

// Rust: cargo-ndk cross-compiles alliance-ffi into build/rustJniLibs/<abi>/liballiance_ffi.so.
// Needs `cargo install cargo-ndk`, `rustup target add aarch64-linux-android armv7-linux-androideabi
// x86_64-linux-android`, and ANDROID_NDK_HOME (or an NDK installed through the SDK manager). The
// workspace's .cargo/config.toml links every Android ABI with `-z max-page-size=16384`, so the
// libraries load on Android 15's 16 KB-page devices (scripts/test-arm.sh checks the flag's effect).
val cargoNdkBuild by tasks.registering(Exec::class) {
    group = "rust"
    description = "Builds liballiance_ffi.so for ${rustAbis.joinToString()} with cargo-ndk."
    workingDir = repoRoot
    val outDir = rustJniLibs.get().asFile
    commandLine(
        buildList {
            addAll(listOf("cargo", "ndk"))
            rustAbis.forEach { addAll(listOf("-t", it)) }
            addAll(listOf("--platform", minApi.toString(), "-o", outDir.path))
            // alliance-ffi on its own: alliance-core without its `relay` feature (a phone never
            // serves), SQLite with .cargo/config.toml's LIBSQLITE3_FLAGS (BENCHMARKS.md, "Size").
            addAll(listOf("build", "-p", "alliance-ffi", "--lib", "--locked"))
            if (rustProfile != "debug") addAll(listOf("--profile", rustProfile))
        }
    )
    val sdkDir = android.sdkDirectory
    doFirst { requireRustAndroidTools(sdkDir) }
    inputs.files(
        fileTree(repoRoot) {
            include("Cargo.toml", "Cargo.lock", ".cargo/config.toml", "core/**", "bindings/**")
            exclude("**/target/**")
        }
    )
    inputs.property("rustProfile", rustProfile)
    outputs.dir(outDir)
}

// uniffi in library mode reads the interface from any built copy of the library; the arm64 one
// is as good as the host's. Output goes to build/, never into src/.
val generateUniffiKotlin by tasks.registering(Exec::class) {
    group = "rust"
    description = "Generates the uniffi Kotlin bindings for alliance-ffi."
    dependsOn(cargoNdkBuild)
    workingDir = repoRoot
    val library = rustJniLibs.get().file("arm64-v8a/liballiance_ffi.so").asFile
    val outDir = uniffiKotlin.get().asFile
    commandLine(
        "cargo", "run", "--locked", "-p", "alliance-ffi", "--features", "bindgen",
        "--bin", "uniffi-bindgen", "--",
        "generate", "--library", library.path, "--language", "kotlin", "--no-format",
        "--out-dir", outDir.path,
    )
    inputs.file(library)
    outputs.dir(outDir)
    doFirst { outDir.deleteRecursively() }
}

tasks.named("preBuild") { dependsOn(generateUniffiKotlin) }
