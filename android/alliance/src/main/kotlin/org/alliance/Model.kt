package org.alliance

/**
 * The plan as an app sees it: immutable values converted from the uniffi records, so an app never
 * imports generated names (`org.alliance.ffi.*`). Ids are opaque strings from the core; times are
 * UTC milliseconds; dates are "YYYY-MM-DD".
 */

enum class Role { CLIENT, COUNSELOR }

/** A goal's lifecycle. Goals are never deleted: they end by status. */
enum class GoalStatus { PROPOSED, ACTIVE, ON_HOLD, ACHIEVED, DISCONTINUED }

/** This device's identity: who uses it, and the device id other members enroll in their plans. */
data class Identity(val memberId: String, val deviceId: String, val name: String, val role: Role)

/** One row of the plan list: enough to draw it without opening every plan. */
data class PlanSummary(
    val id: String,
    val title: String,
    /** "YYYY-MM-DD", or null before the counselor sets a review date. */
    val reviewOn: String?,
    val clientName: String?,
    val goalCount: Int,
    val updatedAt: Long,
)

data class Plan(
    val id: String,
    val title: String,
    val reviewOn: String?,
    val createdAt: Long,
    val members: List<Member>,
    val devices: List<Device>,
    val goals: List<Goal>,
    /** Kiresuk–Sherman T-score over the goals rated so far; null when none is. Future-dated check-ins do not count. */
    val gasTScore: Double?,
    /** The client's calendar day as the plan was read, "YYYY-MM-DD": the same on every device. */
    val clientToday: String,
) {
    fun member(memberId: String): Member? = members.firstOrNull { it.id == memberId }
    fun goal(goalId: String): Goal? = goals.firstOrNull { it.id == goalId }
}

data class Member(val id: String, val name: String, val role: Role, val addedAt: Long)

data class Device(val id: String, val memberId: String, val label: String, val addedAt: Long)

data class Goal(
    val id: String,
    val proposedBy: String?,
    val createdAt: Long,
    /** The goal in the client's own words. */
    val clientWords: String,
    val clinicalStatement: String,
    val lifeArea: String,
    val status: GoalStatus,
    val agreement: Agreement,
    val objectives: List<Objective>,
    val interventions: List<Intervention>,
    val gas: GasScale,
    val checkIns: List<CheckIn>,
    /** The GAS level of the latest check-in that rated one (corrections applied). */
    val latestGasLevel: Int?,
    /** Values written at the same time on different devices, for counselor and client to settle. */
    val conflicts: List<Conflict>,
)

enum class AgreementState {
    /** The client and at least one counselor agreed to the current content. */
    AGREED,
    /** Someone still has to agree. */
    PENDING,
    /** Someone agreed, then the content changed: it needs agreeing again. */
    STALE,
}

/**
 * Derived by the core from the content hash, never stored as a flag: any edit of the goal's
 * content after an agreement makes it stale, and [waitingFor] names who has to agree again.
 */
data class Agreement(val state: AgreementState, val agreedBy: List<String>, val waitingFor: List<String>) {
    val isAgreed: Boolean get() = state == AgreementState.AGREED
}

/** A SMART objective. */
data class Objective(
    val id: String,
    val text: String,
    val measure: String?,
    val target: Double?,
    val unit: String?,
    val dueOn: String?,
    val status: String,
)

data class Intervention(val id: String, val text: String, val ownerMemberId: String?, val frequency: String?)

/** A goal's Goal Attainment Scale: level (-2..2) → description, a weight and a baseline. */
data class GasScale(val levels: Map<Int, String>, val weight: Double, val baseline: Int?)

data class CheckIn(
    val id: String,
    /** The member who checked in. */
    val by: String,
    /** UTC milliseconds. */
    val at: Long,
    /** The calendar day the member meant, "YYYY-MM-DD". */
    val localDate: String,
    val tzOffsetMinutes: Int,
    val gasLevel: Int?,
    val value: Double?,
    val mood: Int?,
    val craving: Int?,
    val note: String,
    /** The check-in this one corrects (check-ins are never edited in place). */
    val corrects: String?,
    /** A later check-in corrects this one. */
    val superseded: Boolean,
    /** Dated beyond this device's clock plus 36 hours: shown, not counted until its day comes. */
    val futureDated: Boolean,
)

/** Values of one field written concurrently; the first is the one the plan shows. */
data class Conflict(val field: String, val values: List<ConflictValue>)

data class ConflictValue(
    /** The value as JSON text. */
    val valueJson: String,
    /** The member's name, or the device id when the device is unknown. */
    val by: String,
    val deviceId: String,
)

data class HistoryEntry(
    val hash: String,
    val at: Long,
    val deviceId: String,
    val memberId: String?,
    /** The member's name, or "unknown device". */
    val author: String,
    val description: String,
)

// ---- what an app gives ----

/** A member joining a plan along with their first device. */
data class NewMember(val name: String, val role: Role)

/** Changes to a goal; null fields stay as they are. */
data class GoalChanges(
    val clientWords: String? = null,
    val clinicalStatement: String? = null,
    val lifeArea: String? = null,
    val status: GoalStatus? = null,
)

data class ObjectiveDraft(
    val text: String,
    val measure: String? = null,
    val target: Double? = null,
    val unit: String? = null,
    val dueOn: String? = null,
)

data class InterventionDraft(val text: String, val ownerMemberId: String? = null, val frequency: String? = null)

/** A change to a goal's GAS scale. */
sealed class GasChange {
    /** Describe one level, -2..2, in words (client or counselor). */
    data class Level(val level: Int, val text: String) : GasChange()

    /** The goal's weight in the T-score (counselor). */
    data class Weight(val weight: Double) : GasChange()

    /** The level the client starts at (counselor). */
    data class Baseline(val level: Int) : GasChange()
}

/**
 * What a member enters for a check-in. GAS levels run from -2 to 2, mood and craving from 0 to 10.
 * [localDate] and [tzOffsetMinutes] default to the device's calendar and time zone.
 */
data class CheckInDraft(
    val gasLevel: Int? = null,
    val value: Double? = null,
    val mood: Int? = null,
    val craving: Int? = null,
    val note: String = "",
    val localDate: String? = null,
    val tzOffsetMinutes: Int? = null,
    /** The id of the check-in this one corrects. */
    val corrects: String? = null,
)

/** How sync with the server is going. */
data class SyncProgress(
    /** A session with the server is open. */
    val connected: Boolean,
    /** Plans this device syncs. */
    val plansTotal: Int,
    /** Plans the server has confirmed it holds as they are here. */
    val plansSynced: Int,
    /** The last failure, kept until a session succeeds. */
    val lastError: String?,
)

/**
 * One of a device's own changes that a peer refused (the server, or the other store of an
 * in-process sync): the member's edit did not count. It is out of the plan on that device and kept
 * aside; later changes built on it were replayed and still go out.
 */
data class RefusedChange(
    val planId: String,
    /** The device whose change it was (this device, for [Alliance.refusedChanges]). */
    val deviceId: String,
    /** The change's hash, to tell refusals apart. */
    val changeHash: String,
    /**
     * The rule it broke, in words without personal data ("only a counselor writes a goal's
     * status"; "builds on a refused change" for a later change that could not be replayed).
     */
    val rule: String,
)

/** What one in-process sync did. */
data class SyncReport(
    val planIds: List<String>,
    val messages: Long,
    val bytes: Long,
    /** Own changes of either device that the other refused, now set aside by their device. */
    val refused: List<RefusedChange> = emptyList(),
)

// ---- progress ----

/** Where a goal's GAS levels are heading over its latest ratings. */
enum class Trend { IMPROVING, WORSENING, NO_CHANGE }

/** One GAS rating of a goal: the check-in that gave it and the client's day. */
data class GasPoint(
    val checkInId: String,
    /** UTC milliseconds. */
    val at: Long,
    /** The client's calendar day, "YYYY-MM-DD". */
    val localDate: String,
    /** -2..2. */
    val level: Int,
)

/** Distinct days the client checked in, counted back from today (included) on the client's calendar. */
data class CheckInDays(val last7Days: Int, val last30Days: Int)

data class GoalProgress(
    val goalId: String,
    /** GAS ratings ordered by the client's days (then by time), corrections applied. */
    val series: List<GasPoint>,
    val latestLevel: Int?,
    /** Null with fewer than two ratings. */
    val trend: Trend?,
    /** Days on which the client checked in on this goal. */
    val daysCheckedIn: CheckInDays,
)

/** The plan's GAS T-score at the end of one of the client's days. */
data class TScorePoint(val localDate: String, val tScore: Double)

/** A plan's progress as of the client's today (their calendar day, the same on every device). */
data class PlanProgress(
    /** The day counted as today, "YYYY-MM-DD". */
    val asOf: String,
    /** How many latest ratings each trend looks at. */
    val trendWindow: Int,
    val goals: List<GoalProgress>,
    /** The T-score after each day on which some goal was rated, oldest first. */
    val tScores: List<TScorePoint>,
    /** Days on which the client checked in on any goal. */
    val daysCheckedIn: CheckInDays,
) {
    fun goal(goalId: String): GoalProgress? = goals.firstOrNull { it.goalId == goalId }
}

// ---- relay tokens ----

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
