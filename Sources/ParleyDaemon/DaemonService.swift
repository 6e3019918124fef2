import Logging
import ServiceLifecycle

/// A daemon's life as a ServiceLifecycle service (`parley node`, `parley devchain`, the game
/// server): SIGTERM and SIGINT start a graceful shutdown, which resolves `stop` with
/// `.signal`; `body` waits on `stop`, shuts the daemon down (journal and ledger writes under
/// way finish) and returns. Signals are handled from `body`'s first line on, so a daemon
/// prints its ready line there: a supervisor's SIGTERM right after it is always handled.
public struct DaemonService: Service {
    let stop: StopSignal
    let body: @Sendable () async throws -> Void

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await body()
        } onGracefulShutdown: { [stop] in
            stop.trigger(.signal)
        }
    }

    /// Runs `body` under a service group until it returns; `label` names its logger.
    public static func run(
        label: String, stop: StopSignal, body: @escaping @Sendable () async throws -> Void
    ) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                // Returning after `quit` or end of input is the end of the daemon, not a failure.
                .init(service: DaemonService(stop: stop, body: body), successTerminationBehavior: .gracefullyShutdownGroup)
            ], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: label) { _ in SwiftLogNoOpLogHandler() }))
        try await group.run()
    }
}
