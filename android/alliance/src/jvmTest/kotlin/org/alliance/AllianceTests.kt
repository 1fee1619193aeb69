package org.alliance

/**
 * The wrapper's scenarios (issue 5), run on the JVM against the host build of alliance-ffi:
 *   java -Djna.library.path=target/debug -cp ... org.alliance.AllianceTestsKt
 * Each test goes through the public wrapper (org.alliance.*), never the generated names.
 *
 * TODO(bindings): write each pending scenario as `suite.test(name) { ... }` once `Alliance.kt`
 * exists. Open stores in a fresh temporary folder with a 32-byte key, as a shell would.
 */
fun main(args: Array<String>) {
    val suite = TestSuite()

    suite.pending("counselor creates a plan and enrolls a client")
    suite.pending("client proposes a goal in their own words")
    suite.pending("goal is agreed only after client and counselor both agree")
    suite.pending("editing agreed content makes the agreement stale")
    suite.pending("client checks in daily and a correction is a new entry")
    suite.pending("observer flow emits on each local change")
    suite.pending("client editing the clinical statement throws NotAllowed")
    suite.pending("malformed id, empty words, GAS level 7 throw InvalidInput")
    suite.pending("unknown plan throws NotFound")
    suite.pending("a closed store throws Closed, never crashes")
    suite.pending("two Alliance instances in one process converge")

    suite.runAndExit(args)
}
