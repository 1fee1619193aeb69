// Everything the Alliance API throws: one Swift error type whose cases are things a UI can act
// on. Messages carry no personal data (no goal text, no names): they end up in crash logs.
// The wrapper maps the generated ApiError to these in one place (`AllianceError.init(_:)` below);
// no generated error escapes.
import AllianceBindings

public enum AllianceError: Error, Sendable, Equatable {
    /// The member's role may not write this (e.g. a client editing the clinical statement).
    case notAllowed(String)
    /// No plan, goal, member or check-in with that id.
    case notFound(String)
    /// Malformed id, empty words, a GAS level outside -2...2, and the like.
    case invalidInput(String)
    /// This device has no identity yet: call `Alliance.initIdentity` first.
    case notInitialized
    /// The key does not open this store (wrong key, or no key for an encrypted one); nothing
    /// changed.
    case wrongKey
    /// The store is open in another Alliance or process, so it cannot be rekeyed now; nothing
    /// changed. Close the other one and try again.
    case storeInUse
    /// Another copy of this store (a restored backup, a copied phone) uses this device's former
    /// identity, so the store took a new one: show `enrollmentCode` for a counselor to enroll
    /// it. Its own edits wait and are replayed once it is enrolled; nothing was written. See
    /// `Alliance.copiedIdentity()`.
    case copiedIdentity(enrollmentCode: String)
    /// The database could not be read or written, or its data is damaged or too new.
    case storage(String)
    /// Syncing failed; local work is kept and goes out on the next session.
    case sync(String)
    /// The Alliance was closed; open a new one.
    case closed
}

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
        case let .CopiedIdentity(reason: _, enrollmentCode: code): self = .copiedIdentity(enrollmentCode: code)
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
