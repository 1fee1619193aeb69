package org.alliance

/**
 * The plan as an app sees it: plain immutable values converted from the uniffi records, so an
 * app never imports generated names (`org.alliance.ffi.*`). Ids are opaque strings from the core.
 *
 * These follow shared/DESIGN.md; adjust them to the records `alliance-ffi` exports.
 */

enum class Role { CLIENT, COUNSELOR }

enum class GoalStatus { PROPOSED, ACTIVE, ON_HOLD, ACHIEVED, DISCONTINUED }

data class Member(val id: String, val role: Role, val name: String)

/** One row of the plan list: enough to draw it without opening every plan. */
data class PlanSummary(
    val id: String,
    val title: String,
    /** "YYYY-MM-DD", or null before the counselor sets a review date. */
    val reviewOn: String?,
    val goalCount: Int,
    /** Goals whose current content this device's member has not agreed to yet. */
    val awaitingMyAgreement: Int,
)

data class Plan(
    val id: String,
    val title: String,
    val reviewOn: String?,
    val members: List<Member>,
    /** The member this device acts as in this plan. */
    val me: Member,
    val goals: List<Goal>,
    /** Concurrent writes to one value that the counselor and the client settle together. */
    val conflicts: List<Conflict>,
)

data class Goal(
    val id: String,
    /** The goal in the client's own words. */
    val clientWords: String,
    val clinicalStatement: String,
    val lifeArea: String,
    val status: GoalStatus,
    val agreement: Agreement,
    val checkIns: List<CheckIn>,
)

/**
 * Derived by the core from the content hash, never stored as a flag: any edit of the goal's
 * content after an agreement makes it stale, and [waitingFor] names who has to agree again.
 */
data class Agreement(
    val isAgreed: Boolean,
    val agreedBy: List<String>,
    val waitingFor: List<String>,
)

data class CheckIn(
    val id: String,
    val by: String,
    /** UTC milliseconds. */
    val at: Long,
    /** The calendar day the client meant, "YYYY-MM-DD". */
    val localDate: String,
    val gasLevel: Int?,
    val mood: Int?,
    val craving: Int?,
    val note: String,
    /** The check-in this one corrects (check-ins are never edited in place). */
    val corrects: String?,
)

/** What the client enters for a daily check-in. GAS levels run from -2 to 2. */
data class CheckInDraft(
    val localDate: String,
    val tzOffsetMinutes: Int,
    val gasLevel: Int? = null,
    val mood: Int? = null,
    val craving: Int? = null,
    val note: String = "",
)

data class Conflict(
    val goalId: String?,
    /** Which value, e.g. "status" or "review_on". */
    val field: String,
    val winner: String,
    val others: List<String>,
)
