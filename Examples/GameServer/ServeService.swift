import Logging
import ServiceLifecycle

/// The game server's life as a ServiceLifecycle service: it serves until SIGINT or SIGTERM
/// start a graceful shutdown, then runs `shutDown` (the host's channels stop and its
/// journal closes) before `run()` returns.
struct ServeService: Service {
    let shutDown: @Sendable () async -> Void

    func run() async throws {
        try? await gracefulShutdown()
        await shutDown()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down with `shutDown`.
    static func run(shutDown: @escaping @Sendable () async -> Void) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                // Returning after `quit` or end of input is the end of the daemon, not a failure.
                .init(service: ServeService(shutDown: shutDown), successTerminationBehavior: .gracefullyShutdownGroup)
            ], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "game-server.lifecycle") { _ in SwiftLogNoOpLogHandler() }))
        try await group.run()
    }
}
