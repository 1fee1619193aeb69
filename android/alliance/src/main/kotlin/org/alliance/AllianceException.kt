package org.alliance

/**
 * Everything the Alliance API throws. A sealed hierarchy, so a `when` over it is exhaustive and
 * each branch is something a UI can act on. Messages carry no personal data (no goal text, no
 * names): they end up in crash logs.
 *
 * The wrapper maps the generated `ApiException` (from `alliance-ffi`'s `ApiError`) to these in one
 * place; no generated exception type escapes the wrapper.
 */
sealed class AllianceException(message: String, cause: Throwable? = null) : Exception(message, cause) {
    /** The member's role may not write this (e.g. a client editing the clinical statement). */
    class NotAllowed(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** No plan, goal, member or check-in with that id. */
    class NotFound(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** Malformed id, empty words, a GAS level outside -2..2, and the like. */
    class InvalidInput(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** The database could not be read or written, or the key does not open it. */
    class Storage(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** Syncing with the server failed; local work is kept and goes out on the next connection. */
    class Sync(message: String, cause: Throwable? = null) : AllianceException(message, cause)

    /** The [Alliance] was closed; open a new one. */
    class Closed(message: String = "the store is closed", cause: Throwable? = null) :
        AllianceException(message, cause)
}
