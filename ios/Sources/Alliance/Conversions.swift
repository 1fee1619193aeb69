// Conversions between the generated records (AllianceBindings) and the wrapper's types: field by
// field, nothing else. Also the one mapping from the generated ApiError to AllianceError.
import AllianceBindings
import Foundation

extension AllianceError {
    init(_ error: ApiError) {
        switch error {
        case let .NotAllowed(reason): self = .notAllowed(reason)
        case let .NotFound(reason): self = .notFound(reason)
        case let .InvalidInput(reason): self = .invalidInput(reason)
        case .NotInitialized: self = .notInitialized
        case .Closed: self = .closed
        case .WrongKey: self = .wrongKey
        case .StoreInUse: self = .storeInUse
        case let .Storage(reason): self = .storage(reason)
        case let .Sync(reason): self = .sync(reason)
        }
    }
}

/// Runs one call into the library, rethrowing its errors as `AllianceError`.
func translate<T>(_ call: () throws -> T) throws -> T {
    do {
        return try call()
    } catch let error as ApiError {
        throw AllianceError(error)
    }
}

/// `translate` for async calls.
func translate<T>(_ call: () async throws -> T) async throws -> T {
    do {
        return try await call()
    } catch let error as ApiError {
        throw AllianceError(error)
    }
}

/// UTC milliseconds as a `Date`.
private func date(_ millis: Int64) -> Date {
    Date(timeIntervalSince1970: Double(millis) / 1000)
}

/// An `Int` narrowed to what the FFI carries; out-of-range values stay out of range, so the
/// core refuses them as invalid input instead of the app crashing.
private func narrow(_ value: Int?) -> Int32? {
    value.map { Int32(clamping: $0) }
}

extension Role {
    init(_ role: AllianceBindings.Role) {
        switch role {
        case .client: self = .client
        case .counselor: self = .counselor
        }
    }

    var ffi: AllianceBindings.Role {
        switch self {
        case .client: return .client
        case .counselor: return .counselor
        }
    }
}

extension GoalStatus {
    init(_ status: AllianceBindings.GoalStatus) {
        switch status {
        case .proposed: self = .proposed
        case .active: self = .active
        case .onHold: self = .onHold
        case .achieved: self = .achieved
        case .discontinued: self = .discontinued
        }
    }

    var ffi: AllianceBindings.GoalStatus {
        switch self {
        case .proposed: return .proposed
        case .active: return .active
        case .onHold: return .onHold
        case .achieved: return .achieved
        case .discontinued: return .discontinued
        }
    }
}

extension Identity {
    init(_ identity: AllianceBindings.Identity) {
        self.init(memberId: identity.memberId, deviceId: identity.deviceId, name: identity.name,
                  role: Role(identity.role))
    }
}

extension PlanSummary {
    init(_ summary: AllianceBindings.PlanSummary) {
        self.init(id: summary.planId, title: summary.title, reviewOn: summary.reviewOn,
                  clientName: summary.clientName, goalCount: Int(summary.goalCount),
                  updatedAt: date(summary.updatedAt))
    }
}

extension Plan {
    init(_ plan: AllianceBindings.Plan) {
        self.init(id: plan.planId, title: plan.title, reviewOn: plan.reviewOn,
                  createdAt: date(plan.createdAt), members: plan.members.map(Member.init),
                  devices: plan.devices.map(Device.init), goals: plan.goals.map(Goal.init),
                  gasTScore: plan.gasTScore, clientToday: plan.clientToday)
    }
}

extension Member {
    init(_ member: AllianceBindings.Member) {
        self.init(id: member.memberId, name: member.name, role: Role(member.role),
                  addedAt: date(member.addedAt))
    }
}

extension Device {
    init(_ device: AllianceBindings.Device) {
        self.init(id: device.deviceId, memberId: device.memberId, label: device.label,
                  addedAt: date(device.addedAt))
    }
}

extension Goal {
    init(_ goal: AllianceBindings.Goal) {
        self.init(id: goal.goalId, proposedBy: goal.proposedBy, createdAt: date(goal.createdAt),
                  clientWords: goal.clientWords, clinicalStatement: goal.clinicalStatement,
                  lifeArea: goal.lifeArea, status: GoalStatus(goal.status),
                  agreement: Agreement(goal.agreement),
                  objectives: goal.objectives.map(Objective.init),
                  interventions: goal.interventions.map(Intervention.init),
                  gas: GasScale(goal.gas), checkIns: goal.checkIns.map(CheckIn.init),
                  latestGasLevel: goal.latestGasLevel.map(Int.init),
                  conflicts: goal.conflicts.map(Conflict.init))
    }
}

extension Agreement {
    init(_ status: AgreementStatus) {
        let state: AgreementState
        switch status.state {
        case .agreed: state = .agreed
        case .pending: state = .pending
        case .stale: state = .stale
        }
        self.init(state: state, agreedBy: status.agreedBy, waitingFor: status.waitingFor)
    }
}

extension Objective {
    init(_ objective: AllianceBindings.Objective) {
        self.init(id: objective.objectiveId, text: objective.text, measure: objective.measure,
                  target: objective.target, unit: objective.unit, dueOn: objective.dueOn,
                  status: objective.status)
    }
}

extension Intervention {
    init(_ intervention: AllianceBindings.Intervention) {
        self.init(id: intervention.interventionId, text: intervention.text,
                  ownerMemberId: intervention.owner, frequency: intervention.frequency)
    }
}

extension GasScale {
    init(_ gas: AllianceBindings.GasScale) {
        let levels = Dictionary(gas.levels.map { (Int($0.level), $0.text) }, uniquingKeysWith: { _, last in last })
        self.init(levels: levels, weight: gas.weight, baseline: gas.baseline.map(Int.init))
    }
}

extension CheckIn {
    init(_ checkIn: AllianceBindings.CheckIn) {
        self.init(id: checkIn.checkInId, by: checkIn.by, at: date(checkIn.at),
                  localDate: checkIn.localDate, tzOffsetMinutes: Int(checkIn.tzOffsetMin),
                  gasLevel: checkIn.gasLevel.map(Int.init), value: checkIn.value,
                  mood: checkIn.mood.map(Int.init), craving: checkIn.craving.map(Int.init),
                  note: checkIn.note, corrects: checkIn.corrects, superseded: checkIn.superseded,
                  futureDated: checkIn.futureDated)
    }
}

extension Conflict {
    init(_ conflict: AllianceBindings.Conflict) {
        self.init(field: conflict.field, values: conflict.values.map {
            ConflictValue(valueJSON: $0.valueJson, by: $0.by, deviceId: $0.deviceId)
        })
    }
}

extension HistoryEntry {
    init(_ entry: AllianceBindings.HistoryEntry) {
        self.init(hash: entry.hash, at: date(entry.at), deviceId: entry.deviceId,
                  memberId: entry.memberId, author: entry.author, description: entry.description)
    }
}

extension SyncProgress {
    init(_ progress: AllianceBindings.SyncProgress) {
        self.init(connected: progress.connected, plansTotal: Int(progress.plansTotal),
                  plansSynced: Int(progress.plansSynced), lastError: progress.lastError)
    }
}

extension RefusedChange {
    init(_ refused: AllianceBindings.RefusedChange) {
        self.init(planId: refused.planId, deviceId: refused.deviceId, changeHash: refused.changeHash,
                  rule: refused.rule)
    }
}

extension SyncReport {
    init(_ report: LocalSyncReport) {
        self.init(planIds: report.planIds, messages: Int(clamping: report.messages),
                  bytes: Int(clamping: report.bytes), refused: report.refused.map(RefusedChange.init))
    }
}

extension Trend {
    init(_ trend: AllianceBindings.Trend) {
        switch trend {
        case .improving: self = .improving
        case .worsening: self = .worsening
        case .noChange: self = .noChange
        }
    }
}

extension GasPoint {
    init(_ point: AllianceBindings.GasPoint) {
        self.init(checkInId: point.checkInId, at: date(point.at), localDate: point.localDate,
                  level: Int(point.level))
    }
}

extension CheckInDays {
    init(_ days: AllianceBindings.CheckInDays) {
        self.init(last7Days: Int(days.last7Days), last30Days: Int(days.last30Days))
    }
}

extension GoalProgress {
    init(_ goal: AllianceBindings.GoalProgress) {
        self.init(id: goal.goalId, series: goal.series.map(GasPoint.init),
                  latestLevel: goal.latestLevel.map(Int.init), trend: goal.trend.map(Trend.init),
                  daysCheckedIn: CheckInDays(goal.daysCheckedIn))
    }
}

extension TScorePoint {
    init(_ point: AllianceBindings.TScorePoint) {
        self.init(localDate: point.localDate, tScore: point.tScore)
    }
}

extension PlanProgress {
    init(_ progress: AllianceBindings.PlanProgress) {
        self.init(asOf: progress.asOf, trendWindow: Int(progress.trendWindow),
                  goals: progress.goals.map(GoalProgress.init),
                  tScores: progress.tScores.map(TScorePoint.init),
                  daysCheckedIn: CheckInDays(progress.daysCheckedIn))
    }
}

extension NewMember {
    var ffi: AllianceBindings.NewMember { AllianceBindings.NewMember(name: name, role: role.ffi) }
}

extension GoalChanges {
    var ffi: GoalEdit {
        GoalEdit(clientWords: clientWords, clinicalStatement: clinicalStatement, lifeArea: lifeArea,
                 status: status?.ffi)
    }
}

extension ObjectiveDraft {
    var ffi: NewObjective {
        NewObjective(text: text, measure: measure, target: target, unit: unit, dueOn: dueOn)
    }
}

extension InterventionDraft {
    var ffi: NewIntervention {
        NewIntervention(text: text, ownerMemberId: ownerMemberId, frequency: frequency)
    }
}

extension GasChange {
    var ffi: GasEdit {
        switch self {
        case let .level(level, text): return .level(level: Int32(clamping: level), text: text)
        case let .weight(weight): return .weight(weight: weight)
        case let .baseline(level): return .baseline(level: Int32(clamping: level))
        }
    }
}

extension CheckInDraft {
    var ffi: NewCheckIn {
        NewCheckIn(gasLevel: narrow(gasLevel), value: value, mood: narrow(mood),
                   craving: narrow(craving), note: note, localDate: localDate,
                   tzOffsetMin: narrow(tzOffsetMinutes), corrects: corrects)
    }
}
