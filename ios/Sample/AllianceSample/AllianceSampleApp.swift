// A small SwiftUI app over the Alliance package: plan list, goals in the client's words with an
// Agree button, and a daily check-in.
import Alliance
import SwiftUI

@main
struct AllianceSampleApp: App {
    @State private var alliance: Alliance?
    @State private var failure: String?

    var body: some Scene {
        WindowGroup {
            NavigationStack {
                if let alliance {
                    PlanListView(alliance: alliance)
                } else if let failure {
                    Text(failure)
                } else {
                    ProgressView("Opening…").task { await open() }
                }
            }
        }
    }

    private func open() async {
        do {
            let folder = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                     appropriateFor: nil, create: true)
            alliance = try await Alliance.open(path: folder.appendingPathComponent("alliance.db").path,
                                               key: DatabaseKey.load())
        } catch {
            failure = "The plans on this phone could not be opened."
        }
    }
}
