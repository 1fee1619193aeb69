package org.alliance

import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.conflate
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.receiveAsFlow
import org.alliance.ffi.NewDevice as FfiNewDevice
import org.alliance.ffi.NewPlan as FfiNewPlan
import org.alliance.ffi.PlanObserver as FfiPlanObserver
import org.alliance.ffi.SyncObserver as FfiSyncObserver
import org.alliance.ffi.Alliance as FfiAlliance

/**
 * One device's store of goal plans: the object an app opens once and keeps.
 *
 * Every call that touches the store is `suspend` and runs on the library's own threads, so none
 * blocks the caller's. Failures are [AllianceException]s. After [close], every call throws
 * [AllianceException.Closed].
 */
class Alliance private constructor(internal val ffi: FfiAlliance) : AutoCloseable {
    companion object {
        /**
         * Opens (or creates) the store at [path], a file the app chose in its private storage,
         * encrypted at rest with [key]: 32 bytes the app keeps in the Android Keystore (see the
         * sample's `DatabaseKey`). `key = null` opens it unencrypted, an explicit choice for tests
         * and previews only. A key that does not open the store throws
         * [AllianceException.WrongKey] and leaves the file as it was.
         */
        suspend fun open(path: String, key: ByteArray?): Alliance =
            translate { Alliance(FfiAlliance.open(path, key)) }

        /** A store kept in memory only, for previews and tests. */
        fun openInMemory(): Alliance = translate { Alliance(FfiAlliance.openInMemory()) }
    }

    // ---- identity ----

    /** This device's identity, or null before [initIdentity]. */
    suspend fun identity(): Identity? = translate { ffi.identity() }

    /** Makes this device a device of a person: a new one, or [memberId] when they already use Alliance. */
    suspend fun initIdentity(name: String, role: Role, memberId: String? = null): Identity =
        translate { ffi.initIdentity(name, role, memberId) }

    // ---- plans ----

    /** Starts a plan with this counselor and a client. Returns the plan's id. */
    suspend fun createPlan(
        title: String,
        clientName: String,
        clientMemberId: String? = null,
        clientDeviceId: String? = null,
    ): String = translate { ffi.createPlan(FfiNewPlan(title, clientName, clientMemberId, clientDeviceId)) }

    /** Every plan on this device, without opening them. */
    suspend fun plans(): List<PlanSummary> = translate { ffi.listPlans() }

    /** The plan as it is now. */
    suspend fun readPlan(planId: String): Plan = translate { ffi.plan(planId) }

    /**
     * The plan now, then again after each change to it: a local edit or a merged remote change.
     * Cold (one observer per collector) and conflated: a slow collector gets the latest plan.
     */
    fun plan(planId: String): Flow<Plan> = callbackFlow {
        val subscription = translate { ffi.observe(PlanWatcher(planId) { trySend(Unit) }) }
        trySend(Unit)
        awaitClose {
            subscription.cancel()
            subscription.close()
        }
    }.conflate().map { readPlan(planId) }

    /** Every change of the plan: when, by whom, what. */
    suspend fun history(planId: String): List<HistoryEntry> =
        translate { ffi.history(planId) }

    /** Renames the plan (counselor). */
    suspend fun setTitle(planId: String, title: String) = translate { ffi.setTitle(planId, title) }

    /** Sets the next review date, "YYYY-MM-DD" (counselor). */
    suspend fun setReviewOn(planId: String, date: String) = translate { ffi.setReviewOn(planId, date) }

    /**
     * Plans due for review within [withinDays] of today on this device's calendar (0: due today or
     * overdue), then plans with no review date; overdue and soonest first.
     */
    suspend fun plansDueForReview(withinDays: Int = 0): List<PlanSummary> {
        if (withinDays < 0) throw AllianceException.InvalidInput("within days must not be negative")
        return translate { ffi.plansDueForReview(withinDays.toUInt()) }
    }

    /**
     * Enrolls a device in the plan: a counselor any member's, a client their own. [newMember] is
     * needed when [memberId] is not in the plan yet.
     */
    suspend fun enrollDevice(
        planId: String,
        deviceId: String,
        memberId: String,
        label: String,
        newMember: NewMember? = null,
    ) = translate { ffi.enrollDevice(planId, FfiNewDevice(deviceId, memberId, label, newMember)) }

    /**
     * This device's enrollment code (its device id and public key as one string), to show as a
     * QR code for a counselor to scan.
     */
    suspend fun enrollmentCode(): String = translate { ffi.enrollmentCode() }

    /**
     * Enrolls the device an enrollment code names, as a device of [memberId], recording its
     * public key: only changes it signed are then accepted as its own. A damaged code throws
     * [AllianceException.InvalidInput] and nothing is written.
     */
    suspend fun enrollDeviceFromCode(
        planId: String,
        code: String,
        memberId: String,
        label: String,
        newMember: NewMember? = null,
    ) = translate { ffi.enrollDeviceFromCode(planId, code, memberId, label, newMember) }

    /**
     * Whether this store found another copy of itself (a restored backup, a copied phone) using
     * its identity and took a new one; null when it never did. Show its enrollment code until
     * a counselor enrolls it again; its own edits wait until then, and writes to the plans it
     * is not enrolled in throw [AllianceException.CopiedIdentity].
     */
    suspend fun copiedIdentity(): CopiedIdentity? = translate { ffi.copiedIdentity() }

    /**
     * Issues a relay token for a device enrolled in the plan (counselor), to show once and hand to
     * the device in person; the plan keeps only its hash. [reuse] records a token the device
     * already holds for its other plans. Issuing again replaces the device's token for this plan.
     * Throws [AllianceException.NotFound] for a device not enrolled in the plan.
     */
    suspend fun issueDeviceToken(planId: String, deviceId: String, reuse: RelayToken? = null): RelayToken =
        translate { RelayToken(ffi.issueDeviceToken(planId, deviceId, reuse?.value)) }

    /**
     * Revokes a device enrolled in the plan (counselor): relays refuse its token for this plan once
     * they receive the change. Throws [AllianceException.NotFound] for a device not enrolled in it.
     */
    suspend fun revokeDevice(planId: String, deviceId: String) = translate { ffi.revokeDevice(planId, deviceId) }

    // ---- goals ----

    /** Proposes a goal in the proposer's own words. Returns the goal's id. */
    suspend fun proposeGoal(planId: String, words: String): String =
        translate { ffi.proposeGoal(planId, words) }

    /** Changes a goal's words, clinical statement, life area or status, as the role allows. */
    suspend fun editGoal(planId: String, goalId: String, edit: GoalEdit) = translate { ffi.editGoal(planId, goalId, edit) }

    /** Adds a SMART objective (counselor). Returns its id. */
    suspend fun addObjective(planId: String, goalId: String, objective: NewObjective): String =
        translate { ffi.addObjective(planId, goalId, objective) }

    /** Adds an intervention (counselor). Returns its id. */
    suspend fun addIntervention(planId: String, goalId: String, intervention: NewIntervention): String =
        translate { ffi.addIntervention(planId, goalId, intervention) }

    /** Describes a GAS level (client or counselor) or sets the weight or baseline (counselor). */
    suspend fun setGas(planId: String, goalId: String, edit: GasEdit) = translate { ffi.setGas(planId, goalId, edit) }

    /** Records this member's agreement to the goal's current content. */
    suspend fun agree(planId: String, goalId: String) = translate { ffi.agree(planId, goalId) }

    /** Records a check-in by this member (or a correction of one of theirs). Returns its id. */
    suspend fun checkIn(planId: String, goalId: String, checkIn: NewCheckIn): String =
        translate { ffi.checkIn(planId, goalId, checkIn) }

    // ---- progress and exports ----

    /**
     * The plan's progress as of the client's today (the same day on every device): each goal's
     * GAS series, latest level, trend and check-in days, and the plan's T-score over time. Trends
     * look at the last [trendWindow] ratings (at least 2; 3 when null); future-dated check-ins
     * do not count.
     */
    suspend fun progress(planId: String, trendWindow: Int? = null): PlanProgress =
        translate { ffi.progress(planId, trendWindow?.coerceAtLeast(0)?.toUInt()) }

    /**
     * The plan as a FHIR R4 Bundle (type collection), as JSON text to save or share; the review
     * report rides along as a DocumentReference referenced from the CarePlan.
     */
    suspend fun exportFhir(planId: String): String = translate { ffi.exportFhir(planId) }

    /** The plan with its whole history as an Alliance plan file (JSON text), for [importJson]. */
    suspend fun exportJson(planId: String): String = translate { ffi.exportJson(planId) }

    /**
     * Imports a plan file made by [exportJson]; returns the plan's id. Changes the role rules
     * refuse throw [AllianceException.NotAllowed] and store nothing; a file that is not a plan
     * file, or a plan already here (sync instead), throws [AllianceException.InvalidInput].
     */
    suspend fun importJson(text: String): String = translate { ffi.importJson(text) }

    /** The plan as Markdown fit to print and sign, with the 42 CFR part 2 notice. */
    suspend fun exportMarkdown(planId: String): String = translate { ffi.exportMarkdown(planId) }

    /**
     * The review report: one self-contained HTML document (inline SVG charts, no scripts, no
     * external resources) to show in a WebView, print on A4 or US Letter, or attach to an EHR.
     */
    suspend fun exportReport(planId: String): String = translate { ffi.exportReport(planId) }

    // ---- sync ----

    private val progress = MutableStateFlow<SyncProgress?>(null)

    /** How sync with the server is going; null while no sync runs. */
    val syncProgress: StateFlow<SyncProgress?> = progress.asStateFlow()

    private val refused = Channel<RefusedChange>(capacity = 64, onBufferOverflow = BufferOverflow.DROP_OLDEST)

    /**
     * This device's own changes that the server refused while [startSync] ran (its rules, which
     * may differ from this build's, or a role that changed meanwhile): show them, the member's edit
     * did not count. Each is told once, to one collector, and kept until collected (the latest 64);
     * sync goes on, and later changes built on a refused one still go out. Ends at [close].
     */
    val refusedChanges: Flow<RefusedChange> = refused.receiveAsFlow()

    /**
     * Keeps every plan on this device in sync with the server at [serverUrl] (`ws://` or `wss://`)
     * until [stopSync] or [close]: local edits go out as they are made, remote ones come in (and
     * reach [plan] flows), lost connections are retried with backoff. Replaces a running sync.
     * [token] is this device's relay token, for relays that require one (a malformed one throws
     * [AllianceException.InvalidInput]); it goes to the server only, never into errors or logs.
     */
    fun startSync(serverUrl: String, token: RelayToken? = null) = translate {
        ffi.startSync(
            serverUrl,
            token?.value,
            ProgressWatcher(
                onProgress = { progress.value = it },
                onRefused = { changes -> changes.forEach { refused.trySend(it) } },
            ),
        )
    }

    /** Stops syncing with the server and waits until the connection is closed. */
    suspend fun stopSync() {
        translate { ffi.stopSync() }
        progress.value = null
    }

    /**
     * Syncs every plan this device shares with [other], an Alliance open in the same process. The
     * report lists own changes either one refused of the other's (set aside by the device that made
     * them).
     */
    suspend fun syncWith(other: Alliance): LocalSyncReport = translate {
        val report = ffi.syncWith(other.ffi)
        // What the sync appended is compacted now, off the edit path.
        ffi.compactDue(COMPACT_AFTER_SYNC)
        other.ffi.compactDue(COMPACT_AFTER_SYNC)
        report
    }

    /**
     * Compacts up to [maxPlans] plans whose stored changes outgrew half their snapshot; returns how
     * many. Edits and syncs only append: call it when the app goes idle, or after carrying sync
     * messages itself. [startSync] and [syncWith] compact on their own.
     */
    suspend fun compactDue(maxPlans: Int = COMPACT_AFTER_SYNC.toInt()): Int =
        translate { ffi.compactDue(maxPlans.coerceAtLeast(0).toUInt()).toInt() }

    /**
     * Re-encrypts the store under [newKey] (32 bytes); the next [open] needs the new key. Throws
     * [AllianceException.StoreInUse], changing nothing, while another [Alliance] or process has
     * the store open.
     */
    suspend fun rekey(newKey: ByteArray): Unit = translate { ffi.rekey(newKey) }

    /**
     * Closes the store and stops sync. Calls already running finish; later ones throw
     * [AllianceException.Closed]. Flows of [plan] stop receiving changes.
     */
    override fun close() {
        ffi.closeStore()
        progress.value = null
        refused.close()
    }
}

/** Told of every plan change by the library (on its threads); passes on those of one plan. */
private class PlanWatcher(private val watched: String, private val onChange: () -> Unit) : FfiPlanObserver {
    // Must not throw: it runs inside the library's call. trySend never does.
    override fun planChanged(planId: String) {
        if (planId == watched) onChange()
    }
}

/** Told of each change of sync progress, and of refused own changes, by the library (on its threads). */
private class ProgressWatcher(
    private val onProgress: (SyncProgress) -> Unit,
    private val onRefused: (List<RefusedChange>) -> Unit,
) : FfiSyncObserver {
    // Must not throw: they run inside the library's call. Setting a StateFlow and trySend never do.
    override fun syncProgress(progress: SyncProgress) = onProgress(progress)

    override fun changesRefused(changes: List<RefusedChange>) = onRefused(changes)
}

/** Most plans compacted after one sync; the rest wait for the next. */
private val COMPACT_AFTER_SYNC: UInt = 64u
