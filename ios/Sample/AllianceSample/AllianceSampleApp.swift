// A small SwiftUI app over the Alliance package: first-run setup, plan list, goals in the
// client's words with an Agree button, and a daily check-in.
import Alliance
import SwiftUI

@main
struct AllianceSampleApp: App {
    @State private var alliance: Alliance?
    @State private var identity: Identity?
    @State private var failure: String?

    var body: some Scene {
        WindowGroup {
            NavigationStack {
                if let failure {
                    Text(failure)
                } else if let alliance, let identity {
                    PlanListView(alliance: alliance, me: identity)
                } else if let alliance {
                    SetupView(alliance: alliance) { identity = $0 }
                } else {
                    ProgressView("Opening…").task { await open() }
                }
            }
        }
    }

    private func open() async {
        do {
            // The path and the database key come from the app, never from the core.
            let folder = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                     appropriateFor: nil, create: true)
            let opened = try await Alliance.open(path: folder.appendingPathComponent("alliance.db").path,
                                                 key: try DatabaseKey.load())
            identity = try await opened.identity()
            alliance = opened
        } catch {
            failure = "The plans on this phone could not be opened."
        }
    }
}
