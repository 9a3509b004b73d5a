// The Android library module of prescreen's Kotlin API. Build it on a machine with the Android SDK
// and NDK (see ../README.md): ./gradlew :assembleRelease
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "prescreen-android"
