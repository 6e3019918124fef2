import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM, as something to await.
enum Signals {
    static func waitForTermination() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let once = DispatchQueue(label: "game-server.signals")
            nonisolated(unsafe) var sources: [DispatchSourceSignal] = []
            nonisolated(unsafe) var resumed = false
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: once)
                source.setEventHandler {
                    guard !resumed else { return }
                    resumed = true
                    sources.forEach { $0.cancel() }
                    continuation.resume()
                }
                source.resume()
                sources.append(source)
            }
        }
    }
}
