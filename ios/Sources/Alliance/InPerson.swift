// In-person sync with one other device over a transport the app owns (Multipeer Connectivity,
// Bluetooth, a local socket): no server, no internet.
import AllianceBindings
import Foundation

public typealias InPersonReport = AllianceBindings.InPersonReport

/// This device's side of an in-person sync. Send what `start()` returns, hand every frame that
/// arrives to `receive(_:)` and send what it returns. When the link has been quiet for a moment,
/// `poll()` says whether this side has more; `isSettled` is true once it has nothing. A dropped
/// link loses nothing: a new session with the same device later sends only what is new. Call
/// `end()` when the link ends.
public final class InPersonSession: Sendable {
    private let ffi: AllianceBindings.InPersonSession

    /// A session of `store`'s device. Throws `AllianceError.notInitialized` for a store with no
    /// identity yet.
    public init(_ store: Alliance) throws {
        ffi = try translate { try AllianceBindings.InPersonSession(store: store.ffi) }
    }

    /// The first frames to send.
    public func start() -> [Data] {
        ffi.start()
    }

    /// One frame from the other device in; the frames to send back out (often none).
    public func receive(_ frame: Data) async throws -> [Data] {
        try await translate { try await ffi.receive(frame: frame) }
    }

    /// Frames this side still has to send; none once it is settled.
    public func poll() async throws -> [Data] {
        try await translate { try await ffi.poll() }
    }

    /// Whether this side has nothing more to send.
    public var isSettled: Bool { ffi.isSettled() }

    /// Plans synced, frames sent, and own changes the other device refused (set aside here).
    public func report() -> InPersonReport { ffi.report() }

    /// Ends the session.
    public func end() { ffi.end() }
}
