import ParleyControl
import ParleyLocks

/// The control connections that asked for events (`subscribe`).
public final class EventSubscribers: Sendable {
    private let connections = Locked<[ObjectIdentifier: ControlConnection]>([:])

    public init() {}

    public func add(_ connection: ControlConnection) {
        connections.withLock { $0[ObjectIdentifier(connection)] = connection }
    }

    public func remove(_ connection: ControlConnection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    public func send(_ event: ControlEvent) {
        let list = connections.withLock { Array($0.values) }
        guard !list.isEmpty, let line = try? ControlCodec.line(event) else { return }
        for connection in list { connection.write(line) }
    }
}

extension NodeController {
    /// Serves one control connection: its requests run concurrently, each answered on the
    /// connection when done; `subscribe` adds the node's events; `quit` stops the node.
    public func serve(_ connection: ControlConnection, subscribers: EventSubscribers, stop: @escaping @Sendable () -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            for await line in connection.lines() {
                let request: ControlRequest
                do {
                    guard let parsed = try ControlCodec.request(line) else { continue }
                    request = parsed
                } catch {
                    if let text = try? ControlCodec.line(ControlResponse.failure("?", id: nil, error: "\(error)")) {
                        connection.write(text)
                    }
                    continue
                }
                group.addTask {
                    let response = await answer(request)
                    if response.ok, request.command == .subscribe { subscribers.add(connection) }
                    if let text = try? ControlCodec.line(response) { connection.write(text) }
                    if response.ok, request.command == .quit { stop() }
                }
            }
        }
        subscribers.remove(connection)
        connection.close()
    }
}
