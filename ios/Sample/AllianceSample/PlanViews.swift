import Alliance
import SwiftUI

struct PlanListView: View {
    let alliance: Alliance
    @State private var plans: [PlanSummary] = []

    var body: some View {
        List(plans) { plan in
            NavigationLink(value: plan.id) {
                VStack(alignment: .leading) {
                    Text(plan.title)
                    Text("\(plan.goalCount) goals · \(plan.awaitingMyAgreement) to agree")
                        .font(.caption).foregroundStyle(.secondary)
                }
            }
        }
        .navigationTitle("Plans")
        .navigationDestination(for: String.self) { PlanView(alliance: alliance, planId: $0) }
        .task { plans = (try? await alliance.plans()) ?? [] }
    }
}

/// One plan, redrawn whenever it changes here or arrives changed from another device.
struct PlanView: View {
    let alliance: Alliance
    let planId: String
    @State private var plan: Plan?
    @State private var message: String?

    var body: some View {
        List {
            if let message { Text(message).foregroundStyle(.red) }
            if let plan {
                ForEach(plan.goals) { goal in
                    GoalRow(goal: goal, mustAgree: goal.agreement.waitingFor.contains(plan.me.id),
                            onAgree: { act { try await alliance.agree(planId: planId, goalId: goal.id) } },
                            onCheckIn: { draft in
                                act { _ = try await alliance.checkIn(planId: planId, goalId: goal.id, draft) }
                            })
                }
            }
        }
        .navigationTitle(plan?.title ?? "")
        .task(id: planId) {
            for await update in alliance.plan(planId) { plan = update }
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
    let onCheckIn: (CheckInDraft) -> Void
    @State private var level = 0
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
