import Alliance
import SwiftUI

/// First run: who uses this phone.
struct SetupView: View {
    let alliance: Alliance
    let onReady: (Identity) -> Void
    @State private var name = ""
    @State private var message: String?

    var body: some View {
        Form {
            TextField("Your name", text: $name)
            Button("I am a client") { start(.client) }
            Button("I am a counselor") { start(.counselor) }
            if let message { Text(message).foregroundStyle(.red) }
        }
        .navigationTitle("Welcome")
    }

    private func start(_ role: Role) {
        Task {
            do {
                onReady(try await alliance.initIdentity(name: name, role: role))
            } catch AllianceError.invalidInput {
                message = "Please enter your name."
            } catch {
                message = "That did not work."
            }
        }
    }
}

struct PlanListView: View {
    let alliance: Alliance
    let me: Identity
    @State private var plans: [PlanSummary] = []

    var body: some View {
        List {
            // A counselor enrolls this id in a plan to share it with this phone.
            Text("This phone: \(me.deviceId)").font(.caption).textSelection(.enabled)
            ForEach(plans) { plan in
                NavigationLink(value: plan.planId) {
                    VStack(alignment: .leading) {
                        Text(plan.title)
                        Text("\(plan.goalCount) goals").font(.caption).foregroundStyle(.secondary)
                    }
                }
            }
        }
        .navigationTitle("Plans")
        .navigationDestination(for: String.self) { PlanView(alliance: alliance, me: me, planId: $0) }
        .task { plans = (try? await alliance.plans()) ?? [] }
    }
}

/// One plan, redrawn whenever it changes here or arrives changed from another device.
struct PlanView: View {
    let alliance: Alliance
    let me: Identity
    let planId: String
    @State private var plan: Plan?
    @State private var message: String?

    var body: some View {
        List {
            if let message { Text(message).foregroundStyle(.red) }
            if let plan {
                ForEach(plan.goals) { goal in
                    GoalRow(goal: goal, mustAgree: goal.agreement.waitingFor.contains(me.memberId),
                            onAgree: { act { try await alliance.agree(planId: planId, goalId: goal.goalId) } },
                            onCheckIn: { draft in
                                act { try await alliance.checkIn(planId: planId, goalId: goal.goalId, draft) }
                            })
                }
            }
        }
        .navigationTitle(plan?.title ?? "")
        .task(id: planId) {
            do {
                for try await update in alliance.plan(planId) { plan = update }
            } catch {
                message = "This plan cannot be shown."
            }
        }
    }

    private func act(_ action: @escaping () async throws -> Void) {
        Task {
            do {
                try await action()
                message = nil
            } catch AllianceError.notAllowed {
                message = "Your role cannot change that."
            } catch {
                message = "That did not work."
            }
        }
    }
}

struct GoalRow: View {
    let goal: Goal
    let mustAgree: Bool
    let onAgree: () -> Void
    let onCheckIn: (NewCheckIn) -> Void
    @State private var level: Int32 = 0
    @State private var note = ""

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            Text("“\(goal.clientWords)”").font(.headline)
            if goal.agreement.isAgreed {
                Label("Agreed", systemImage: "checkmark.seal")
            } else if mustAgree {
                Button("Agree", action: onAgree).buttonStyle(.borderedProminent)
            } else {
                Text("Waiting for agreement").foregroundStyle(.secondary)
            }
            // Today's check-in: a GAS level from -2 (much less than expected) to 2.
            Stepper("Today: \(level)", value: $level, in: -2...2)
            TextField("Note", text: $note)
            Button("Check in") {
                onCheckIn(.today(gasLevel: level, note: note))
                note = ""
            }
            .buttonStyle(.bordered)
        }
        .padding(.vertical, 4)
    }
}
