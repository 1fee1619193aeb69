package org.alliance

import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlin.system.exitProcess

/**
 * A small test harness for running the wrapper's tests on the JVM with kotlinc and java alone
 * (JUnit and Gradle need Maven Central, which CI cannot reach). It prints one line per test and
 * closes with `N passed, N failed` (`, N skipped` when some are pending); the process exits 1
 * when a test failed or none ran, so `scripts/test-bindings.sh` fails with it.
 *
 * Pass name fragments as program arguments to run only the tests whose names contain one.
 */
class TestSuite(private val timeoutMillis: Long = 60_000) {
    private val tests = mutableListOf<Pair<String, suspend () -> Unit>>()
    private val pending = mutableListOf<String>()

    fun test(name: String, body: suspend () -> Unit) {
        tests += name to body
    }

    /** A scenario that is named but not written yet: reported as skipped, never as passed. */
    fun pending(name: String) {
        pending += name
    }

    fun runAndExit(args: Array<String>): Nothing {
        val selected = if (args.isEmpty()) tests else tests.filter { (name, _) -> args.any { it in name } }
        var passed = 0
        var failed = 0
        for ((name, body) in selected) {
            try {
                runBlocking { withTimeout(timeoutMillis) { body() } }
                passed++
                println("ok   $name")
            } catch (t: Throwable) {
                failed++
                println("FAIL $name")
                t.printStackTrace(System.out)
            }
        }
        pending.forEach { println("skip $it (not written yet)") }
        val skipped = if (pending.isEmpty()) "" else ", ${pending.size} skipped"
        println("$passed passed, $failed failed$skipped")
        if (selected.isEmpty()) System.err.println("no test ran")
        exitProcess(if (failed == 0 && selected.isNotEmpty()) 0 else 1)
    }
}

class AssertionFailed(message: String) : AssertionError(message)

fun fail(message: String): Nothing = throw AssertionFailed(message)

fun assertTrue(condition: Boolean, message: String = "expected true") {
    if (!condition) fail(message)
}

fun <T> assertEquals(expected: T, actual: T, message: String = "") {
    if (expected != actual) fail("expected <$expected> but was <$actual>${if (message.isEmpty()) "" else ": $message"}")
}

/** Runs [block] and returns what it threw, failing unless that is a [T]. */
suspend inline fun <reified T : Throwable> assertThrows(crossinline block: suspend () -> Unit): T {
    val thrown = try {
        block()
        null
    } catch (t: Throwable) {
        t
    }
    return when (thrown) {
        is T -> thrown
        null -> fail("expected ${T::class.simpleName}, nothing was thrown")
        else -> fail("expected ${T::class.simpleName}, got $thrown")
    }
}
