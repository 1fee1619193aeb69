// Scenarios that need the library's test hooks: alliance-ffi built with its `test-hooks` feature,
// as scripts/test-bindings.sh does (and says so with ALLIANCE_TEST_HOOKS=1, see Package.swift).
// The hook writes what no app may, a change peers refuse; everything checked goes through the
// wrapper. This file is the one place the tests reach the library's generated API (through the
// wrapper's internal handle, `@testable`), without importing it: its names would clash.
#if ALLIANCE_TEST_HOOKS
@testable import Alliance
import Foundation
import XCTest

extension Alliance {
    /// `editGoal` without the role check, as a build with other rules would write it: peers
    /// refuse it.
    func editGoalUnchecked(planId: String, goalId: String, _ changes: GoalEdit) async throws {
        try await translate {
            try await ffi.testEditGoalUnchecked(planId: planId, goalId: goalId, edit: changes)
        }
    }
}

final class RefusedChangesTests: XCTestCase {
    private var folder: URL!
    private let statusRule = "only a counselor writes a goal's status"

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("alliance-swift-refused-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func openStore() async throws -> Alliance {
        try await Alliance.open(path: folder.appendingPathComponent("\(UUID().uuidString).db").path, key: nil)
    }

    /// A counselor's plan with the client's phone enrolled and a goal, on both; then the phone
    /// holds a status change only a counselor may make and, built on it, an honest check-in.
    private func world() async throws -> (counselor: Alliance, client: Alliance, sam: Identity,
                                          planId: String, goalId: String) {
        let counselor = try await openStore()
        let client = try await openStore()
        _ = try await counselor.initIdentity(name: "Dana", role: .counselor)
        let sam = try await client.initIdentity(name: "Sam", role: .client)
        let planId = try await counselor.createPlan(title: "Sleep", clientName: "Sam", clientMemberId: sam.memberId)
        try await counselor.enrollDevice(planId: planId, deviceId: sam.deviceId, memberId: sam.memberId,
                                         label: "Sam's phone")
        let goalId = try await counselor.proposeGoal(planId: planId, words: "Asleep before midnight")
        try await counselor.sync(with: client)
        try await client.editGoalUnchecked(planId: planId, goalId: goalId, GoalEdit(status: .active))
        _ = try await client.checkIn(planId: planId, goalId: goalId, NewCheckIn(gasLevel: 1, note: "walked"))
        return (counselor, client, sam, planId, goalId)
    }

    private func checkIns(_ store: Alliance, _ planId: String, _ goalId: String) async throws -> Int {
        try await store.readPlan(planId).goal(goalId)?.checkins.count ?? -1
    }

    func testARefusedChangeIsToldOnceAndLaterCheckInsStillArrive() async throws {
        guard let relayURL = ProcessInfo.processInfo.environment["ALLIANCE_TEST_RELAY"] else {
            throw XCTSkip("ALLIANCE_TEST_RELAY is not set (scripts/test-bindings.sh sets it)")
        }
        let w = try await world()
        let counselorIdentity = try await w.counselor.identity()
        let counselorDevice = try XCTUnwrap(counselorIdentity).deviceId
        let counselorToken = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: counselorDevice)
        let clientToken = try await w.counselor.issueDeviceToken(planId: w.planId, deviceId: w.sam.deviceId)
        try w.counselor.startSync(serverURL: relayURL, token: counselorToken)
        try w.client.startSync(serverURL: relayURL, token: clientToken)
        var refusals = w.client.refusedChanges.makeAsyncIterator()
        let first = await refusals.next()
        let refused = try XCTUnwrap(first, "a refused change was told")
        XCTAssertEqual(refused.planId, w.planId)
        XCTAssertEqual(refused.deviceId, w.sam.deviceId)
        XCTAssertEqual(refused.rule, statusRule)
        // The check-in built on it reaches the counselor; the refused status does not.
        var arrived = false
        for _ in 0..<1500 where !arrived {
            arrived = try await checkIns(w.counselor, w.planId, w.goalId) == 1
            if !arrived { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        XCTAssertTrue(arrived, "the check-in reached the counselor")
        let onCounselor = try await w.counselor.readPlan(w.planId)
        XCTAssertEqual(onCounselor.goal(w.goalId)?.status, .proposed)
        // Later edits flow while sync goes on; both end with the same plan.
        _ = try await w.client.checkIn(planId: w.planId, goalId: w.goalId, NewCheckIn(gasLevel: 2, note: "slept"))
        var converged = false
        for _ in 0..<1500 where !converged {
            let (ours, theirs) = (try await w.client.readPlan(w.planId), try await w.counselor.readPlan(w.planId))
            converged = ours == theirs && ours.goal(w.goalId)?.checkins.count == 2
            if !converged { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        XCTAssertTrue(converged, "both devices hold the same plan with both check-ins")
        let onClient = try await w.client.readPlan(w.planId)
        XCTAssertEqual(onClient.goal(w.goalId)?.status, .proposed)
        try await w.client.stopSync()
        try await w.counselor.stopSync()
        // Told once: nothing more was refused, and the stream ends when the store closes.
        w.client.close()
        let more = await refusals.next()
        XCTAssertNil(more, "told once")
    }

    func testAnInProcessSyncReportsTheRefusedOwnChange() async throws {
        let w = try await world()
        let report = try await w.client.sync(with: w.counselor)
        XCTAssertEqual(report.refused.count, 1, "\(report.refused)")
        XCTAssertEqual(report.refused.first?.planId, w.planId)
        XCTAssertEqual(report.refused.first?.deviceId, w.sam.deviceId)
        XCTAssertEqual(report.refused.first?.rule, statusRule)
        let arrived = try await checkIns(w.counselor, w.planId, w.goalId)
        XCTAssertEqual(arrived, 1)
        let again = try await w.counselor.sync(with: w.client)
        XCTAssertTrue(again.refused.isEmpty, "told once: \(again.refused)")
    }
}
#endif
