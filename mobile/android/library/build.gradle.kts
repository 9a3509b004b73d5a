// Android library: the Kotlin API shared with the host build (../kotlin/src/main/kotlin), the
// CameraX adapter (src/androidMain/kotlin) and the native library built by cargo-ndk
// (../build-native.sh writes build/jniLibs/<abi>/libprescreen_android.so).
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.3.21"
}

android {
    namespace = "dev.prescreen"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
    }

    sourceSets {
        getByName("main") {
            kotlin.srcDirs("../kotlin/src/main/kotlin", "src/androidMain/kotlin")
            jniLibs.srcDirs(layout.buildDirectory.dir("jniLibs"))
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
    compilerOptions {
        allWarningsAsErrors.set(true)
    }
}

dependencies {
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.10.2")
    // Only the optional CameraX adapter needs it; apps that use CameraX already have it.
    compileOnly("androidx.camera:camera-core:1.4.1")
}

// Build the native library for every ABI before packaging (needs cargo-ndk and ANDROID_NDK_HOME).
val cargoNdk by tasks.registering(Exec::class) {
    workingDir = file("..")
    commandLine("./build-native.sh", layout.buildDirectory.dir("jniLibs").get().asFile.path)
}
tasks.named("preBuild") { dependsOn(cargoNdk) }
