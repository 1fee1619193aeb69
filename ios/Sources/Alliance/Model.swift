// The plan as an app sees it: plain value types converted from the uniffi records, so an app
// never imports generated names (AllianceBindings). Ids are opaque strings from the core; dates
// of days are "YYYY-MM-DD" strings, moments are `Date`s.
import Foundation

public enum Role: Sendable, Hashable {
    case client
    case counselor
}

/// A goal's lifecycle. Goals are never deleted: they end by status.
public enum GoalStatus: Sendable, Hashable {
    case proposed
    case active
    case onHold
    case achieved
    case discontinued
}

/// This device's identity: who uses it, and the device id other members enroll in their plans.
public struct Identity: Sendable, Hashable {
    public let memberId: String
    public let deviceId: String
    public let name: String
    public let role: Role
}

/// One row of the plan list: enough to draw it without opening every plan.
public struct PlanSummary: Sendable, Hashable, Identifiable {
    public let id: String
    public let title: String
    /// "YYYY-MM-DD", or nil before the counselor sets a review date.
    public let reviewOn: String?
    public let clientName: String?
    public let goalCount: Int
    public let updatedAt: Date
}

public struct Plan: Sendable, Hashable, Identifiable {
    public let id: String
    public let title: String
    public let reviewOn: String?
    public let createdAt: Date
    public let members: [Member]
    public let devices: [Device]
    public let goals: [Goal]
    /// Kiresuk–Sherman T-score over the goals rated so far; nil when none is. Future-dated
    /// check-ins do not count.
    public let gasTScore: Double?
    /// The client's calendar day as the plan was read, "YYYY-MM-DD": the same on every device.
    public let clientToday: String

    public func member(_ memberId: String) -> Member? { members.first { $0.id == memberId } }
    public func goal(_ goalId: String) -> Goal? { goals.first { $0.id == goalId } }
}

public struct Member: Sendable, Hashable, Identifiable {
    public let id: String
    public let name: String
    public let role: Role
    public let addedAt: Date
}

public struct Device: Sendable, Hashable, Identifiable {
    public let id: String
    public let memberId: String
    public let label: String
    public let addedAt: Date
}

public struct Goal: Sendable, Hashable, Identifiable {
    public let id: String
    public let proposedBy: String?
    public let createdAt: Date
    /// The goal in the client's own words.
    public let clientWords: String
    public let clinicalStatement: String
    public let lifeArea: String
    public let status: GoalStatus
    public let agreement: Agreement
    public let objectives: [Objective]
    public let interventions: [Intervention]
    public let gas: GasScale
    public let checkIns: [CheckIn]
    /// The GAS level of the latest check-in that rated one (corrections applied).
    public let latestGasLevel: Int?
    /// Values written at the same time on different devices, for counselor and client to settle.
    public let conflicts: [Conflict]
}

public enum AgreementState: Sendable, Hashable {
    /// The client and at least one counselor agreed to the current content.
    case agreed
    /// Someone still has to agree.
    case pending
    /// Someone agreed, then the content changed: it needs agreeing again.
    case stale
}

/// Derived by the core from the content hash, never stored as a flag: any edit of the goal's
/// content after an agreement makes it stale, and `waitingFor` names who has to agree again.
public struct Agreement: Sendable, Hashable {
    public let state: AgreementState
    public let agreedBy: [String]
    public let waitingFor: [String]

    public var isAgreed: Bool { state == .agreed }
}

/// A SMART objective.
public struct Objective: Sendable, Hashable, Identifiable {
    public let id: String
    public let text: String
    public let measure: String?
    public let target: Double?
    public let unit: String?
    public let dueOn: String?
    public let status: String
}

public struct Intervention: Sendable, Hashable, Identifiable {
    public let id: String
    public let text: String
    public let ownerMemberId: String?
    public let frequency: String?
}

/// A goal's Goal Attainment Scale: level (-2...2) → description, a weight and a baseline.
public struct GasScale: Sendable, Hashable {
    public let levels: [Int: String]
    public let weight: Double
    public let baseline: Int?
}

public struct CheckIn: Sendable, Hashable, Identifiable {
    public let id: String
    /// The member who checked in.
    public let by: String
    public let at: Date
    /// The calendar day the member meant, "YYYY-MM-DD".
    public let localDate: String
    public let tzOffsetMinutes: Int
    public let gasLevel: Int?
    public let value: Double?
    public let mood: Int?
    public let craving: Int?
    public let note: String
    /// The check-in this one corrects (check-ins are never edited in place).
    public let corrects: String?
    /// A later check-in corrects this one.
    public let superseded: Bool
    /// Dated beyond this device's clock plus 36 hours: shown, not counted until its day comes.
    public let futureDated: Bool
}

/// Values of one field written concurrently; the first is the one the plan shows.
public struct Conflict: Sendable, Hashable {
    public let field: String
    public let values: [ConflictValue]
}

public struct ConflictValue: Sendable, Hashable {
    /// The value as JSON text.
    public let valueJSON: String
    /// The member's name, or the device id when the device is unknown.
    public let by: String
    public let deviceId: String
}

public struct HistoryEntry: Sendable, Hashable {
    public let hash: String
    public let at: Date
    public let deviceId: String
    public let memberId: String?
    /// The member's name, or "unknown device".
    public let author: String
    public let description: String
}

// MARK: - What an app gives

/// A member joining a plan along with their first device.
public struct NewMember: Sendable, Hashable {
    public var name: String
    public var role: Role

    public init(name: String, role: Role) {
        self.name = name
        self.role = role
    }
}

/// Changes to a goal; nil fields stay as they are.
public struct GoalChanges: Sendable, Hashable {
    public var clientWords: String?
    public var clinicalStatement: String?
    public var lifeArea: String?
    public var status: GoalStatus?

    public init(clientWords: String? = nil, clinicalStatement: String? = nil, lifeArea: String? = nil,
                status: GoalStatus? = nil) {
        self.clientWords = clientWords
        self.clinicalStatement = clinicalStatement
        self.lifeArea = lifeArea
        self.status = status
    }
}

public struct ObjectiveDraft: Sendable, Hashable {
    public var text: String
    public var measure: String?
    public var target: Double?
    public var unit: String?
    public var dueOn: String?

    public init(text: String, measure: String? = nil, target: Double? = nil, unit: String? = nil,
                dueOn: String? = nil) {
        self.text = text
        self.measure = measure
        self.target = target
        self.unit = unit
        self.dueOn = dueOn
    }
}

public struct InterventionDraft: Sendable, Hashable {
    public var text: String
    public var ownerMemberId: String?
    public var frequency: String?

    public init(text: String, ownerMemberId: String? = nil, frequency: String? = nil) {
        self.text = text
        self.ownerMemberId = ownerMemberId
        self.frequency = frequency
    }
}

/// A change to a goal's GAS scale.
public enum GasChange: Sendable, Hashable {
    /// Describe one level, -2...2, in words (client or counselor).
    case level(Int, text: String)
    /// The goal's weight in the T-score (counselor).
    case weight(Double)
    /// The level the client starts at (counselor).
    case baseline(Int)
}

/// What a member enters for a check-in. GAS levels run from -2 to 2, mood and craving from 0 to
/// 10. `localDate` and `tzOffsetMinutes` default to the device's calendar and time zone.
public struct CheckInDraft: Sendable, Hashable {
    public var gasLevel: Int?
    public var value: Double?
    public var mood: Int?
    public var craving: Int?
    public var note: String
    public var localDate: String?
    public var tzOffsetMinutes: Int?
    /// The id of the check-in this one corrects.
    public var corrects: String?

    public init(gasLevel: Int? = nil, value: Double? = nil, mood: Int? = nil, craving: Int? = nil,
                note: String = "", localDate: String? = nil, tzOffsetMinutes: Int? = nil,
                corrects: String? = nil) {
        self.gasLevel = gasLevel
        self.value = value
        self.mood = mood
        self.craving = craving
        self.note = note
        self.localDate = localDate
        self.tzOffsetMinutes = tzOffsetMinutes
        self.corrects = corrects
    }

    /// Today in the device's calendar and time zone.
    public static func today(gasLevel: Int? = nil, note: String = "") -> CheckInDraft {
        let now = Date()
        let formatter = DateFormatter()
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd"
        return CheckInDraft(gasLevel: gasLevel, note: note, localDate: formatter.string(from: now),
                            tzOffsetMinutes: TimeZone.current.secondsFromGMT(for: now) / 60)
    }
}

/// How sync with the server is going.
public struct SyncProgress: Sendable, Hashable {
    /// A session with the server is open.
    public let connected: Bool
    /// Plans this device syncs.
    public let plansTotal: Int
    /// Plans the server has confirmed it holds as they are here.
    public let plansSynced: Int
    /// The last failure, kept until a session succeeds.
    public let lastError: String?
}

/// One of a device's own changes that a peer refused (the server, or the other store of an
/// in-process sync): the member's edit did not count. It is out of the plan on that device and
/// kept aside; later changes built on it were replayed and still go out.
public struct RefusedChange: Sendable, Hashable {
    public let planId: String
    /// The device whose change it was (this device, for `Alliance.refusedChanges`).
    public let deviceId: String
    /// The change's hash, to tell refusals apart.
    public let changeHash: String
    /// The rule it broke, in words without personal data ("only a counselor writes a goal's
    /// status"; "builds on a refused change" for a later change that could not be replayed).
    public let rule: String
}

/// What one in-process sync did.
public struct SyncReport: Sendable, Hashable {
    public let planIds: [String]
    public let messages: Int
    public let bytes: Int
    /// Own changes of either device that the other refused, now set aside by their device.
    public let refused: [RefusedChange]
}

// MARK: - Progress

/// Where a goal's GAS levels are heading over its latest ratings.
public enum Trend: Sendable, Hashable {
    case improving
    case worsening
    case noChange
}

/// One GAS rating of a goal: the check-in that gave it and the client's day.
public struct GasPoint: Sendable, Hashable {
    public let checkInId: String
    public let at: Date
    /// The client's calendar day, "YYYY-MM-DD".
    public let localDate: String
    /// -2...2.
    public let level: Int
}

/// Distinct days the client checked in, counted back from today (included) on the client's
/// calendar.
public struct CheckInDays: Sendable, Hashable {
    public let last7Days: Int
    public let last30Days: Int
}

public struct GoalProgress: Sendable, Hashable, Identifiable {
    /// The goal's id.
    public let id: String
    /// GAS ratings ordered by the client's days (then by time), corrections applied.
    public let series: [GasPoint]
    public let latestLevel: Int?
    /// nil with fewer than two ratings.
    public let trend: Trend?
    /// Days on which the client checked in on this goal.
    public let daysCheckedIn: CheckInDays
}

/// The plan's GAS T-score at the end of one of the client's days.
public struct TScorePoint: Sendable, Hashable {
    public let localDate: String
    public let tScore: Double
}

/// A plan's progress as of the client's today (their calendar day, the same on every device).
public struct PlanProgress: Sendable, Hashable {
    /// The day counted as today, "YYYY-MM-DD".
    public let asOf: String
    /// How many latest ratings each trend looks at.
    public let trendWindow: Int
    public let goals: [GoalProgress]
    /// The T-score after each day on which some goal was rated, oldest first.
    public let tScores: [TScorePoint]
    /// Days on which the client checked in on any goal.
    public let daysCheckedIn: CheckInDays

    public func goal(_ goalId: String) -> GoalProgress? { goals.first { $0.id == goalId } }
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
