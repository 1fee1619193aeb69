package org.alliance

import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import java.io.File
import java.nio.file.Files

/**
 * The wrapper's scenarios (issue 5), run on the JVM against the host build of alliance-ffi:
 *   java -Djna.library.path=target/debug -cp ... org.alliance.AllianceTestsKt
 * Each test goes through the public wrapper (org.alliance.*), never the generated names (test hooks
 * for what no app may do, like writing a change peers refuse, are in TestHooks.kt), and opens its
 * stores as files in a fresh temporary folder, as an app would.
 */

private val folder: File = Files.createTempDirectory("alliance-kotlin-tests").toFile().also { dir ->
    Runtime.getRuntime().addShutdownHook(Thread { dir.deleteRecursively() })
}
private var opened = 0

/** The key the test stores are encrypted with, as an app's would be. */
private val testKey = ByteArray(32) { it.toByte() }

/** A new encrypted store file in the temporary folder. */
private suspend fun openStore(): Alliance = Alliance.open(File(folder, "store-${opened++}.db").path, testKey)

private class World(
    val counselor: Alliance,
    val client: Alliance,
    val dana: Identity,
    val sam: Identity,
    val planId: String,
)

/** A counselor's plan with the client's phone enrolled, synced to the client. */
private suspend fun world(): World {
    val counselor = openStore()
    val client = openStore()
    val dana = counselor.initIdentity("Dana", Role.COUNSELOR)
    val sam = client.initIdentity("Sam", Role.CLIENT)
    val planId = counselor.createPlan("Sleep and work", "Sam", clientMemberId = sam.memberId)
    counselor.enrollDevice(planId, sam.deviceId, sam.memberId, "Sam's phone")
    counselor.syncWith(client)
    return World(counselor, client, dana, sam, planId)
}

/** A world where the client proposed a goal, synced to the counselor. */
private suspend fun worldWithGoal(): Pair<World, String> {
    val w = world()
    val goalId = w.client.proposeGoal(w.planId, "Be asleep before midnight on work nights")
    w.client.syncWith(w.counselor)
    return w to goalId
}

/**
 * Joins two in-person sessions with an in-memory pipe and moves frames until neither side has
 * more; `deliver(n)` false drops the n-th frame, as a link that goes down. Returns frames moved.
 */
private suspend fun pipe(a: InPersonSession, b: InPersonSession, deliver: (Int) -> Boolean = { true }): Int {
    val toB = ArrayDeque(a.start())
    val toA = ArrayDeque(b.start())
    var moved = 0
    var lossy = false
    while (true) {
        if (toA.isEmpty() && toB.isEmpty()) {
            if (lossy) break
            toB.addAll(a.poll())
            toA.addAll(b.poll())
            if (toA.isEmpty() && toB.isEmpty()) break
        }
        for ((queue, into, back) in listOf(Triple(toB, b, toA), Triple(toA, a, toB))) {
            val frame = queue.removeFirstOrNull() ?: continue
            moved++
            check(moved < 10_000) { "the sessions never settle" }
            if (!deliver(moved)) {
                lossy = true
                continue
            }
            back.addAll(into.receive(frame))
        }
    }
    return moved
}

fun main(args: Array<String>) {
    val suite = TestSuite()

    suite.test("an enrollment code carries the device and its key; enrolling from it records the key") {
        val counselor = openStore()
        val client = openStore()
        counselor.initIdentity("Dana", Role.COUNSELOR)
        val sam = client.initIdentity("Sam", Role.CLIENT)
        val code = client.enrollmentCode()
        assertTrue(code.startsWith("alliance-device:"), code)
        val planId = counselor.createPlan("Sleep and work", "Sam", clientMemberId = sam.memberId)
        assertThrows<AllianceException.InvalidInput> {
            counselor.enrollDeviceFromCode(planId, code.dropLast(2) + "zz", sam.memberId, "Sam's phone")
        }
        assertEquals(null, counselor.readPlan(planId).devices.find { it.deviceId == sam.deviceId }, "nothing written")
        counselor.enrollDeviceFromCode(planId, code, sam.memberId, "Sam's phone")
        val device = counselor.readPlan(planId).devices.single { it.deviceId == sam.deviceId }
        assertTrue(device.publicKey != null, "the key is recorded")
        // The same code again changes nothing: a key is written once.
        counselor.enrollDeviceFromCode(planId, code, sam.memberId, "Sam's phone")
        assertEquals(device, counselor.readPlan(planId).devices.single { it.deviceId == sam.deviceId })
        counselor.close()
        client.close()
    }

    suite.test("two phones in one room sync in person, and a dropped link resumes") {
        val counselor = openStore()
        val client = openStore()
        counselor.initIdentity("Dana", Role.COUNSELOR)
        val sam = client.initIdentity("Sam", Role.CLIENT)
        val planId = counselor.createPlan("Sleep and work", "Sam", clientMemberId = sam.memberId)
        counselor.enrollDevice(planId, sam.deviceId, sam.memberId, "Sam's phone")
        // The client's phone holds nothing yet: it finds the plan that enrolls it.
        InPersonSession(counselor).use { a ->
            InPersonSession(client).use { b ->
                pipe(a, b)
                assertTrue(a.isSettled && b.isSettled, "both sides settled")
                assertEquals(listOf(planId), b.report().planIds)
            }
        }
        assertEquals(counselor.readPlan(planId), client.readPlan(planId))
        val goalId = client.proposeGoal(planId, "Be asleep before midnight")
        repeat(5) { client.checkIn(planId, goalId, NewCheckIn(gasLevel = 0, note = "night $it")) }
        // The link drops after three frames; the next session finishes the job.
        InPersonSession(client).use { a -> InPersonSession(counselor).use { b -> pipe(a, b) { it <= 3 } } }
        InPersonSession(client).use { a -> InPersonSession(counselor).use { b -> pipe(a, b) } }
        val plan = counselor.readPlan(planId)
        assertEquals(plan, client.readPlan(planId))
        assertEquals(5, plan.goals.single().checkins.size)
        counselor.close()
        client.close()
    }

    suite.test("check-ins only append, and compactDue merges them into the plan's snapshot") {
        val (w, goalId) = worldWithGoal()
        var made = 0
        var compacted = 0
        while (compacted == 0 && made < 300) {
            w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 0, note = "night $made"))
            made++
            compacted = w.client.compactDue()
        }
        assertEquals(1, compacted)
        assertEquals(0, w.client.compactDue())
        assertEquals(made, w.client.readPlan(w.planId).goals.single().checkins.size)
        w.counselor.close()
        w.client.close()
    }

    suite.test("counselor creates a plan and enrolls a client") {
        val w = world()
        val plan = w.counselor.readPlan(w.planId)
        assertEquals("Sleep and work", plan.title)
        assertEquals(setOf(Role.COUNSELOR, Role.CLIENT), plan.members.map { it.role }.toSet())
        assertEquals("Sam", plan.member(w.sam.memberId)?.name)
        assertTrue(plan.devices.any { it.deviceId == w.sam.deviceId && it.memberId == w.sam.memberId }, "client device enrolled")
        assertEquals(listOf(w.planId), w.counselor.plans().map { it.planId })
        assertEquals(listOf(w.planId), w.client.plans().map { it.planId }, "the plan reached the client")
        assertEquals(plan, w.client.readPlan(w.planId))
    }

    suite.test("client proposes a goal in their own words") {
        val (w, goalId) = worldWithGoal()
        val goal = w.counselor.readPlan(w.planId).goal(goalId) ?: fail("goal did not reach the counselor")
        assertEquals("Be asleep before midnight on work nights", goal.clientWords)
        assertEquals(w.sam.memberId, goal.proposedBy)
        assertEquals(GoalStatus.PROPOSED, goal.status)
        assertEquals(AgreementState.PENDING, goal.agreement.state)
    }

    suite.test("goal is agreed only after client and counselor both agree") {
        val (w, goalId) = worldWithGoal()
        w.client.agree(w.planId, goalId)
        val halfway = w.client.readPlan(w.planId).goal(goalId)!!.agreement
        assertTrue(!halfway.isAgreed, "one agreement is not enough")
        assertEquals(listOf(w.sam.memberId), halfway.agreedBy)
        assertTrue(w.dana.memberId in halfway.waitingFor, "waiting for the counselor")
        w.client.syncWith(w.counselor)
        w.counselor.agree(w.planId, goalId)
        w.counselor.syncWith(w.client)
        for (side in listOf(w.counselor, w.client)) {
            val agreement = side.readPlan(w.planId).goal(goalId)!!.agreement
            assertTrue(agreement.isAgreed, "agreed on both devices")
            assertEquals(emptyList<String>(), agreement.waitingFor)
        }
    }

    suite.test("editing agreed content makes the agreement stale") {
        val (w, goalId) = worldWithGoal()
        w.client.agree(w.planId, goalId)
        w.client.syncWith(w.counselor)
        w.counselor.agree(w.planId, goalId)
        assertTrue(w.counselor.readPlan(w.planId).goal(goalId)!!.agreement.isAgreed)
        w.counselor.editGoal(w.planId, goalId, GoalEdit(clinicalStatement = "Sleep hygiene: consistent bedtime"))
        w.counselor.syncWith(w.client)
        val agreement = w.client.readPlan(w.planId).goal(goalId)!!.agreement
        assertEquals(AgreementState.STALE, agreement.state)
        assertTrue(w.sam.memberId in agreement.waitingFor, "the client must agree again")
    }

    suite.test("client checks in daily and a correction is a new entry") {
        val (w, goalId) = worldWithGoal()
        val first = w.client.checkIn(
            w.planId, goalId,
            NewCheckIn(gasLevel = 1, mood = 7, note = "in bed 23:40", localDate = "2026-03-01", tzOffsetMin = 60),
        )
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 0, localDate = "2026-03-02", tzOffsetMin = 60))
        val fix = w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = -1, note = "it was 00:30", corrects = first))
        val goal = w.client.readPlan(w.planId).goal(goalId)!!
        assertEquals(3, goal.checkins.size)
        val original = goal.checkins.single { it.checkinId == first }
        val correction = goal.checkins.single { it.checkinId == fix }
        assertTrue(original.superseded, "the corrected entry is kept, marked superseded")
        assertEquals("in bed 23:40", original.note)
        assertEquals(first, correction.corrects)
        assertEquals("2026-03-01", correction.localDate, "a correction keeps the day it corrects")
        assertEquals(w.sam.memberId, correction.by)
        w.client.syncWith(w.counselor)
        assertEquals(goal.checkins.toSet(), w.counselor.readPlan(w.planId).goal(goalId)!!.checkins.toSet())
    }

    suite.test("observer flow emits on each local change and each merged remote change") {
        val w = world()
        coroutineScope {
            val updates = Channel<Plan>(Channel.UNLIMITED)
            val collector = launch { w.client.plan(w.planId).collect { updates.send(it) } }
            suspend fun next(what: String, matches: (Plan) -> Boolean): Plan = try {
                withTimeout(10_000) {
                    var plan = updates.receive()
                    while (!matches(plan)) plan = updates.receive()
                    plan
                }
            } catch (e: TimeoutCancellationException) {
                fail("no plan update $what")
            }
            next("the current plan first") { it.goals.isEmpty() }
            val goalId = w.client.proposeGoal(w.planId, "Walk the dog every morning")
            next("after proposing") { it.goal(goalId) != null }
            w.client.agree(w.planId, goalId)
            next("after agreeing") { it.goal(goalId)!!.agreement.agreedBy.isNotEmpty() }
            w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 0))
            next("after checking in") { it.goal(goalId)!!.checkins.size == 1 }
            w.client.setGas(w.planId, goalId, GasEdit.Level(2, "Every morning, an hour"))
            next("after describing a GAS level") { it.goal(goalId)!!.gas.levels[2] != null }
            w.counselor.setTitle(w.planId, "Mornings")
            w.counselor.syncWith(w.client)
            next("after a merged remote change") { it.title == "Mornings" }
            collector.cancel()
        }
    }

    suite.test("client editing the clinical statement throws NotAllowed") {
        val (w, goalId) = worldWithGoal()
        val before = w.client.readPlan(w.planId)
        assertThrows<AllianceException.NotAllowed> {
            w.client.editGoal(w.planId, goalId, GoalEdit(clinicalStatement = "Insomnia, moderate"))
        }
        assertThrows<AllianceException.NotAllowed> { w.client.setTitle(w.planId, "My plan") }
        assertThrows<AllianceException.NotAllowed> {
            w.client.addObjective(w.planId, goalId, NewObjective("Lights out by 23:30"))
        }
        assertEquals(before, w.client.readPlan(w.planId), "a refused edit writes nothing")
    }

    suite.test("wrong role and a missing identity throw typed exceptions") {
        val client = openStore()
        assertThrows<AllianceException.NotInitialized> { client.createPlan("Plan", "Sam") }
        client.initIdentity("Sam", Role.CLIENT)
        assertThrows<AllianceException.NotAllowed> { client.createPlan("Plan", "Sam") }
        assertThrows<AllianceException.NotAllowed> { client.initIdentity("Sam again", Role.CLIENT) }
    }

    suite.test("malformed id, empty words, GAS level 7 throw InvalidInput") {
        val (w, goalId) = worldWithGoal()
        assertThrows<AllianceException.InvalidInput> { w.client.readPlan("not-a-plan-id") }
        assertThrows<AllianceException.InvalidInput> { w.client.agree(w.planId, "42") }
        assertThrows<AllianceException.InvalidInput> { w.client.proposeGoal(w.planId, "   ") }
        assertThrows<AllianceException.InvalidInput> { w.client.setGas(w.planId, goalId, GasEdit.Level(7, "too high")) }
        assertThrows<AllianceException.InvalidInput> { w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 7)) }
        assertThrows<AllianceException.InvalidInput> { w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 300)) }
        assertThrows<AllianceException.InvalidInput> { w.client.checkIn(w.planId, goalId, NewCheckIn(mood = 11)) }
        assertThrows<AllianceException.InvalidInput> { w.counselor.setReviewOn(w.planId, "next Tuesday") }
        assertThrows<AllianceException.InvalidInput> { w.counselor.createPlan("", "Sam") }
        assertEquals(0, w.client.readPlan(w.planId).goal(goalId)!!.checkins.size, "nothing was written")
    }

    suite.test("unknown plan or goal throws NotFound") {
        val (w, _) = worldWithGoal()
        val elsewhere = "6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f"
        assertThrows<AllianceException.NotFound> { w.client.readPlan(elsewhere) }
        assertThrows<AllianceException.NotFound> { w.client.agree(w.planId, elsewhere) }
        assertThrows<AllianceException.NotFound> { w.client.history(elsewhere) }
    }

    suite.test("a closed store throws Closed, never crashes") {
        val w = world()
        w.client.close()
        assertThrows<AllianceException.Closed> { w.client.readPlan(w.planId) }
        assertThrows<AllianceException.Closed> { w.client.proposeGoal(w.planId, "Anything") }
        assertThrows<AllianceException.Closed> { w.client.plans() }
        assertThrows<AllianceException.Closed> { w.client.plan(w.planId).collect { } }
        assertThrows<AllianceException.Closed> { w.counselor.syncWith(w.client) }
        w.client.close()
        assertEquals("Sleep and work", w.counselor.readPlan(w.planId).title, "the other store is unaffected")
    }

    suite.test("an encrypted store opens with its key only, and a rekey changes the key") {
        val path = File(folder, "store-${opened++}.db").path
        val store = Alliance.open(path, testKey)
        store.initIdentity("Dana", Role.COUNSELOR)
        store.close()
        assertThrows<AllianceException.WrongKey> { Alliance.open(path, ByteArray(32)) }
        assertThrows<AllianceException.WrongKey> { Alliance.open(path, null) }
        val again = Alliance.open(path, testKey)
        val newKey = ByteArray(32) { 9 }
        again.rekey(newKey)
        again.close()
        assertThrows<AllianceException.WrongKey> { Alliance.open(path, testKey) }
        assertEquals("Dana", Alliance.open(path, newKey).identity()?.name)
    }

    suite.test("history names who changed what") {
        val (w, goalId) = worldWithGoal()
        w.client.agree(w.planId, goalId)
        val history = w.client.history(w.planId)
        assertEquals("created the plan", history.first().description)
        assertEquals("Dana", history.first().author)
        assertEquals("agreed to a goal", history.last().description)
        assertEquals(w.sam.memberId, history.last().memberId)
    }

    suite.test("a plan exports as a FHIR bundle with the goal in the client's words") {
        val (w, goalId) = worldWithGoal()
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 1, localDate = "2026-03-01", tzOffsetMin = 0))
        w.client.syncWith(w.counselor)
        val bundle = parseJson(w.counselor.exportFhir(w.planId))
        assertEquals("Bundle", bundle["resourceType"])
        assertEquals("collection", bundle["type"])
        val resources = bundle["entry"].elements().map { it["resource"] }
        val goal = resources.single { it["resourceType"] == "Goal" }
        assertEquals(goalId, goal["id"])
        assertEquals("Be asleep before midnight on work nights", goal["description"]["text"])
        val carePlan = resources.single { it["resourceType"] == "CarePlan" }
        assertEquals("Sleep and work", carePlan["title"])
        val patient = resources.single { it["resourceType"] == "Patient" }
        assertEquals(w.sam.memberId, patient["id"])
        assertTrue(resources.any { it["resourceType"] == "Observation" }, "the check-in is an Observation")
        assertThrows<AllianceException.NotFound> { w.counselor.exportFhir("6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f") }
    }

    suite.test("a JSON export imports into a second Alliance as the same plan") {
        val (w, goalId) = worldWithGoal()
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 0, note = "late", localDate = "2026-03-01"))
        w.client.syncWith(w.counselor)
        w.counselor.editGoal(w.planId, goalId, GoalEdit(clinicalStatement = "Delayed sleep phase"))
        val file = w.counselor.exportJson(w.planId)
        val archive = openStore()
        archive.initIdentity("Lee", Role.COUNSELOR)
        assertEquals(w.planId, archive.importJson(file))
        assertEquals(w.counselor.readPlan(w.planId), archive.readPlan(w.planId))
        assertEquals(w.counselor.history(w.planId).size, archive.history(w.planId).size)
        assertThrows<AllianceException.InvalidInput> { archive.importJson(file) }
        assertThrows<AllianceException.InvalidInput> { archive.importJson("{\"not\": \"a plan\"}") }
    }

    suite.test("the printable summary holds the client's words and the part 2 notice") {
        val (w, _) = worldWithGoal()
        val markdown = w.client.exportMarkdown(w.planId)
        assertTrue("Be asleep before midnight on work nights" in markdown, "the goal in the client's words")
        assertTrue("42 CFR part 2" in markdown, "the part 2 notice")
    }

    suite.test("progress after check-ins shows the series, latest level and trend") {
        val (w, goalId) = worldWithGoal()
        for ((day, level) in listOf("2026-03-01" to -1, "2026-03-02" to 0, "2026-03-03" to 1)) {
            w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = level, localDate = day, tzOffsetMin = 0))
        }
        w.client.checkIn(w.planId, goalId, NewCheckIn(mood = 6)) // today, no rating
        val progress = w.client.progress(w.planId)
        assertEquals(3, progress.trendWindow)
        val goal = progress.goal(goalId) ?: fail("no progress for the goal")
        assertEquals(3, goal.series.size)
        assertEquals(listOf(-1, 0, 1), goal.series.map { it.level })
        assertEquals("2026-03-01", goal.series.first().localDate)
        assertEquals(1, goal.latestLevel)
        assertEquals(Trend.IMPROVING, goal.trend)
        assertEquals(1, goal.daysCheckedIn.last7Days, "only today is within the last 7 days")
        assertEquals(1, progress.daysCheckedIn.last30Days)
        assertEquals(listOf("2026-03-01", "2026-03-02", "2026-03-03"), progress.tScores.map { it.localDate })
        assertTrue(progress.tScores.first().tScore < progress.tScores.last().tScore, "the T-score rises")
        assertEquals(2, w.client.progress(w.planId, trendWindow = 2).trendWindow)
        assertThrows<AllianceException.InvalidInput> { w.client.progress(w.planId, trendWindow = 1) }
    }

    suite.test("a check-in dated far ahead is futureDated and not counted; the client's today is shared") {
        val (w, goalId) = worldWithGoal()
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = -1, tzOffsetMin = 840))
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 2, localDate = "2099-01-01", tzOffsetMin = 0))
        w.client.syncWith(w.counselor)
        val plan = w.counselor.readPlan(w.planId)
        val goal = plan.goal(goalId) ?: fail("no goal")
        assertEquals(listOf("2099-01-01"), goal.checkins.filter { it.futureDated }.map { it.localDate })
        assertEquals(-1, goal.latestGasLevel, "the future-dated +2 does not count")
        val clientsDay = goal.checkins.single { !it.futureDated }.localDate
        assertEquals(clientsDay, plan.clientToday, "the client's day at UTC+14, on the counselor's device")
        assertEquals(clientsDay, w.counselor.progress(w.planId).asOf)
    }

    suite.test("the review report is one self-contained HTML document, also inside the FHIR bundle") {
        val (w, goalId) = worldWithGoal()
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 0, mood = 6, craving = 3))
        w.client.syncWith(w.counselor)
        val html = w.counselor.exportReport(w.planId)
        assertTrue(html.startsWith("<!DOCTYPE html>"), "an HTML document")
        assertTrue("Be asleep before midnight on work nights" in html, "the goal in the client's words")
        assertTrue("<svg " in html, "inline SVG charts")
        assertTrue("<script" !in html.lowercase() && "http://" !in html, "no scripts, nothing fetched")
        val resources = parseJson(w.counselor.exportFhir(w.planId))["entry"].elements().map { it["resource"] }
        val document = resources.single { it["resourceType"] == "DocumentReference" }
        assertEquals("text/html", document["content"].elements().single()["attachment"]["contentType"])
        assertThrows<AllianceException.NotFound> { w.counselor.exportReport("6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f") }
    }

    suite.test("a counselor issues a token for an enrolled device and revokes it") {
        val w = world()
        val token = w.counselor.issueDeviceToken(w.planId, w.sam.deviceId)
        assertEquals(64, token.value.length)
        assertTrue(token.value !in token.toString(), "toString never shows the token")
        assertEquals(token, w.counselor.issueDeviceToken(w.planId, w.sam.deviceId, reuse = token))
        val unknownDevice = "0123456789abcdef0123456789abcdef"
        assertThrows<AllianceException.NotFound> { w.counselor.issueDeviceToken(w.planId, unknownDevice) }
        assertThrows<AllianceException.NotFound> { w.counselor.revokeDevice(w.planId, unknownDevice) }
        assertThrows<AllianceException.NotAllowed> { w.client.issueDeviceToken(w.planId, w.sam.deviceId) }
        assertThrows<AllianceException.NotAllowed> { w.client.revokeDevice(w.planId, w.sam.deviceId) }
        val malformed = assertThrows<AllianceException.InvalidInput> {
            w.counselor.issueDeviceToken(w.planId, w.sam.deviceId, reuse = RelayToken("secret-typo"))
        }
        assertTrue("secret-typo" !in (malformed.message ?: ""), "the error does not echo the token")
        w.counselor.revokeDevice(w.planId, w.sam.deviceId)
        assertEquals("revoked a device", w.counselor.history(w.planId).last().description)
    }

    suite.test("plans due for review follow their review dates") {
        val w = world()
        assertEquals(listOf(w.planId), w.counselor.plansDueForReview().map { it.planId }, "no date: due")
        w.counselor.setReviewOn(w.planId, "2999-01-01")
        assertEquals(emptyList<String>(), w.counselor.plansDueForReview(withinDays = 30).map { it.planId })
        w.counselor.setReviewOn(w.planId, "2020-01-01")
        assertEquals(listOf(w.planId), w.counselor.plansDueForReview().map { it.planId }, "overdue: due")
        assertThrows<AllianceException.InvalidInput> { w.counselor.plansDueForReview(withinDays = -1) }
    }

    suite.test("two Alliance instances in one process converge (in-process messages)") {
        val (w, goalId) = worldWithGoal()
        // Both devices work offline at the same time, then sync.
        w.counselor.editGoal(w.planId, goalId, GoalEdit(clinicalStatement = "Delayed sleep phase"))
        w.counselor.addObjective(w.planId, goalId, NewObjective("Lights out by 23:30", measure = "nights", target = 5.0))
        w.counselor.setReviewOn(w.planId, "2026-04-01")
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 1, note = "good night"))
        w.client.setGas(w.planId, goalId, GasEdit.Level(0, "Asleep by midnight 4 nights a week"))
        val report = w.client.syncWith(w.counselor)
        assertEquals(listOf(w.planId), report.planIds)
        assertTrue(report.messages > 0 && report.bytes > 0, "messages were exchanged")
        val counselorView = w.counselor.readPlan(w.planId)
        assertEquals(counselorView, w.client.readPlan(w.planId))
        val goal = counselorView.goal(goalId)!!
        assertEquals("Delayed sleep phase", goal.clinicalStatement)
        assertEquals(1, goal.objectives.size)
        assertEquals(1, goal.checkins.size)
        assertEquals("2026-04-01", counselorView.reviewOn)
        assertEquals(1, goal.latestGasLevel)
        assertTrue(counselorView.gasTScore != null, "a rated goal gives a T-score")
    }

    suite.test("two Alliance instances converge through a loopback relay") {
        val relayUrl = System.getenv("ALLIANCE_TEST_RELAY") ?: fail("ALLIANCE_TEST_RELAY is not set")
        val (w, goalId) = worldWithGoal()
        // Each device presents the token its counselor issued (this relay accepts any).
        val counselorDevice = w.counselor.identity()!!.deviceId
        w.counselor.startSync(relayUrl, w.counselor.issueDeviceToken(w.planId, counselorDevice))
        w.client.startSync(relayUrl, w.counselor.issueDeviceToken(w.planId, w.sam.deviceId))
        try {
            coroutineScope {
                // The counselor's screen shows the client's check-in when it arrives.
                val arrived = async { w.counselor.plan(w.planId).first { it.goal(goalId)!!.checkins.isNotEmpty() } }
                w.counselor.editGoal(w.planId, goalId, GoalEdit(clinicalStatement = "Delayed sleep phase"))
                w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 1, note = "good night"))
                withTimeout(30_000) { arrived.await() }
            }
            withTimeout(30_000) {
                while (w.client.readPlan(w.planId) != w.counselor.readPlan(w.planId)) delay(20)
            }
            assertEquals("Delayed sleep phase", w.client.readPlan(w.planId).goal(goalId)!!.clinicalStatement)
            val synced = withTimeout(30_000) { w.client.syncProgress.first { it != null && it.connected && it.plansSynced == 1 } }
            assertEquals(1, synced!!.plansTotal)
        } finally {
            w.client.stopSync()
            w.counselor.stopSync()
        }
        assertEquals(null, w.client.syncProgress.value)
    }

    suite.test("an unreachable server shows in sync progress, local work goes on") {
        val (w, _) = worldWithGoal()
        val port = java.net.ServerSocket(0).use { it.localPort } // free again once closed
        w.client.startSync("ws://127.0.0.1:$port")
        val failed = withTimeout(30_000) { w.client.syncProgress.first { it?.lastError != null } }
        assertTrue(!failed!!.connected, "not connected")
        w.client.proposeGoal(w.planId, "Walk daily")
        w.client.stopSync()
        w.client.close()
        assertThrows<AllianceException.Closed> { w.client.startSync("ws://127.0.0.1:$port") }
    }

    suite.test("a change the relay refuses is told once as a typed event, and later check-ins still arrive") {
        val relayUrl = System.getenv("ALLIANCE_TEST_RELAY") ?: fail("ALLIANCE_TEST_RELAY is not set")
        val (w, goalId) = worldWithGoal()
        // The client's phone holds a status change only a counselor may make (written through the
        // test hook, as a build with other rules would) and, built on it, an honest check-in.
        w.client.editGoalUnchecked(w.planId, goalId, GoalEdit(status = GoalStatus.ACTIVE))
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 1, note = "walked"))
        val counselorDevice = w.counselor.identity()!!.deviceId
        w.counselor.startSync(relayUrl, w.counselor.issueDeviceToken(w.planId, counselorDevice))
        w.client.startSync(relayUrl, w.counselor.issueDeviceToken(w.planId, w.sam.deviceId))
        try {
            val refused = withTimeout(30_000) { w.client.refusedChanges.first() }
            assertEquals(w.planId, refused.planId)
            assertEquals(w.sam.deviceId, refused.deviceId)
            assertEquals("only a counselor writes a goal's status", refused.rule)
            // The check-in built on it reaches the counselor; the refused status does not.
            val seen = withTimeout(30_000) {
                w.counselor.plan(w.planId).first { it.goal(goalId)!!.checkins.size == 1 }
            }
            assertEquals(GoalStatus.PROPOSED, seen.goal(goalId)!!.status)
            // Later edits flow while sync goes on; nothing more is refused.
            w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 2, note = "slept"))
            withTimeout(30_000) { w.counselor.plan(w.planId).first { it.goal(goalId)!!.checkins.size == 2 } }
            withTimeout(30_000) {
                while (w.client.readPlan(w.planId) != w.counselor.readPlan(w.planId)) delay(20)
            }
            assertEquals(GoalStatus.PROPOSED, w.client.readPlan(w.planId).goal(goalId)!!.status)
            val more = withTimeoutOrNull(500) { w.client.refusedChanges.first() }
            assertEquals(null, more, "told once")
        } finally {
            w.client.stopSync()
            w.counselor.stopSync()
        }
    }

    suite.test("an in-process sync reports the own change the other device refused") {
        val (w, goalId) = worldWithGoal()
        w.client.editGoalUnchecked(w.planId, goalId, GoalEdit(status = GoalStatus.ACTIVE))
        w.client.checkIn(w.planId, goalId, NewCheckIn(gasLevel = 1, note = "walked"))
        val report = w.client.syncWith(w.counselor)
        assertEquals(1, report.refused.size, "${report.refused}")
        val refused = report.refused.single()
        assertEquals(w.planId, refused.planId)
        assertEquals(w.sam.deviceId, refused.deviceId)
        assertEquals("only a counselor writes a goal's status", refused.rule)
        assertEquals(1, w.counselor.readPlan(w.planId).goal(goalId)!!.checkins.size)
        assertEquals(w.counselor.readPlan(w.planId), w.client.readPlan(w.planId))
        assertEquals(emptyList<RefusedChange>(), w.counselor.syncWith(w.client).refused, "told once")
    }

    suite.test("a copied phone is told CopiedIdentity; enrolled again from its new code, every edit lands") {
        val counselor = openStore()
        val phone = File(folder, "store-${opened++}.db")
        var client = Alliance.open(phone.path, testKey)
        counselor.initIdentity("Dana", Role.COUNSELOR)
        val sam = client.initIdentity("Sam", Role.CLIENT)
        val planId = counselor.createPlan("Sleep and work", "Sam", clientMemberId = sam.memberId)
        counselor.enrollDeviceFromCode(planId, client.enrollmentCode(), sam.memberId, "Sam's phone")
        val goalId = counselor.proposeGoal(planId, "Be asleep before midnight")
        counselor.syncWith(client)
        // The phone's store, closed, copied to a second phone; both are used.
        client.close()
        val second = File(folder, "store-${opened++}.db")
        phone.copyTo(second)
        client = Alliance.open(phone.path, testKey)
        val copy = Alliance.open(second.path, testKey)
        client.checkIn(planId, goalId, NewCheckIn(gasLevel = 0, note = "original"))
        copy.checkIn(planId, goalId, NewCheckIn(gasLevel = 1, note = "copy"))
        client.syncWith(counselor)
        copy.syncWith(counselor)
        val known = copy.copiedIdentity() ?: fail("the copy was not told")
        assertEquals(sam.deviceId, known.formerDeviceId)
        assertTrue(known.deviceId != sam.deviceId, "a new device id")
        assertEquals(listOf(planId), known.waitingPlanIds)
        assertEquals(null, client.copiedIdentity(), "the original keeps its identity")
        val refused = assertThrows<AllianceException.CopiedIdentity> {
            copy.checkIn(planId, goalId, NewCheckIn(gasLevel = 2, note = "later"))
        }
        assertEquals(known.enrollmentCode, refused.enrollmentCode)
        counselor.enrollDeviceFromCode(planId, refused.enrollmentCode, sam.memberId, "Sam's second phone")
        counselor.syncWith(copy)
        counselor.syncWith(client)
        for (store in listOf(client, copy, counselor)) {
            val notes = store.readPlan(planId).goal(goalId)!!.checkins.map { it.note }.sorted()
            assertEquals(listOf("copy", "original"), notes)
        }
        listOf(client, copy, counselor).forEach { it.close() }
    }

    suite.runAndExit(args)
}
