package org.alliance

/*
 * The model, declared once in Rust (alliance-core, as uniffi records in alliance-ffi) and used here
 * through type aliases, so an app never imports generated names (`org.alliance.ffi.*`) and every
 * language uses the same names (docs/design.md, One model). Ids are opaque strings from the core;
 * times are UTC milliseconds; dates are "YYYY-MM-DD".
 */

typealias Role = org.alliance.ffi.Role
typealias GoalStatus = org.alliance.ffi.GoalStatus
typealias Identity = org.alliance.ffi.Identity
typealias CopiedIdentity = org.alliance.ffi.CopiedIdentity
typealias PlanSummary = org.alliance.ffi.PlanSummary
typealias Plan = org.alliance.ffi.Plan
typealias Member = org.alliance.ffi.Member
typealias Device = org.alliance.ffi.Device
typealias Goal = org.alliance.ffi.Goal
typealias AgreementState = org.alliance.ffi.AgreementState
typealias AgreementStatus = org.alliance.ffi.AgreementStatus
typealias Agreement = org.alliance.ffi.Agreement
typealias Objective = org.alliance.ffi.Objective
typealias Intervention = org.alliance.ffi.Intervention
typealias GasScale = org.alliance.ffi.GasScale
typealias CheckIn = org.alliance.ffi.CheckIn
typealias Conflict = org.alliance.ffi.Conflict
typealias ConflictValue = org.alliance.ffi.ConflictValue
typealias HistoryEntry = org.alliance.ffi.HistoryEntry

// What an app gives.
typealias NewMember = org.alliance.ffi.NewMember
typealias GoalEdit = org.alliance.ffi.GoalEdit
typealias NewObjective = org.alliance.ffi.NewObjective
typealias NewIntervention = org.alliance.ffi.NewIntervention
typealias GasEdit = org.alliance.ffi.GasEdit
typealias NewCheckIn = org.alliance.ffi.NewCheckIn

// Sync.
typealias SyncProgress = org.alliance.ffi.SyncProgress
typealias RefusedChange = org.alliance.ffi.RefusedChange
typealias LocalSyncReport = org.alliance.ffi.LocalSyncReport

// Progress.
typealias Trend = org.alliance.ffi.Trend
typealias GasPoint = org.alliance.ffi.GasPoint
typealias CheckInDays = org.alliance.ffi.CheckInDays
typealias GoalProgress = org.alliance.ffi.GoalProgress
typealias TScorePoint = org.alliance.ffi.TScorePoint
typealias PlanProgress = org.alliance.ffi.PlanProgress

/** The member with this id, or null. */
fun Plan.member(memberId: String): Member? = members.firstOrNull { it.memberId == memberId }

/** The goal with this id, or null. */
fun Plan.goal(goalId: String): Goal? = goals.firstOrNull { it.goalId == goalId }

/** The client and at least one counselor agreed to the goal's current content. */
val AgreementStatus.isAgreed: Boolean get() = state == AgreementState.AGREED

/** The progress of the goal with this id, or null. */
fun PlanProgress.goal(goalId: String): GoalProgress? = goals.firstOrNull { it.goalId == goalId }

// A type alias cannot name a nested class, so the GAS edits are built through these.
/** Describe one level, -2..2, in words (client or counselor). */
@Suppress("FunctionName")
fun org.alliance.ffi.GasEdit.Companion.Level(level: Int, text: String): GasEdit = org.alliance.ffi.GasEdit.Level(level, text)

/** The goal's weight in the T-score (counselor). */
@Suppress("FunctionName")
fun org.alliance.ffi.GasEdit.Companion.Weight(weight: Double): GasEdit = org.alliance.ffi.GasEdit.Weight(weight)

/** The level the client starts at (counselor). */
@Suppress("FunctionName")
fun org.alliance.ffi.GasEdit.Companion.Baseline(level: Int): GasEdit = org.alliance.ffi.GasEdit.Baseline(level)

/**
 * A device's relay token: the secret it presents to a relay to sync its plans. Shown once to the
 * counselor who issues it and handed to the device in person; keep it in the platform keystore.
 * [toString] never reveals it, so it stays out of logs and crash reports; read [value] only to
 * store it or show it to the counselor.
 */
class RelayToken(val value: String) {
    override fun toString(): String = "RelayToken(<redacted>)"
    override fun equals(other: Any?): Boolean = other is RelayToken && other.value == value
    override fun hashCode(): Int = value.hashCode()
}
