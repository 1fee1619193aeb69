// The wrapper's scenarios (issue 5) through the public Swift API, run on Linux by
// scripts/test-bindings.sh (swift test --disable-swift-testing, ALLIANCE_LOCAL_FFI=1) and on
// macOS/iOS with the XCFramework. Tests use `Alliance` and its types only, never AllianceBindings,
// and open their stores as files in a fresh temporary folder, as an app would.
import Alliance
import Foundation
import XCTest

final class AllianceTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("alliance-swift-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    // MARK: Helpers

    /// The key the test stores are encrypted with, as an app's would be.
    private let testKey = Data((0..<32).map { UInt8($0) })

    private func openStore() async throws -> Alliance {
        try await Alliance.open(path: folder.appendingPathComponent("\(UUID().uuidString).db").path, key: testKey)
    }

    private struct World {
        let counselor: Alliance
        let client: Alliance
        let dana: Identity
        let sam: Identity
        let planId: String
    }

    /// A counselor's plan with the client's phone enrolled, synced to the client.
    private func world() async throws -> World {
        let counselor = try await openStore()
        let client = try await openStore()
        let dana = try await counselor.initIdentity(name: "Dana", role: .counselor)
        let sam = try await client.initIdentity(name: "Sam", role: .client)
        let planId = try await counselor.createPlan(title: "Sleep and work", clientName: "Sam",
                                                    clientMemberId: sam.memberId)
        try await counselor.enrollDevice(planId: planId, deviceId: sam.deviceId, memberId: sam.memberId,
                                         label: "Sam's phone")
        try await counselor.sync(with: client)
        return World(counselor: counselor, client: client, dana: dana, sam: sam, planId: planId)
    }

    /// A world where the client proposed a goal, synced to the counselor.
    private func worldWithGoal() async throws -> (World, String) {
        let w = try await world()
        let goalId = try await w.client.proposeGoal(planId: w.planId, words: "Be asleep before midnight on work nights")
        try await w.client.sync(with: w.counselor)
        return (w, goalId)
    }

    /// Joins two in-person sessions with an in-memory pipe and moves frames until neither side
    /// has more; `deliver(n)` false drops the n-th frame, as a link that goes down.
    private func pipe(_ a: InPersonSession, _ b: InPersonSession, deliver: (Int) -> Bool = { _ in true }) async throws {
        var toB = a.start()
        var toA = b.start()
        var moved = 0
        var lossy = false
        while true {
            if toA.isEmpty && toB.isEmpty {
                if lossy { break }
                toB += try await a.poll()
                toA += try await b.poll()
                if toA.isEmpty && toB.isEmpty { break }
            }
            if !toB.isEmpty {
                let frame = toB.removeFirst()
                moved += 1
                if deliver(moved) { toA += try await b.receive(frame) } else { lossy = true }
            }
            if !toA.isEmpty {
                let frame = toA.removeFirst()
                moved += 1
                if deliver(moved) { toB += try await a.receive(frame) } else { lossy = true }
            }
            XCTAssertLessThan(moved, 10_000, "the sessions never settle")
            if moved >= 10_000 { return }
        }
    }

    private enum Kind { case notAllowed, notFound, invalidInput, notInitialized, wrongKey, storeInUse, copiedIdentity, storage, sync, closed }

    private func kind(_ error: AllianceError) -> Kind {
        switch error {
        case .notAllowed: return .notAllowed
        case .notFound: return .notFound
        case .invalidInput: return .invalidInput
        case .notInitialized: return .notInitialized
        case .wrongKey: return .wrongKey
        case .storeInUse: return .storeInUse
        case .copiedIdentity: return .copiedIdentity
        case .storage: return .storage
        case .sync: return .sync
        case .closed: return .closed
        }
    }

    /// Fails unless `body` throws an `AllianceError` of the given kind.
    private func assertThrows(_ expected: Kind, _ body: () async throws -> Void,
                              file: StaticString = #filePath, line: UInt = #line) async {
        do {
            try await body()
            XCTFail("expected \(expected), nothing was thrown", file: file, line: line)
        } catch let error as AllianceError {
            XCTAssertEqual(kind(error), expected, "\(error)", file: file, line: line)
        } catch {
            XCTFail("expected \(expected), got \(error)", file: file, line: line)
        }
    }

    private func readGoal(_ store: Alliance, _ planId: String, _ goalId: String,
                      file: StaticString = #filePath, line: UInt = #line) async throws -> Goal {
        let plan = try await store.readPlan(planId)
        return try XCTUnwrap(plan.goal(goalId), "goal missing", file: file, line: line)
    }

    // MARK: Scenarios

    func testAnEnrollmentCodeCarriesTheDeviceAndItsKey() async throws {
        let counselor = try await openStore()
        let client = try await openStore()
        _ = try await counselor.initIdentity(name: "Dana", role: .counselor)
        let sam = try await client.initIdentity(name: "Sam", role: .client)
        let code = try await client.enrollmentCode()
        XCTAssertTrue(code.hasPrefix("alliance-device:"), code)
        let planId = try await counselor.createPlan(title: "Sleep and work", clientName: "Sam",
                                                    clientMemberId: sam.memberId)
        await assertThrows(.invalidInput) {
            try await counselor.enrollDeviceFromCode(planId: planId, code: String(code.dropLast(2)) + "zz",
                                                     memberId: sam.memberId, label: "Sam's phone")
        }
        let before = try await counselor.readPlan(planId)
        XCTAssertNil(before.devices.first { $0.deviceId == sam.deviceId })
        try await counselor.enrollDeviceFromCode(planId: planId, code: code, memberId: sam.memberId,
                                                 label: "Sam's phone")
        let plan = try await counselor.readPlan(planId)
        let key = plan.devices.first { $0.deviceId == sam.deviceId }?.publicKey
        XCTAssertNotNil(key)
    }

    func testTwoPhonesSyncInPersonAndADroppedLinkResumes() async throws {
        let counselor = try await openStore()
        let client = try await openStore()
        _ = try await counselor.initIdentity(name: "Dana", role: .counselor)
        let sam = try await client.initIdentity(name: "Sam", role: .client)
        let planId = try await counselor.createPlan(title: "Sleep and work", clientName: "Sam",
                                                    clientMemberId: sam.memberId)
        try await counselor.enrollDevice(planId: planId, deviceId: sam.deviceId, memberId: sam.memberId,
                                         label: "Sam's phone")
        // The client's phone holds nothing yet: it finds the plan that enrolls it.
        let a = try InPersonSession(counselor)
        let b = try InPersonSession(client)
        try await pipe(a, b)
        XCTAssertTrue(a.isSettled && b.isSettled)
        XCTAssertEqual(b.report().planIds, [planId])
        a.end()
        b.end()
        let onCounselor = try await counselor.readPlan(planId)
        let onClient = try await client.readPlan(planId)
        XCTAssertEqual(onCounselor, onClient)
        let goalId = try await client.proposeGoal(planId: planId, words: "Be asleep before midnight")
        for night in 0..<5 {
            try await client.checkIn(planId: planId, goalId: goalId, NewCheckIn(gasLevel: 0, note: "night \(night)"))
        }
        // The link drops after three frames; the next session finishes the job.
        try await pipe(try InPersonSession(client), try InPersonSession(counselor)) { $0 <= 3 }
        try await pipe(try InPersonSession(client), try InPersonSession(counselor))
        let plan = try await counselor.readPlan(planId)
        let clientPlan = try await client.readPlan(planId)
        XCTAssertEqual(plan, clientPlan)
        XCTAssertEqual(plan.goals.first?.checkins.count, 5)
    }

    func testCheckInsOnlyAppendAndCompactDueMergesThemIntoTheSnapshot() async throws {
        let (w, goalId) = try await worldWithGoal()
        var made = 0
        var compacted = 0
        while compacted == 0 && made < 300 {
            try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: 0, note: "night \(made)"))
            made += 1
            compacted = try await w.client.compactDue()
        }
        XCTAssertEqual(compacted, 1)
        let again = try await w.client.compactDue()
        XCTAssertEqual(again, 0)
        let plan = try await w.client.readPlan(w.planId)
        XCTAssertEqual(plan.goals.first?.checkins.count, made)
    }

    func testCounselorCreatesPlanAndEnrollsClient() async throws {
        let w = try await world()
        let plan = try await w.counselor.readPlan(w.planId)
        XCTAssertEqual(plan.title, "Sleep and work")
        XCTAssertEqual(Set(plan.members.map(\.role)), [.counselor, .client])
        XCTAssertEqual(plan.member(w.sam.memberId)?.name, "Sam")
        XCTAssertTrue(plan.devices.contains { $0.deviceId == w.sam.deviceId && $0.memberId == w.sam.memberId })
        let counselorPlans = try await w.counselor.plans()
        XCTAssertEqual(counselorPlans.map(\.planId), [w.planId])
        let clientPlans = try await w.client.plans()
        XCTAssertEqual(clientPlans.map(\.planId), [w.planId], "the plan reached the client")
        let clientView = try await w.client.readPlan(w.planId)
        XCTAssertEqual(clientView, plan)
    }

    func testClientProposesGoalInOwnWords() async throws {
        let (w, goalId) = try await worldWithGoal()
        let goal = try await readGoal(w.counselor, w.planId, goalId)
        XCTAssertEqual(goal.clientWords, "Be asleep before midnight on work nights")
        XCTAssertEqual(goal.proposedBy, w.sam.memberId)
        XCTAssertEqual(goal.status, .proposed)
        XCTAssertEqual(goal.agreement.state, .pending)
    }

    func testGoalIsAgreedOnlyWhenClientAndCounselorAgree() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.agree(planId: w.planId, goalId: goalId)
        let halfway = try await readGoal(w.client, w.planId, goalId).agreement
        XCTAssertFalse(halfway.isAgreed, "one agreement is not enough")
        XCTAssertEqual(halfway.agreedBy, [w.sam.memberId])
        XCTAssertTrue(halfway.waitingFor.contains(w.dana.memberId), "waiting for the counselor")
        try await w.client.sync(with: w.counselor)
        try await w.counselor.agree(planId: w.planId, goalId: goalId)
        try await w.counselor.sync(with: w.client)
        for side in [w.counselor, w.client] {
            let agreement = try await readGoal(side, w.planId, goalId).agreement
            XCTAssertTrue(agreement.isAgreed)
            XCTAssertEqual(agreement.waitingFor, [])
        }
    }

    func testEditingAgreedContentMakesAgreementStale() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.agree(planId: w.planId, goalId: goalId)
        try await w.client.sync(with: w.counselor)
        try await w.counselor.agree(planId: w.planId, goalId: goalId)
        let agreed = try await readGoal(w.counselor, w.planId, goalId).agreement
        XCTAssertTrue(agreed.isAgreed)
        try await w.counselor.editGoal(planId: w.planId, goalId: goalId,
                                       GoalEdit(clinicalStatement: "Sleep hygiene: consistent bedtime"))
        try await w.counselor.sync(with: w.client)
        let agreement = try await readGoal(w.client, w.planId, goalId).agreement
        XCTAssertEqual(agreement.state, .stale)
        XCTAssertTrue(agreement.waitingFor.contains(w.sam.memberId), "the client must agree again")
    }

    func testDailyCheckInAndCorrectionIsNewEntry() async throws {
        let (w, goalId) = try await worldWithGoal()
        let first = try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(
            gasLevel: 1, mood: 7, note: "in bed 23:40", localDate: "2026-03-01", tzOffsetMin: 60))
        try await w.client.checkIn(planId: w.planId, goalId: goalId,
                                   NewCheckIn(gasLevel: 0, localDate: "2026-03-02", tzOffsetMin: 60))
        let fix = try await w.client.checkIn(planId: w.planId, goalId: goalId,
                                             NewCheckIn(gasLevel: -1, note: "it was 00:30", corrects: first))
        let today = try await w.client.checkIn(planId: w.planId, goalId: goalId, .today(gasLevel: 2))
        let goal = try await readGoal(w.client, w.planId, goalId)
        XCTAssertEqual(goal.checkins.count, 4)
        let original = try XCTUnwrap(goal.checkins.first { $0.checkinId == first })
        let correction = try XCTUnwrap(goal.checkins.first { $0.checkinId == fix })
        XCTAssertTrue(original.superseded, "the corrected entry is kept, marked superseded")
        XCTAssertEqual(original.note, "in bed 23:40")
        XCTAssertEqual(correction.corrects, first)
        XCTAssertEqual(correction.localDate, "2026-03-01", "a correction keeps the day it corrects")
        XCTAssertEqual(correction.by, w.sam.memberId)
        XCTAssertNotNil(goal.checkins.first { $0.checkinId == today })
        try await w.client.sync(with: w.counselor)
        let counselorGoal = try await self.readGoal(w.counselor, w.planId, goalId)
        XCTAssertEqual(Set(counselorGoal.checkins), Set(goal.checkins))
    }

    func testPlanStreamYieldsOnEachChange() async throws {
        let w = try await world()
        var updates = w.client.plan(w.planId).makeAsyncIterator()
        func next(_ what: String, _ matches: (Plan) -> Bool) async throws {
            while let plan = try await updates.next() {
                if matches(plan) { return }
            }
            XCTFail("the stream ended before \(what)")
        }
        try await next("the current plan") { $0.goals.isEmpty }
        let goalId = try await w.client.proposeGoal(planId: w.planId, words: "Walk the dog every morning")
        try await next("proposing") { $0.goal(goalId) != nil }
        try await w.client.agree(planId: w.planId, goalId: goalId)
        try await next("agreeing") { !($0.goal(goalId)?.agreement.agreedBy.isEmpty ?? true) }
        try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: 0))
        try await next("checking in") { $0.goal(goalId)?.checkins.count == 1 }
        try await w.client.setGas(planId: w.planId, goalId: goalId, .level(level: 2, text: "Every morning, an hour"))
        try await next("describing a GAS level") { $0.goal(goalId)?.gas.levels[2] != nil }
        try await w.counselor.setTitle(planId: w.planId, title: "Mornings")
        try await w.counselor.sync(with: w.client)
        try await next("a merged remote change") { $0.title == "Mornings" }
    }

    func testClientEditingClinicalStatementThrowsNotAllowed() async throws {
        let (w, goalId) = try await worldWithGoal()
        let before = try await w.client.readPlan(w.planId)
        await assertThrows(.notAllowed) {
            try await w.client.editGoal(planId: w.planId, goalId: goalId, GoalEdit(clinicalStatement: "Insomnia"))
        }
        await assertThrows(.notAllowed) { try await w.client.setTitle(planId: w.planId, title: "My plan") }
        await assertThrows(.notAllowed) {
            _ = try await w.client.addObjective(planId: w.planId, goalId: goalId, NewObjective(text: "Lights out"))
        }
        let after = try await w.client.readPlan(w.planId)
        XCTAssertEqual(after, before, "a refused edit writes nothing")
    }

    func testWrongRoleAndMissingIdentityThrowTypedErrors() async throws {
        let client = try await openStore()
        await assertThrows(.notInitialized) { _ = try await client.createPlan(title: "Plan", clientName: "Sam") }
        _ = try await client.initIdentity(name: "Sam", role: .client)
        await assertThrows(.notAllowed) { _ = try await client.createPlan(title: "Plan", clientName: "Sam") }
        await assertThrows(.notAllowed) { _ = try await client.initIdentity(name: "Sam again", role: .client) }
    }

    func testEncryptedStoreOpensWithItsKeyOnlyAndRekeyChangesTheKey() async throws {
        let path = folder.appendingPathComponent("\(UUID().uuidString).db").path
        let store = try await Alliance.open(path: path, key: testKey)
        _ = try await store.initIdentity(name: "Dana", role: .counselor)
        store.close()
        await assertThrows(.wrongKey) { _ = try await Alliance.open(path: path, key: Data(count: 32)) }
        await assertThrows(.wrongKey) { _ = try await Alliance.open(path: path, key: nil) }
        let again = try await Alliance.open(path: path, key: testKey)
        let newKey = Data(repeating: 9, count: 32)
        try await again.rekey(newKey: newKey)
        again.close()
        await assertThrows(.wrongKey) { _ = try await Alliance.open(path: path, key: self.testKey) }
        let reopened = try await Alliance.open(path: path, key: newKey)
        let name = try await reopened.identity()?.name
        XCTAssertEqual(name, "Dana")
    }

    func testBadInputThrowsInvalidInput() async throws {
        let (w, goalId) = try await worldWithGoal()
        await assertThrows(.invalidInput) { _ = try await w.client.readPlan("not-a-plan-id") }
        await assertThrows(.invalidInput) { try await w.client.agree(planId: w.planId, goalId: "42") }
        await assertThrows(.invalidInput) { _ = try await w.client.proposeGoal(planId: w.planId, words: "   ") }
        await assertThrows(.invalidInput) {
            try await w.client.setGas(planId: w.planId, goalId: goalId, .level(level: 7, text: "too high"))
        }
        await assertThrows(.invalidInput) {
            try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: 7))
        }
        await assertThrows(.invalidInput) {
            try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: Int32.max))
        }
        await assertThrows(.invalidInput) {
            try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(mood: 11))
        }
        await assertThrows(.invalidInput) { try await w.counselor.setReviewOn(planId: w.planId, date: "next Tuesday") }
        await assertThrows(.invalidInput) { _ = try await w.counselor.createPlan(title: "", clientName: "Sam") }
        let goal = try await readGoal(w.client, w.planId, goalId)
        XCTAssertEqual(goal.checkins.count, 0, "nothing was written")
    }

    func testUnknownPlanThrowsNotFound() async throws {
        let (w, _) = try await worldWithGoal()
        let elsewhere = "6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f"
        await assertThrows(.notFound) { _ = try await w.client.readPlan(elsewhere) }
        await assertThrows(.notFound) { try await w.client.agree(planId: w.planId, goalId: elsewhere) }
        await assertThrows(.notFound) { _ = try await w.client.history(elsewhere) }
    }

    func testClosedStoreThrowsClosed() async throws {
        let w = try await world()
        w.client.close()
        await assertThrows(.closed) { _ = try await w.client.readPlan(w.planId) }
        await assertThrows(.closed) { _ = try await w.client.proposeGoal(planId: w.planId, words: "Anything") }
        await assertThrows(.closed) { _ = try await w.client.plans() }
        await assertThrows(.closed) { for try await _ in w.client.plan(w.planId) {} }
        await assertThrows(.closed) { try await w.counselor.sync(with: w.client) }
        w.client.close()
        let title = try await w.counselor.readPlan(w.planId).title
        XCTAssertEqual(title, "Sleep and work", "the other store is unaffected")
    }

    func testHistoryNamesWhoChangedWhat() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.agree(planId: w.planId, goalId: goalId)
        let history = try await w.client.history(w.planId)
        XCTAssertEqual(history.first?.description, "created the plan")
        XCTAssertEqual(history.first?.author, "Dana")
        XCTAssertEqual(history.last?.description, "agreed to a goal")
        XCTAssertEqual(history.last?.memberId, w.sam.memberId)
    }

    /// The `resource`s of a FHIR bundle's entries.
    private func resources(_ bundle: [String: Any], file: StaticString = #filePath,
                           line: UInt = #line) throws -> [[String: Any]] {
        let entries = try XCTUnwrap(bundle["entry"] as? [[String: Any]], "no entries", file: file, line: line)
        return entries.compactMap { $0["resource"] as? [String: Any] }
    }

    func testPlanExportsAsFHIRBundleWithTheClientsWords() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.checkIn(planId: w.planId, goalId: goalId,
                                   NewCheckIn(gasLevel: 1, localDate: "2026-03-01", tzOffsetMin: 0))
        try await w.client.sync(with: w.counselor)
        let text = try await w.counselor.exportFHIR(w.planId)
        let bundle = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(bundle["resourceType"] as? String, "Bundle")
        XCTAssertEqual(bundle["type"] as? String, "collection")
        let all = try resources(bundle)
        let goals = all.filter { $0["resourceType"] as? String == "Goal" }
        XCTAssertEqual(goals.count, 1)
        XCTAssertEqual(goals.first?["id"] as? String, goalId)
        let description = goals.first?["description"] as? [String: Any]
        XCTAssertEqual(description?["text"] as? String, "Be asleep before midnight on work nights")
        let carePlan = all.first { $0["resourceType"] as? String == "CarePlan" }
        XCTAssertEqual(carePlan?["title"] as? String, "Sleep and work")
        let patient = all.first { $0["resourceType"] as? String == "Patient" }
        XCTAssertEqual(patient?["id"] as? String, w.sam.memberId)
        XCTAssertTrue(all.contains { $0["resourceType"] as? String == "Observation" }, "the check-in is an Observation")
        await assertThrows(.notFound) { _ = try await w.counselor.exportFHIR("6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f") }
    }

    func testJSONExportImportsIntoASecondAllianceAsTheSamePlan() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.checkIn(planId: w.planId, goalId: goalId,
                                   NewCheckIn(gasLevel: 0, note: "late", localDate: "2026-03-01"))
        try await w.client.sync(with: w.counselor)
        try await w.counselor.editGoal(planId: w.planId, goalId: goalId,
                                       GoalEdit(clinicalStatement: "Delayed sleep phase"))
        let file = try await w.counselor.exportJSON(w.planId)
        let archive = try await openStore()
        _ = try await archive.initIdentity(name: "Lee", role: .counselor)
        let imported = try await archive.importJSON(file)
        XCTAssertEqual(imported, w.planId)
        let original = try await w.counselor.readPlan(w.planId)
        let copy = try await archive.readPlan(w.planId)
        XCTAssertEqual(copy, original)
        let (originalHistory, copyHistory) = (try await w.counselor.history(w.planId), try await archive.history(w.planId))
        XCTAssertEqual(copyHistory.count, originalHistory.count)
        await assertThrows(.invalidInput) { try await archive.importJSON(file) }
        await assertThrows(.invalidInput) { try await archive.importJSON("{\"not\": \"a plan\"}") }
    }

    func testPrintableSummaryHoldsTheClientsWordsAndThePart2Notice() async throws {
        let (w, _) = try await worldWithGoal()
        let markdown = try await w.client.exportMarkdown(w.planId)
        XCTAssertTrue(markdown.contains("Be asleep before midnight on work nights"))
        XCTAssertTrue(markdown.contains("42 CFR part 2"))
    }

    func testProgressAfterCheckInsShowsSeriesLatestLevelAndTrend() async throws {
        let (w, goalId) = try await worldWithGoal()
        for (day, level) in [("2026-03-01", -1), ("2026-03-02", 0), ("2026-03-03", 1)] {
            try await w.client.checkIn(planId: w.planId, goalId: goalId,
                                       NewCheckIn(gasLevel: Int32(level), localDate: day, tzOffsetMin: 0))
        }
        try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(mood: 6)) // today, no rating
        let progress = try await w.client.progress(w.planId)
        XCTAssertEqual(progress.trendWindow, 3)
        let goal = try XCTUnwrap(progress.goal(goalId))
        XCTAssertEqual(goal.series.count, 3)
        XCTAssertEqual(goal.series.map(\.level), [-1, 0, 1])
        XCTAssertEqual(goal.series.first?.localDate, "2026-03-01")
        XCTAssertEqual(goal.latestLevel, 1)
        XCTAssertEqual(goal.trend, .improving)
        XCTAssertEqual(goal.daysCheckedIn.last7Days, 1, "only today is within the last 7 days")
        XCTAssertEqual(progress.daysCheckedIn.last30Days, 1)
        XCTAssertEqual(progress.tScores.map(\.localDate), ["2026-03-01", "2026-03-02", "2026-03-03"])
        XCTAssertLessThan(try XCTUnwrap(progress.tScores.first).tScore, try XCTUnwrap(progress.tScores.last).tScore)
        let narrow = try await w.client.progress(w.planId, trendWindow: 2)
        XCTAssertEqual(narrow.trendWindow, 2)
        await assertThrows(.invalidInput) { _ = try await w.client.progress(w.planId, trendWindow: 1) }
    }

    func testCheckInDatedFarAheadIsFutureDatedAndTheClientsTodayIsShared() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: -1, tzOffsetMin: 840))
        try await w.client.checkIn(planId: w.planId, goalId: goalId,
                                   NewCheckIn(gasLevel: 2, localDate: "2099-01-01", tzOffsetMin: 0))
        try await w.client.sync(with: w.counselor)
        let plan = try await w.counselor.readPlan(w.planId)
        let goal = try XCTUnwrap(plan.goal(goalId))
        XCTAssertEqual(goal.checkins.filter(\.futureDated).map(\.localDate), ["2099-01-01"])
        XCTAssertEqual(goal.latestGasLevel, -1, "the future-dated +2 does not count")
        let clientsDay = try XCTUnwrap(goal.checkins.first { !$0.futureDated }).localDate
        XCTAssertEqual(plan.clientToday, clientsDay, "the client's day at UTC+14, on the counselor's device")
        let progress = try await w.counselor.progress(w.planId)
        XCTAssertEqual(progress.asOf, clientsDay)
    }

    func testReviewReportIsOneSelfContainedHTMLDocumentAlsoInsideTheFHIRBundle() async throws {
        let (w, goalId) = try await worldWithGoal()
        try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: 0, mood: 6, craving: 3))
        try await w.client.sync(with: w.counselor)
        let html = try await w.counselor.exportReport(w.planId)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.contains("Be asleep before midnight on work nights"))
        XCTAssertTrue(html.contains("<svg "), "inline SVG charts")
        XCTAssertFalse(html.lowercased().contains("<script"), "no scripts")
        XCTAssertFalse(html.contains("http://"), "nothing fetched")
        let text = try await w.counselor.exportFHIR(w.planId)
        let bundle = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let document = try XCTUnwrap(try resources(bundle).first { $0["resourceType"] as? String == "DocumentReference" })
        let content = try XCTUnwrap(document["content"] as? [[String: Any]])
        let attachment = try XCTUnwrap(content.first?["attachment"] as? [String: Any])
        XCTAssertEqual(attachment["contentType"] as? String, "text/html")
        await assertThrows(.notFound) { _ = try await w.counselor.exportReport("6f1c1e0a-8d2b-4c47-9a5e-0b7c2f3d4e5f") }
    }

    func testCounselorIssuesTokenForEnrolledDeviceAndRevokesIt() async throws {
        let w = try await world()
        let token = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: w.sam.deviceId)
        XCTAssertEqual(token.value.count, 64)
        XCTAssertFalse("\(token)".contains(token.value), "printing never shows the token")
        XCTAssertFalse(String(reflecting: token).contains(token.value))
        let reused = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: w.sam.deviceId, reuse: token)
        XCTAssertEqual(reused, token)
        let unknownDevice = "0123456789abcdef0123456789abcdef"
        await assertThrows(.notFound) {
            _ = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: unknownDevice)
        }
        await assertThrows(.notFound) { try await w.counselor.revokeDevice(planId: w.planId, deviceId: unknownDevice) }
        await assertThrows(.notAllowed) {
            _ = try await w.client.issueDeviceToken(planId: w.planId, deviceId: w.sam.deviceId)
        }
        await assertThrows(.notAllowed) { try await w.client.revokeDevice(planId: w.planId, deviceId: w.sam.deviceId) }
        do {
            _ = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: w.sam.deviceId,
                                                       reuse: RelayToken("secret-typo"))
            XCTFail("a malformed token was accepted")
        } catch let AllianceError.invalidInput(reason) {
            XCTAssertFalse(reason.contains("secret-typo"), "the error does not echo the token")
        }
        try await w.counselor.revokeDevice(planId: w.planId, deviceId: w.sam.deviceId)
        let history = try await w.counselor.history(w.planId)
        XCTAssertEqual(history.last?.description, "revoked a device")
    }

    func testPlansDueForReviewFollowTheirReviewDates() async throws {
        let w = try await world()
        let undated = try await w.counselor.plansDueForReview()
        XCTAssertEqual(undated.map(\.planId), [w.planId], "no date: due")
        try await w.counselor.setReviewOn(planId: w.planId, date: "2999-01-01")
        let later = try await w.counselor.plansDueForReview(withinDays: 30)
        XCTAssertEqual(later.map(\.planId), [])
        try await w.counselor.setReviewOn(planId: w.planId, date: "2020-01-01")
        let overdue = try await w.counselor.plansDueForReview()
        XCTAssertEqual(overdue.map(\.planId), [w.planId], "overdue: due")
        await assertThrows(.invalidInput) { _ = try await w.counselor.plansDueForReview(withinDays: -1) }
    }

    func testTwoInstancesInOneProcessConvergeInProcess() async throws {
        let (w, goalId) = try await worldWithGoal()
        // Both devices work offline at the same time, then sync.
        try await w.counselor.editGoal(planId: w.planId, goalId: goalId, GoalEdit(clinicalStatement: "Delayed sleep phase"))
        _ = try await w.counselor.addObjective(planId: w.planId, goalId: goalId,
                                               NewObjective(text: "Lights out by 23:30", measure: "nights", target: 5))
        try await w.counselor.setReviewOn(planId: w.planId, date: "2026-04-01")
        try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: 1, note: "good night"))
        try await w.client.setGas(planId: w.planId, goalId: goalId, .level(level: 0, text: "Asleep by midnight 4 nights a week"))
        let report = try await w.client.sync(with: w.counselor)
        XCTAssertEqual(report.planIds, [w.planId])
        XCTAssertGreaterThan(report.messages, 0)
        let counselorView = try await w.counselor.readPlan(w.planId)
        let clientView = try await w.client.readPlan(w.planId)
        XCTAssertEqual(counselorView, clientView)
        let goal = try XCTUnwrap(counselorView.goal(goalId))
        XCTAssertEqual(goal.clinicalStatement, "Delayed sleep phase")
        XCTAssertEqual(goal.objectives.count, 1)
        XCTAssertEqual(goal.checkins.count, 1)
        XCTAssertEqual(counselorView.reviewOn, "2026-04-01")
        XCTAssertEqual(goal.latestGasLevel, 1)
        XCTAssertNotNil(counselorView.gasTScore, "a rated goal gives a T-score")
    }

    func testTwoInstancesConvergeThroughLoopbackRelay() async throws {
        guard let relayURL = ProcessInfo.processInfo.environment["ALLIANCE_TEST_RELAY"] else {
            throw XCTSkip("ALLIANCE_TEST_RELAY is not set (scripts/test-bindings.sh sets it)")
        }
        let (w, goalId) = try await worldWithGoal()
        // Each device presents the token its counselor issued (this relay accepts any).
        let counselorIdentity = try await w.counselor.identity()
        let counselorDevice = try XCTUnwrap(counselorIdentity).deviceId
        let counselorToken = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: counselorDevice)
        let clientToken = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: w.sam.deviceId)
        try w.counselor.startSync(serverURL: relayURL, token: counselorToken)
        var clientProgress = try w.client.startSync(serverURL: relayURL, token: clientToken).makeAsyncIterator()
        // The counselor's screen shows the client's check-in when it arrives.
        var counselorPlans = w.counselor.plan(w.planId).makeAsyncIterator()
        try await w.counselor.editGoal(planId: w.planId, goalId: goalId,
                                       GoalEdit(clinicalStatement: "Delayed sleep phase"))
        try await w.client.checkIn(planId: w.planId, goalId: goalId, NewCheckIn(gasLevel: 1, note: "good night"))
        while let plan = try await counselorPlans.next() {
            if plan.goal(goalId)?.checkins.isEmpty == false { break }
        }
        var converged = false
        for _ in 0..<1500 where !converged {
            let (ours, theirs) = (try await w.client.readPlan(w.planId), try await w.counselor.readPlan(w.planId))
            converged = ours == theirs
            if !converged { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        XCTAssertTrue(converged, "both devices hold the same plan")
        let goal = try await readGoal(w.client, w.planId, goalId)
        XCTAssertEqual(goal.clinicalStatement, "Delayed sleep phase")
        var synced = false
        while !synced, let progress = await clientProgress.next() {
            synced = progress.connected && progress.plansTotal == 1 && progress.plansSynced == 1
        }
        XCTAssertTrue(synced, "progress reported the plan synced")
        try await w.client.stopSync()
        try await w.counselor.stopSync()
        XCTAssertNil(try w.client.syncProgress())
    }

    func testUnreachableServerShowsInProgress() async throws {
        let (w, _) = try await worldWithGoal()
        // Port 9 (discard) on the loopback: nothing listens there in the test environments.
        var progress = try w.client.startSync(serverURL: "ws://127.0.0.1:9").makeAsyncIterator()
        var failed = false
        while !failed, let update = await progress.next() {
            failed = !update.connected && update.lastError != nil
        }
        XCTAssertTrue(failed, "the failure shows in the progress")
        _ = try await w.client.proposeGoal(planId: w.planId, words: "Walk daily")
        try await w.client.stopSync()
        w.client.close()
        await assertThrows(.closed) { try w.client.startSync(serverURL: "ws://127.0.0.1:9") }
    }

    /// Runs without the Rust library: the error type's cases stay distinct for `catch` clauses.
    func testAllianceErrorCasesAreDistinct() {
        XCTAssertNotEqual(AllianceError.notAllowed("x"), AllianceError.notFound("x"))
        XCTAssertEqual(AllianceError.closed, AllianceError.closed)
    }
}
