package org.alliance

import org.alliance.ffi.InPersonSession as FfiInPersonSession

typealias InPersonReport = org.alliance.ffi.InPersonReport

/**
 * In-person sync with one other device over a transport the app owns (Bluetooth, Nearby
 * Connections, a local socket): no server, no internet. Send what [start] returns, hand every
 * frame that arrives to [receive] and send what it returns. When the link has been quiet for a
 * moment, [poll] says whether this side has more; [isSettled] is true once it has nothing.
 * A dropped link loses nothing: a new session with the same device later sends only what is new.
 * Close the session when the link ends.
 */
class InPersonSession(store: Alliance) : AutoCloseable {
    private val ffi: FfiInPersonSession = translate { FfiInPersonSession(store.ffi) }

    /** The first frames to send. */
    fun start(): List<ByteArray> = ffi.start()

    /** One frame from the other device in; the frames to send back out (often none). */
    suspend fun receive(frame: ByteArray): List<ByteArray> = translate { ffi.receive(frame) }

    /** Frames this side still has to send; none once it is settled. */
    suspend fun poll(): List<ByteArray> = translate { ffi.poll() }

    /** Whether this side has nothing more to send. */
    val isSettled: Boolean get() = ffi.isSettled()

    /** Plans synced, frames sent, and own changes the other device refused (set aside here). */
    fun report(): InPersonReport = ffi.report()

    override fun close() {
        ffi.end()
        ffi.close()
    }
}
