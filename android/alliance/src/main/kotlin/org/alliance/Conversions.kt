package org.alliance

import org.alliance.ffi.AgreementState as FfiAgreementState
import org.alliance.ffi.AgreementStatus as FfiAgreement
import org.alliance.ffi.CheckIn as FfiCheckIn
import org.alliance.ffi.CheckInDays as FfiCheckInDays
import org.alliance.ffi.Conflict as FfiConflict
import org.alliance.ffi.Device as FfiDevice
import org.alliance.ffi.GasEdit as FfiGasEdit
import org.alliance.ffi.GasPoint as FfiGasPoint
import org.alliance.ffi.GasScale as FfiGasScale
import org.alliance.ffi.Goal as FfiGoal
import org.alliance.ffi.GoalEdit as FfiGoalEdit
import org.alliance.ffi.GoalProgress as FfiGoalProgress
import org.alliance.ffi.GoalStatus as FfiGoalStatus
import org.alliance.ffi.HistoryEntry as FfiHistoryEntry
import org.alliance.ffi.Identity as FfiIdentity
import org.alliance.ffi.Intervention as FfiIntervention
import org.alliance.ffi.LocalSyncReport as FfiSyncReport
import org.alliance.ffi.Member as FfiMember
import org.alliance.ffi.NewCheckIn as FfiNewCheckIn
import org.alliance.ffi.NewIntervention as FfiNewIntervention
import org.alliance.ffi.NewMember as FfiNewMember
import org.alliance.ffi.NewObjective as FfiNewObjective
import org.alliance.ffi.Objective as FfiObjective
import org.alliance.ffi.Plan as FfiPlan
import org.alliance.ffi.PlanProgress as FfiPlanProgress
import org.alliance.ffi.PlanSummary as FfiPlanSummary
import org.alliance.ffi.RefusedChange as FfiRefusedChange
import org.alliance.ffi.Role as FfiRole
import org.alliance.ffi.SyncProgress as FfiSyncProgress
import org.alliance.ffi.TScorePoint as FfiTScorePoint
import org.alliance.ffi.Trend as FfiTrend

// Conversions between the generated records and the wrapper's types: field by field, nothing else.

internal fun FfiRole.toRole(): Role = when (this) {
    FfiRole.CLIENT -> Role.CLIENT
    FfiRole.COUNSELOR -> Role.COUNSELOR
}

internal fun Role.toFfi(): FfiRole = when (this) {
    Role.CLIENT -> FfiRole.CLIENT
    Role.COUNSELOR -> FfiRole.COUNSELOR
}

internal fun FfiGoalStatus.toStatus(): GoalStatus = when (this) {
    FfiGoalStatus.PROPOSED -> GoalStatus.PROPOSED
    FfiGoalStatus.ACTIVE -> GoalStatus.ACTIVE
    FfiGoalStatus.ON_HOLD -> GoalStatus.ON_HOLD
    FfiGoalStatus.ACHIEVED -> GoalStatus.ACHIEVED
    FfiGoalStatus.DISCONTINUED -> GoalStatus.DISCONTINUED
}

internal fun GoalStatus.toFfi(): FfiGoalStatus = when (this) {
    GoalStatus.PROPOSED -> FfiGoalStatus.PROPOSED
    GoalStatus.ACTIVE -> FfiGoalStatus.ACTIVE
    GoalStatus.ON_HOLD -> FfiGoalStatus.ON_HOLD
    GoalStatus.ACHIEVED -> FfiGoalStatus.ACHIEVED
    GoalStatus.DISCONTINUED -> FfiGoalStatus.DISCONTINUED
}

internal fun FfiIdentity.toIdentity() = Identity(memberId, deviceId, name, role.toRole())

internal fun FfiPlanSummary.toSummary() =
    PlanSummary(planId, title, reviewOn, clientName, goalCount.toInt(), updatedAt)

internal fun FfiPlan.toPlan() = Plan(
    id = planId,
    title = title,
    reviewOn = reviewOn,
    createdAt = createdAt,
    members = members.map { it.toMember() },
    devices = devices.map { it.toDevice() },
    goals = goals.map { it.toGoal() },
    gasTScore = gasTScore,
    clientToday = clientToday,
)

internal fun FfiMember.toMember() = Member(memberId, name, role.toRole(), addedAt)

internal fun FfiDevice.toDevice() = Device(deviceId, memberId, label, addedAt)

internal fun FfiGoal.toGoal() = Goal(
    id = goalId,
    proposedBy = proposedBy,
    createdAt = createdAt,
    clientWords = clientWords,
    clinicalStatement = clinicalStatement,
    lifeArea = lifeArea,
    status = status.toStatus(),
    agreement = agreement.toAgreement(),
    objectives = objectives.map { it.toObjective() },
    interventions = interventions.map { it.toIntervention() },
    gas = gas.toGasScale(),
    checkIns = checkIns.map { it.toCheckIn() },
    latestGasLevel = latestGasLevel,
    conflicts = conflicts.map { it.toConflict() },
)

internal fun FfiAgreement.toAgreement() = Agreement(
    state = when (state) {
        FfiAgreementState.AGREED -> AgreementState.AGREED
        FfiAgreementState.PENDING -> AgreementState.PENDING
        FfiAgreementState.STALE -> AgreementState.STALE
    },
    agreedBy = agreedBy,
    waitingFor = waitingFor,
)

internal fun FfiObjective.toObjective() = Objective(objectiveId, text, measure, target, unit, dueOn, status)

internal fun FfiIntervention.toIntervention() = Intervention(interventionId, text, owner, frequency)

internal fun FfiGasScale.toGasScale() = GasScale(levels.associate { it.level to it.text }, weight, baseline)

internal fun FfiCheckIn.toCheckIn() = CheckIn(
    id = checkInId,
    by = by,
    at = at,
    localDate = localDate,
    tzOffsetMinutes = tzOffsetMin,
    gasLevel = gasLevel,
    value = value,
    mood = mood,
    craving = craving,
    note = note,
    corrects = corrects,
    superseded = superseded,
    futureDated = futureDated,
)

internal fun FfiConflict.toConflict() =
    Conflict(field, values.map { ConflictValue(it.valueJson, it.by, it.deviceId) })

internal fun FfiHistoryEntry.toEntry() = HistoryEntry(hash, at, deviceId, memberId, author, description)

internal fun FfiSyncProgress.toProgress() =
    SyncProgress(connected, plansTotal.toInt(), plansSynced.toInt(), lastError)

internal fun FfiRefusedChange.toRefusedChange() = RefusedChange(planId, deviceId, changeHash, rule)

internal fun FfiSyncReport.toReport() =
    SyncReport(planIds, messages.toLong(), bytes.toLong(), refused.map { it.toRefusedChange() })

internal fun FfiTrend.toTrend(): Trend = when (this) {
    FfiTrend.IMPROVING -> Trend.IMPROVING
    FfiTrend.WORSENING -> Trend.WORSENING
    FfiTrend.NO_CHANGE -> Trend.NO_CHANGE
}

internal fun FfiGasPoint.toPoint() = GasPoint(checkInId, at, localDate, level)

internal fun FfiCheckInDays.toDays() = CheckInDays(last7Days.toInt(), last30Days.toInt())

internal fun FfiGoalProgress.toProgress() = GoalProgress(
    goalId = goalId,
    series = series.map { it.toPoint() },
    latestLevel = latestLevel,
    trend = trend?.toTrend(),
    daysCheckedIn = daysCheckedIn.toDays(),
)

internal fun FfiTScorePoint.toPoint() = TScorePoint(localDate, tScore)

internal fun FfiPlanProgress.toProgress() = PlanProgress(
    asOf = asOf,
    trendWindow = trendWindow.toInt(),
    goals = goals.map { it.toProgress() },
    tScores = tScores.map { it.toPoint() },
    daysCheckedIn = daysCheckedIn.toDays(),
)

internal fun NewMember.toFfi() = FfiNewMember(name, role.toFfi())

internal fun GoalChanges.toFfi() = FfiGoalEdit(clientWords, clinicalStatement, lifeArea, status?.toFfi())

internal fun ObjectiveDraft.toFfi() = FfiNewObjective(text, measure, target, unit, dueOn)

internal fun InterventionDraft.toFfi() = FfiNewIntervention(text, ownerMemberId, frequency)

internal fun GasChange.toFfi(): FfiGasEdit = when (this) {
    is GasChange.Level -> FfiGasEdit.Level(level, text)
    is GasChange.Weight -> FfiGasEdit.Weight(weight)
    is GasChange.Baseline -> FfiGasEdit.Baseline(level)
}

internal fun CheckInDraft.toFfi() =
    FfiNewCheckIn(gasLevel, value, mood, craving, note, localDate, tzOffsetMinutes, corrects)
