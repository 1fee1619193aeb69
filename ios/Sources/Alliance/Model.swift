// The model, declared once in Rust (alliance-core, as uniffi records in alliance-ffi) and used
// here through type aliases, so an app never imports generated names (AllianceBindings) and every
// language uses the same names (docs/design.md, One model). Ids are opaque strings from the core;
// times are UTC milliseconds; dates of days are "YYYY-MM-DD" strings.
import AllianceBindings
import Foundation

public typealias Role = AllianceBindings.Role
public typealias GoalStatus = AllianceBindings.GoalStatus
public typealias Identity = AllianceBindings.Identity
public typealias CopiedIdentity = AllianceBindings.CopiedIdentity
public typealias PlanSummary = AllianceBindings.PlanSummary
public typealias Plan = AllianceBindings.Plan
public typealias Member = AllianceBindings.Member
public typealias Device = AllianceBindings.Device
public typealias Goal = AllianceBindings.Goal
public typealias AgreementState = AllianceBindings.AgreementState
public typealias AgreementStatus = AllianceBindings.AgreementStatus
public typealias Agreement = AllianceBindings.Agreement
public typealias Objective = AllianceBindings.Objective
public typealias Intervention = AllianceBindings.Intervention
public typealias GasScale = AllianceBindings.GasScale
public typealias CheckIn = AllianceBindings.CheckIn
public typealias Conflict = AllianceBindings.Conflict
public typealias ConflictValue = AllianceBindings.ConflictValue
public typealias HistoryEntry = AllianceBindings.HistoryEntry

// MARK: - What an app gives

public typealias NewMember = AllianceBindings.NewMember
public typealias GoalEdit = AllianceBindings.GoalEdit
public typealias NewObjective = AllianceBindings.NewObjective
public typealias NewIntervention = AllianceBindings.NewIntervention
public typealias GasEdit = AllianceBindings.GasEdit
public typealias NewCheckIn = AllianceBindings.NewCheckIn

// MARK: - Sync and progress

public typealias SyncProgress = AllianceBindings.SyncProgress
public typealias RefusedChange = AllianceBindings.RefusedChange
public typealias LocalSyncReport = AllianceBindings.LocalSyncReport
public typealias Trend = AllianceBindings.Trend
public typealias GasPoint = AllianceBindings.GasPoint
public typealias CheckInDays = AllianceBindings.CheckInDays
public typealias GoalProgress = AllianceBindings.GoalProgress
public typealias TScorePoint = AllianceBindings.TScorePoint
public typealias PlanProgress = AllianceBindings.PlanProgress

// MARK: - What the wrapper adds: identities for SwiftUI lists, lookups

extension PlanSummary: Identifiable { public var id: String { planId } }
extension Plan: Identifiable { public var id: String { planId } }
extension Member: Identifiable { public var id: String { memberId } }
extension Device: Identifiable { public var id: String { deviceId } }
extension Goal: Identifiable { public var id: String { goalId } }
extension Objective: Identifiable { public var id: String { objectiveId } }
extension Intervention: Identifiable { public var id: String { interventionId } }
extension CheckIn: Identifiable { public var id: String { checkinId } }
extension GoalProgress: Identifiable { public var id: String { goalId } }

public extension Plan {
    /// The member with this id, or nil.
    func member(_ memberId: String) -> Member? { members.first { $0.memberId == memberId } }
    /// The goal with this id, or nil.
    func goal(_ goalId: String) -> Goal? { goals.first { $0.goalId == goalId } }
}

public extension AgreementStatus {
    /// The client and at least one counselor agreed to the goal's current content.
    var isAgreed: Bool { state == .agreed }
}

public extension PlanProgress {
    /// The progress of the goal with this id, or nil.
    func goal(_ goalId: String) -> GoalProgress? { goals.first { $0.goalId == goalId } }
}

public extension NewCheckIn {
    /// A check-in dated today in the device's calendar and time zone.
    static func today(gasLevel: Int32? = nil, note: String = "") -> NewCheckIn {
        let now = Date()
        let formatter = DateFormatter()
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd"
        return NewCheckIn(gasLevel: gasLevel, note: note, localDate: formatter.string(from: now),
                          tzOffsetMin: Int32(TimeZone.current.secondsFromGMT(for: now) / 60))
    }
}

// MARK: - Relay tokens

/// A device's relay token: the secret it presents to a relay to sync its plans. Shown once to
/// the counselor who issues it and handed to the device in person; keep it in the Keychain.
/// Printing, `dump` and string interpolation never reveal it, so it stays out of logs; read
/// `value` only to store it or show it to the counselor.
public struct RelayToken: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable {
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public var description: String { "RelayToken(<redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: []) }
}
