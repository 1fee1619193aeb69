// The plan as an app sees it: plain value types converted from the uniffi records, so an app
// never imports generated names (AllianceBindings). Ids are opaque strings from the core.
// These follow shared/DESIGN.md; adjust them to the records alliance-ffi exports.
import Foundation

public enum Role: Sendable, Hashable {
    case client
    case counselor
}

public enum GoalStatus: Sendable, Hashable {
    case proposed
    case active
    case onHold
    case achieved
    case discontinued
}

public struct Member: Sendable, Hashable, Identifiable {
    public let id: String
    public let role: Role
    public let name: String
}

/// One row of the plan list: enough to draw it without opening every plan.
public struct PlanSummary: Sendable, Hashable, Identifiable {
    public let id: String
    public let title: String
    /// "YYYY-MM-DD", or nil before the counselor sets a review date.
    public let reviewOn: String?
    public let goalCount: Int
    /// Goals whose current content this device's member has not agreed to yet.
    public let awaitingMyAgreement: Int
}

public struct Plan: Sendable, Hashable, Identifiable {
    public let id: String
    public let title: String
    public let reviewOn: String?
    public let members: [Member]
    /// The member this device acts as in this plan.
    public let me: Member
    public let goals: [Goal]
    /// Concurrent writes to one value that the counselor and the client settle together.
    public let conflicts: [Conflict]
}

public struct Goal: Sendable, Hashable, Identifiable {
    public let id: String
    /// The goal in the client's own words.
    public let clientWords: String
    public let clinicalStatement: String
    public let lifeArea: String
    public let status: GoalStatus
    public let agreement: Agreement
    public let checkIns: [CheckIn]
}

/// Derived by the core from the content hash, never stored as a flag: any edit of the goal's
/// content after an agreement makes it stale, and `waitingFor` names who has to agree again.
public struct Agreement: Sendable, Hashable {
    public let isAgreed: Bool
    public let agreedBy: [String]
    public let waitingFor: [String]
}

public struct CheckIn: Sendable, Hashable, Identifiable {
    public let id: String
    public let by: String
    public let at: Date
    /// The calendar day the client meant, "YYYY-MM-DD".
    public let localDate: String
    public let gasLevel: Int?
    public let mood: Int?
    public let craving: Int?
    public let note: String
    /// The check-in this one corrects (check-ins are never edited in place).
    public let corrects: String?
}

/// What the client enters for a daily check-in. GAS levels run from -2 to 2.
public struct CheckInDraft: Sendable, Hashable {
    public var localDate: String
    public var tzOffsetMinutes: Int
    public var gasLevel: Int?
    public var mood: Int?
    public var craving: Int?
    public var note: String

    public init(localDate: String, tzOffsetMinutes: Int, gasLevel: Int? = nil, mood: Int? = nil,
                craving: Int? = nil, note: String = "") {
        self.localDate = localDate
        self.tzOffsetMinutes = tzOffsetMinutes
        self.gasLevel = gasLevel
        self.mood = mood
        self.craving = craving
        self.note = note
    }

    /// Today in the device's calendar and time zone.
    public static func today(gasLevel: Int? = nil, note: String = "") -> CheckInDraft {
        let now = Date()
        let formatter = DateFormatter()
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd"
        return CheckInDraft(localDate: formatter.string(from: now),
                            tzOffsetMinutes: TimeZone.current.secondsFromGMT(for: now) / 60,
                            gasLevel: gasLevel, note: note)
    }
}

public struct Conflict: Sendable, Hashable {
    public let goalId: String?
    /// Which value, e.g. "status" or "review_on".
    public let field: String
    public let winner: String
    public let others: [String]
}
