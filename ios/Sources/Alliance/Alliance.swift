// The Swift face of Alliance: one device's store of goal plans, the object an app opens once and
// keeps. Every call that touches the store is `async` and runs on the library's own threads;
// failures are `AllianceError`s. After `close()`, every call throws `AllianceError.closed`.
import AllianceBindings
import Foundation

public final class Alliance: Sendable {
    /// Internal, not private: the tests' hooks (`@testable import`) reach the library through it.
    let ffi: AllianceBindings.Alliance

    /// This device's own changes that the server refused while `startSync` ran (its rules, which
    /// may differ from this build's, or a role that changed meanwhile): show them, the member's
    /// edit did not count. Each is told once and kept until read (the latest 64); one reader at a
    /// time. Sync goes on, and later changes built on a refused one still go out. Finishes at
    /// `close()`.
    public let refusedChanges: AsyncStream<RefusedChange>
    private let refused: AsyncStream<RefusedChange>.Continuation

    private init(_ ffi: AllianceBindings.Alliance) {
        self.ffi = ffi
        let (stream, continuation) = AsyncStream<RefusedChange>.makeStream(bufferingPolicy: .bufferingNewest(64))
        refusedChanges = stream
        refused = continuation
    }

    /// Opens (or creates) the store at `path`, a file the app chose in its own container,
    /// encrypted at rest with `key`: 32 bytes the app keeps in the Keychain (see the sample's
    /// `DatabaseKey`). `key: nil` opens it unencrypted, an explicit choice for tests and
    /// previews only. A key that does not open the store throws `AllianceError.wrongKey` and
    /// leaves the file as it was.
    public static func open(path: String, key: Data?) async throws -> Alliance {
        Alliance(try await translate { try await AllianceBindings.Alliance.open(path: path, key: key) })
    }

    /// A store kept in memory only, for previews and tests.
    public static func openInMemory() throws -> Alliance {
        Alliance(try translate { try AllianceBindings.Alliance.openInMemory() })
    }

    // MARK: Identity

    /// This device's identity, or nil before `initIdentity`.
    public func identity() async throws -> Identity? {
        try await translate { try await ffi.identity() }
    }

    /// Makes this device a device of a person: a new one, or `memberId` when they already use
    /// Alliance.
    public func initIdentity(name: String, role: Role, memberId: String? = nil) async throws -> Identity {
        try await translate { try await ffi.initIdentity(name: name, role: role, memberId: memberId) }
    }

    // MARK: Plans

    /// Starts a plan with this counselor and a client. Returns the plan's id.
    public func createPlan(title: String, clientName: String, clientMemberId: String? = nil,
                           clientDeviceId: String? = nil) async throws -> String {
        let new = NewPlan(title: title, clientName: clientName, clientMemberId: clientMemberId,
                          clientDeviceId: clientDeviceId)
        return try await translate { try await ffi.createPlan(new: new) }
    }

    /// Every plan on this device, without opening them.
    public func plans() async throws -> [PlanSummary] {
        try await translate { try await ffi.listPlans() }
    }

    /// The plan as it is now.
    public func readPlan(_ planId: String) async throws -> Plan {
        try await translate { try await ffi.plan(planId: planId) }
    }

    /// The plan now, then again after each change to it: a local edit or a merged remote change.
    /// Keeps only the newest plan for a slow reader; ends with an `AllianceError` when the plan
    /// cannot be read (e.g. the store was closed). Stops observing when the iteration ends.
    public func plan(_ planId: String) -> AsyncThrowingStream<Plan, Error> {
        AsyncThrowingStream(bufferingPolicy: .bufferingNewest(1)) { plans in
            let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let subscription: PlanSubscription
            do {
                subscription = try translate {
                    try ffi.observe(observer: PlanWatcher(planId: planId) { changed.yield() })
                }
            } catch {
                plans.finish(throwing: error)
                return
            }
            changed.yield()
            let reader = Task {
                for await _ in changes {
                    do {
                        plans.yield(try await self.readPlan(planId))
                    } catch {
                        plans.finish(throwing: error)
                        return
                    }
                }
            }
            plans.onTermination = { _ in
                subscription.cancel()
                changed.finish()
                reader.cancel()
            }
        }
    }

    /// Every change of the plan: when, by whom, what.
    public func history(_ planId: String) async throws -> [HistoryEntry] {
        try await translate { try await ffi.history(planId: planId) }
    }

    /// Renames the plan (counselor).
    public func setTitle(planId: String, title: String) async throws {
        try await translate { try await ffi.setTitle(planId: planId, title: title) }
    }

    /// Sets the next review date, "YYYY-MM-DD" (counselor).
    public func setReviewOn(planId: String, date: String) async throws {
        try await translate { try await ffi.setReviewOn(planId: planId, date: date) }
    }

    /// Plans due for review within `withinDays` of today on this device's calendar (0: due
    /// today or overdue), then plans with no review date; overdue and soonest first.
    public func plansDueForReview(withinDays: Int = 0) async throws -> [PlanSummary] {
        guard withinDays >= 0 else { throw AllianceError.invalidInput("within days must not be negative") }
        let days = UInt32(clamping: withinDays)
        return try await translate { try await ffi.plansDueForReview(withinDays: days) }
    }

    /// Enrolls a device in the plan: a counselor any member's, a client their own. `newMember` is
    /// needed when `memberId` is not in the plan yet.
    public func enrollDevice(planId: String, deviceId: String, memberId: String, label: String,
                             newMember: NewMember? = nil) async throws {
        let device = NewDevice(deviceId: deviceId, memberId: memberId, label: label, newMember: newMember)
        try await translate { try await ffi.enrollDevice(planId: planId, device: device) }
    }

    /// This device's enrollment code (its device id and public key as one string), to show as
    /// a QR code for a counselor to scan.
    public func enrollmentCode() async throws -> String {
        try await translate { try await ffi.enrollmentCode() }
    }

    /// Enrolls the device an enrollment code names, as a device of `memberId`, recording its
    /// public key: only changes it signed are then accepted as its own. A damaged code throws
    /// `AllianceError.invalidInput` and nothing is written.
    public func enrollDeviceFromCode(planId: String, code: String, memberId: String, label: String,
                                     newMember: NewMember? = nil) async throws {
        try await translate {
            try await ffi.enrollDeviceFromCode(planId: planId, code: code, memberId: memberId,
                                               label: label, newMember: newMember)
        }
    }

    /// Whether this store found another copy of itself (a restored backup, a copied phone) using
    /// its identity and took a new one; nil when it never did. Show its enrollment code until a
    /// counselor enrolls it again; its own edits wait until then, and writes to the plans it is
    /// not enrolled in throw `AllianceError.copiedIdentity`.
    public func copiedIdentity() async throws -> CopiedIdentity? {
        try await translate { try await ffi.copiedIdentity() }
    }

    /// Issues a relay token for a device enrolled in the plan (counselor), to show once and hand
    /// to the device in person; the plan keeps only its hash. `reuse` records a token the device
    /// already holds for its other plans. Issuing again replaces the device's token for this
    /// plan. A device not enrolled in the plan throws `AllianceError.notFound`.
    public func issueDeviceToken(planId: String, deviceId: String, reuse: RelayToken? = nil) async throws -> RelayToken {
        try await translate {
            RelayToken(try await ffi.issueDeviceToken(planId: planId, deviceId: deviceId, reuseToken: reuse?.value))
        }
    }

    /// Revokes a device enrolled in the plan (counselor): relays refuse its token for this plan
    /// once they receive the change. A device not enrolled in it throws `AllianceError.notFound`.
    public func revokeDevice(planId: String, deviceId: String) async throws {
        try await translate { try await ffi.revokeDevice(planId: planId, deviceId: deviceId) }
    }

    // MARK: Goals

    /// Proposes a goal in the proposer's own words. Returns the goal's id.
    public func proposeGoal(planId: String, words: String) async throws -> String {
        try await translate { try await ffi.proposeGoal(planId: planId, words: words) }
    }

    /// Changes a goal's words, clinical statement, life area or status, as the role allows.
    public func editGoal(planId: String, goalId: String, _ edit: GoalEdit) async throws {
        try await translate { try await ffi.editGoal(planId: planId, goalId: goalId, edit: edit) }
    }

    /// Adds a SMART objective (counselor). Returns its id.
    public func addObjective(planId: String, goalId: String, _ objective: NewObjective) async throws -> String {
        try await translate { try await ffi.addObjective(planId: planId, goalId: goalId, objective: objective) }
    }

    /// Adds an intervention (counselor). Returns its id.
    public func addIntervention(planId: String, goalId: String,
                                _ intervention: NewIntervention) async throws -> String {
        try await translate {
            try await ffi.addIntervention(planId: planId, goalId: goalId, intervention: intervention)
        }
    }

    /// Describes a GAS level (client or counselor) or sets the weight or baseline (counselor).
    public func setGas(planId: String, goalId: String, _ edit: GasEdit) async throws {
        try await translate { try await ffi.setGas(planId: planId, goalId: goalId, edit: edit) }
    }

    /// Records this member's agreement to the goal's current content.
    public func agree(planId: String, goalId: String) async throws {
        try await translate { try await ffi.agree(planId: planId, goalId: goalId) }
    }

    /// Records a check-in by this member (or a correction of one of theirs). Returns its id.
    @discardableResult
    public func checkIn(planId: String, goalId: String, _ checkIn: NewCheckIn) async throws -> String {
        try await translate { try await ffi.checkIn(planId: planId, goalId: goalId, checkIn: checkIn) }
    }

    // MARK: Progress and exports

    /// The plan's progress as of the client's today (the same day on every device): each goal's
    /// GAS series, latest level, trend and check-in days, and the plan's T-score over time.
    /// Trends look at the last `trendWindow` ratings (at least 2; 3 when nil); future-dated
    /// check-ins do not count.
    public func progress(_ planId: String, trendWindow: Int? = nil) async throws -> PlanProgress {
        let window = trendWindow.map { UInt32(clamping: $0) }
        return try await translate { try await ffi.progress(planId: planId, trendWindow: window) }
    }

    /// The plan as a FHIR R4 Bundle (type collection), as JSON text to save or share; the review
    /// report rides along as a DocumentReference referenced from the CarePlan.
    public func exportFHIR(_ planId: String) async throws -> String {
        try await translate { try await ffi.exportFhir(planId: planId) }
    }

    /// The plan with its whole history as an Alliance plan file (JSON text), for `importJSON`.
    public func exportJSON(_ planId: String) async throws -> String {
        try await translate { try await ffi.exportJson(planId: planId) }
    }

    /// Imports a plan file made by `exportJSON`; returns the plan's id. Changes the role rules
    /// refuse throw `AllianceError.notAllowed` and store nothing; a file that is not a plan file,
    /// or a plan already here (sync instead), throws `AllianceError.invalidInput`.
    @discardableResult
    public func importJSON(_ text: String) async throws -> String {
        try await translate { try await ffi.importJson(text: text) }
    }

    /// The plan as Markdown fit to print and sign, with the 42 CFR part 2 notice.
    public func exportMarkdown(_ planId: String) async throws -> String {
        try await translate { try await ffi.exportMarkdown(planId: planId) }
    }

    /// The review report: one self-contained HTML document (inline SVG charts, no scripts, no
    /// external resources) to show in a WKWebView, print on A4 or US Letter, or attach to an EHR.
    public func exportReport(_ planId: String) async throws -> String {
        try await translate { try await ffi.exportReport(planId: planId) }
    }

    // MARK: Sync

    /// Keeps every plan on this device in sync with the server at `serverURL` (`ws://` or
    /// `wss://`) until `stopSync()` or `close()`: local edits go out as they are made, remote
    /// ones come in (and reach `plan(_:)` streams), lost connections are retried with backoff.
    /// Replaces a running sync. `token` is this device's relay token, for relays that require
    /// one (a malformed one throws `AllianceError.invalidInput`); it goes to the server only,
    /// never into errors or logs. The stream yields each change of progress and finishes when
    /// this sync stops.
    @discardableResult
    public func startSync(serverURL: String, token: RelayToken? = nil) throws -> AsyncStream<SyncProgress> {
        let (progress, continuation) = AsyncStream<SyncProgress>.makeStream(bufferingPolicy: .bufferingNewest(8))
        try translate {
            try ffi.startSync(serverUrl: serverURL, token: token?.value,
                              observer: ProgressWatcher(continuation, refused: refused))
        }
        return progress
    }

    /// Stops syncing with the server and waits until the connection is closed.
    public func stopSync() async throws {
        try await translate { try await ffi.stopSync() }
    }

    /// The latest sync progress, or nil while no sync runs.
    public func syncProgress() throws -> SyncProgress? {
        try translate { try ffi.syncProgress() }
    }

    /// Syncs every plan this device shares with `other`, an Alliance open in the same process.
    /// The report lists own changes either one refused of the other's (set aside by the device
    /// that made them).
    @discardableResult
    public func sync(with other: Alliance) async throws -> LocalSyncReport {
        try await translate {
            let report = try await ffi.syncWith(other: other.ffi)
            // What the sync appended is compacted now, off the edit path.
            _ = try await ffi.compactDue(maxPlans: Alliance.compactAfterSync)
            _ = try await other.ffi.compactDue(maxPlans: Alliance.compactAfterSync)
            return report
        }
    }

    /// Most plans compacted after one sync; the rest wait for the next.
    static let compactAfterSync: UInt32 = 64

    /// Compacts up to `maxPlans` plans whose stored changes outgrew half their snapshot; returns how
    /// many. Edits and syncs only append: call it when the app goes idle, or after carrying sync
    /// messages itself. `startSync` and `sync(with:)` compact on their own.
    @discardableResult
    public func compactDue(maxPlans: Int = 64) async throws -> Int {
        try await translate { Int(try await ffi.compactDue(maxPlans: UInt32(clamping: maxPlans))) }
    }

    /// Re-encrypts the store under `newKey` (32 bytes); the next `open` needs the new key.
    /// Throws `AllianceError.storeInUse`, changing nothing, while another Alliance or process
    /// has the store open.
    public func rekey(newKey: Data) async throws {
        try await translate { try await ffi.rekey(newKey: newKey) }
    }

    /// Closes the store and stops sync. Calls already running finish; later ones throw
    /// `AllianceError.closed`.
    public func close() {
        ffi.closeStore()
        refused.finish()
    }
}

/// Told of every plan change by the library (on its threads); passes on those of one plan.
private final class PlanWatcher: PlanObserver {
    private let planId: String
    private let onChange: @Sendable () -> Void

    init(planId: String, onChange: @escaping @Sendable () -> Void) {
        self.planId = planId
        self.onChange = onChange
    }

    func planChanged(planId: String) {
        if planId == self.planId { onChange() }
    }
}

/// Told of each change of sync progress, and of refused own changes, by the library (on its
/// threads). The library lets go of it when that sync stops, which finishes the progress stream.
private final class ProgressWatcher: SyncObserver {
    private let continuation: AsyncStream<SyncProgress>.Continuation
    private let refused: AsyncStream<RefusedChange>.Continuation

    init(_ continuation: AsyncStream<SyncProgress>.Continuation,
         refused: AsyncStream<RefusedChange>.Continuation) {
        self.continuation = continuation
        self.refused = refused
    }

    func syncProgress(progress: SyncProgress) {
        continuation.yield(progress)
    }

    func changesRefused(changes: [RefusedChange]) {
        for change in changes {
            refused.yield(change)
        }
    }

    deinit {
        continuation.finish()
    }
}
