// Alliance for Android: the `alliance` library (Kotlin wrapper over the Rust core) and a sample app.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "alliance-android"
include(":alliance", ":sample")
