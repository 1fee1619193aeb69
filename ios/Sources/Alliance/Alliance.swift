// TODO(bindings): the wrapper over AllianceBindings, written once alliance-ffi exists.
// Intended shape (ios/README.md has the whole of it):
//
//   public final class Alliance: Sendable {      // throws AllianceError only
//       public static func open(path: String, key: Data) async throws -> Alliance
//       public func plans() async throws -> [PlanSummary]
//       public func plan(_ planId: String) -> AsyncStream<Plan>    // current value, then each change
//       public func agree(planId: String, goalId: String) async throws
//       public func checkIn(planId: String, goalId: String, _ draft: CheckInDraft) async throws -> CheckIn
//       public func close()
//   }
//
// Conversions from the generated records live beside it (`extension Plan { init(_ ffi: ...) }`),
// and ApiError maps to AllianceError in one function.
