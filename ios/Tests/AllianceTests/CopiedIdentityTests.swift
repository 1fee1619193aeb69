// A copied identity through the public Swift API (docs/design.md, "A copied identity"): a
// phone's store copied to a second phone and both used; the copy is told with the typed
// `AllianceError.copiedIdentity` and `copiedIdentity()`, a counselor enrolls it from its new
// code, and every edit lands on every store.
import Alliance
import Foundation
import XCTest

final class CopiedIdentityTests: XCTestCase {
    private var folder: URL!
    private let testKey = Data((0..<32).map { UInt8($0) })

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("alliance-swift-copied-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func notes(_ store: Alliance, _ planId: String, _ goalId: String) async throws -> [String] {
        let plan = try await store.readPlan(planId)
        return (plan.goal(goalId)?.checkins ?? []).map(\.note).sorted()
    }

    func testACopiedPhoneIsToldAndOnceEnrolledAgainEveryEditLands() async throws {
        let phone = folder.appendingPathComponent("phone.db")
        let second = folder.appendingPathComponent("second.db")
        let counselor = try await Alliance.open(path: folder.appendingPathComponent("dana.db").path, key: testKey)
        var client = try await Alliance.open(path: phone.path, key: testKey)
        _ = try await counselor.initIdentity(name: "Dana", role: .counselor)
        let sam = try await client.initIdentity(name: "Sam", role: .client)
        let planId = try await counselor.createPlan(title: "Sleep", clientName: "Sam", clientMemberId: sam.memberId)
        let code = try await client.enrollmentCode()
        try await counselor.enrollDeviceFromCode(planId: planId, code: code, memberId: sam.memberId,
                                                 label: "Sam's phone")
        let goalId = try await counselor.proposeGoal(planId: planId, words: "Asleep before midnight")
        try await counselor.sync(with: client)
        // The phone's store, closed, copied to a second phone; both are used.
        client.close()
        try FileManager.default.copyItem(at: phone, to: second)
        client = try await Alliance.open(path: phone.path, key: testKey)
        let copy = try await Alliance.open(path: second.path, key: testKey)
        _ = try await client.checkIn(planId: planId, goalId: goalId, NewCheckIn(gasLevel: 0, note: "original"))
        _ = try await copy.checkIn(planId: planId, goalId: goalId, NewCheckIn(gasLevel: 1, note: "copy"))
        try await client.sync(with: counselor)
        try await copy.sync(with: counselor)

        let told = try await copy.copiedIdentity()
        let known = try XCTUnwrap(told, "the copy was told")
        XCTAssertEqual(known.formerDeviceId, sam.deviceId)
        XCTAssertNotEqual(known.deviceId, sam.deviceId)
        XCTAssertEqual(known.waitingPlanIds, [planId])
        let original = try await client.copiedIdentity()
        XCTAssertNil(original, "the original keeps its identity")
        do {
            _ = try await copy.checkIn(planId: planId, goalId: goalId, NewCheckIn(gasLevel: 2, note: "later"))
            XCTFail("a copied identity writes nothing")
        } catch AllianceError.copiedIdentity(let code) {
            XCTAssertEqual(code, known.enrollmentCode)
        }
        try await counselor.enrollDeviceFromCode(planId: planId, code: known.enrollmentCode,
                                                 memberId: sam.memberId, label: "Sam's second phone")
        try await counselor.sync(with: copy)
        try await counselor.sync(with: client)
        for store in [client, copy, counselor] {
            let seen = try await notes(store, planId, goalId)
            XCTAssertEqual(seen, ["copy", "original"])
        }
        for store in [client, copy, counselor] { store.close() }
    }
}
