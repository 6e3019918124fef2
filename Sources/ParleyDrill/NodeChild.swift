import Foundation
import ParleyChannel
import ParleyControl
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyLocks
import ParleySettlement
import ParleySubprocess
import ParleyWire

/// A `parley node` child: typed requests in (control protocol JSON lines, each with an
/// id), answers and events out.
final class NodeChild: @unchecked Sendable {
    let name: String
    let executable: String
    private(set) var arguments: [String]
    private(set) var child: PipedChild
    private(set) var listening = ""
    /// Index of the next stdout line not yet looked at for events.
    private var cursor = 0
    private(set) var events: [ControlEvent] = []
    private var nextID = 0

    init(name: String, executable: String, arguments: [String]) throws {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        child = try PipedChild(executable: executable, arguments: arguments, standardError: .capture)
    }

    /// Waits for the `ready` line and pins the port for restarts.
    func waitUntilReady() async throws {
        guard let (line, _) = await child.line(from: 0, within: .seconds(30), where: { $0.contains("\"ready\"") }),
            case let .event(ready)? = try? ControlCodec.decodeLine(line)
        else {
            await child.kill()
            throw DrillAbort("\(name)'s node did not start: \(child.standardError.suffix(600))")
        }
        listening = ready.listening ?? ""
        if let index = arguments.firstIndex(of: "--listen"), !listening.isEmpty { arguments[index + 1] = listening }
    }

    /// SIGKILL, no clean-up.
    func crash() async {
        collectEvents()
        await child.kill(SIGKILL)
    }

    /// Starts the node again with the same key, journal and port.
    func restart() async throws {
        collectEvents()
        child = try PipedChild(executable: executable, arguments: arguments, standardError: .capture)
        cursor = 0
        try await waitUntilReady()
    }

    var isRunning: Bool { child.isRunning }

    /// Sends one command (the console's word form) as a typed request and returns its
    /// answer, told from other answers by its id.
    func command(_ line: String, timeout: Duration = .seconds(90)) async throws -> ControlResponse {
        guard isRunning else { throw DrillAbort("\(name)'s node is not running (crashed? add `- restart: \(name)`)") }
        var request: ControlRequest
        do {
            guard let parsed = try ControlCodec.words(line.split(separator: " ").map(String.init)) else {
                throw DrillAbort("empty command")
            }
            request = parsed
        } catch let error as ControlUsageError {
            throw DrillAbort("`\(line.prefix(60))`: \(error)")
        }
        nextID += 1
        let id = "drill-\(nextID)"
        request.id = id
        request.v = ControlProtocol.version
        collectEvents()
        let start = child.lineCount
        try child.send(try ControlCodec.line(request))
        guard let (answer, _) = await child.line(
                from: start, within: timeout, where: { $0.contains("\"id\":\"\(id)\"") && $0.contains("\"ok\"") }),
            case let .response(response)? = try? ControlCodec.decodeLine(answer)
        else {
            if child.hasEnded { throw DrillAbort("\(name)'s node exited: \(child.standardError.suffix(600))") }
            throw DrillAbort("\(name)'s node did not answer `\(line.prefix(60))` within \(timeout)")
        }
        return response
    }

    /// Moves event lines printed since the last call into `events`; returns the new ones.
    @discardableResult
    func collectEvents() -> [ControlEvent] {
        let fresh = child.lines(from: cursor)
        cursor += fresh.count
        let parsed = fresh.compactMap { line -> ControlEvent? in
            guard case let .event(event)? = try? ControlCodec.decodeLine(line) else { return nil }
            return event
        }
        events += parsed
        return parsed
    }
}

/// The line `parley devchain --json` prints once it listens.
struct DevchainReady: Decodable {
    let listening: String
    let key: String
}

/// Chain events as the subscription delivers them.
final class EventBox: Sendable {
    let list = Locked<[ChainEvent]>([])
}

/// The latest fully-signed state one node reports for the channel.
struct PeerView: Equatable {
    var version: UInt64
    /// By seat.
    var balances: [UInt64]
}
