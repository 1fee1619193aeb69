package org.alliance

import org.alliance.ffi.ApiException

/**
 * Everything the Alliance API throws. A sealed hierarchy, so a `when` over it is exhaustive and
 * each branch is something a UI can act on. Messages carry no personal data (no goal text, no
 * names): they end up in crash logs.
 *
 * The wrapper maps the generated `ApiException` (from `alliance-ffi`'s `ApiError`) to these in one
 * place, [translate]; no generated exception type escapes the wrapper, not even as a cause.
 */
sealed class AllianceException(message: String, cause: Throwable? = null) : Exception(message, cause) {
    /** The member's role may not write this (e.g. a client editing the clinical statement). */
    class NotAllowed(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** No plan, goal, member or check-in with that id. */
    class NotFound(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** Malformed id, empty words, a GAS level outside -2..2, and the like. */
    class InvalidInput(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** This device has no identity yet: call [Alliance.initIdentity] first. */
    class NotInitialized(message: String = "this device has no identity yet", cause: Throwable? = null) :
        AllianceException(message, cause)

    /** The key does not open this store (wrong key, or no key for an encrypted one); nothing changed. */
    class WrongKey(message: String = "this store cannot be opened with the key given", cause: Throwable? = null) :
        AllianceException(message, cause)

    /**
     * The store is open in another [Alliance] or process, so it cannot be rekeyed now; nothing
     * changed. Close the other one and try again.
     */
    class StoreInUse(message: String = "the store is open elsewhere: close it and try again", cause: Throwable? = null) :
        AllianceException(message, cause)

    /**
     * Another copy of this store (a restored backup, a copied phone) uses this device's former
     * identity, so the store took a new one: show [enrollmentCode] for a counselor to enroll it.
     * Its own edits wait and are replayed once it is enrolled; nothing was written. See
     * [Alliance.copiedIdentity].
     */
    class CopiedIdentity(val enrollmentCode: String, message: String, cause: Throwable? = null) :
        AllianceException(message, cause)

    /** The database could not be read or written, or its data is damaged or too new. */
    class Storage(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** Syncing failed; local work is kept and goes out on the next session. */
    class Sync(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** The [Alliance] was closed; open a new one. */
    class Closed(message: String = "the store is closed", cause: Throwable? = null) :
        AllianceException(message, cause)
}

/** The one mapping from the generated errors to [AllianceException]. */
internal fun ApiException.toAllianceException(): AllianceException = when (this) {
    is ApiException.NotAllowed -> AllianceException.NotAllowed(reason)
    is ApiException.NotFound -> AllianceException.NotFound(reason)
    is ApiException.InvalidInput -> AllianceException.InvalidInput(reason)
    is ApiException.NotInitialized -> AllianceException.NotInitialized()
    is ApiException.Closed -> AllianceException.Closed()
    is ApiException.WrongKey -> AllianceException.WrongKey()
    is ApiException.StoreInUse -> AllianceException.StoreInUse()
    is ApiException.CopiedIdentity -> AllianceException.CopiedIdentity(enrollmentCode, reason)
    is ApiException.Storage -> AllianceException.Storage(reason)
    is ApiException.Sync -> AllianceException.Sync(reason)
}

/** Runs one call into the library, rethrowing its errors as [AllianceException]. */
internal inline fun <T> translate(call: () -> T): T =
    try {
        call()
    } catch (e: ApiException) {
        throw e.toAllianceException()
    }
