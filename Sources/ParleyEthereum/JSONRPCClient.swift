import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import ParleyCrypto
import ParleyLocks

/// Why a JSON-RPC call did not produce an answer Parley can use.
public enum EthereumRPCError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No connection to the endpoint (refused, reset, DNS, TLS).
    case unreachable(endpoint: String, reason: String)
    /// No answer within the call's deadline.
    case timeout(method: String, seconds: Double)
    /// The endpoint answered with an HTTP status other than 200.
    case http(status: Int)
    /// The node answered with a JSON-RPC error. `data` is the revert data of a reverted
    /// call (code 3), when it sent any.
    case rpc(code: Int, message: String, data: [UInt8]?)
    /// The answer is not what the method promises.
    case badAnswer(String)

    public var description: String {
        switch self {
        case let .unreachable(endpoint, reason): "cannot reach the Ethereum endpoint \(endpoint): \(reason)"
        case let .timeout(method, seconds): "no answer to \(method) within \(seconds) s"
        case let .http(status): "the Ethereum endpoint answered HTTP \(status)"
        case let .rpc(code, message, _): "the Ethereum node refused the call (\(code)): \(message)"
        case let .badAnswer(why): "unreadable answer from the Ethereum node: \(why)"
        }
    }
}

/// Ethereum's JSON-RPC over HTTP: one POST per call, each with a deadline.
///
/// Built on URLSession from FoundationNetworking (libcurl underneath) rather than
/// async-http-client: the adapter makes a few small calls a second, so SwiftNIO's event
/// loops buy nothing here, and leaving them out keeps minutes of compile time out of every
/// clean build (Docs/Ethereum.md, "Why URLSession").
public final class JSONRPCClient: Sendable {
    /// The endpoint, e.g. `http://127.0.0.1:8545`.
    public let endpoint: URL
    /// How long one call may take before it fails with `.timeout`.
    public let callTimeout: Duration
    private let session: URLSession
    private let nextID = Locked<UInt64>(1)

    public init(endpoint: URL, callTimeout: Duration = .seconds(10)) {
        self.endpoint = endpoint
        self.callTimeout = callTimeout
        let configuration = URLSessionConfiguration.ephemeral
        let seconds = Double(callTimeout.components.seconds) + Double(callTimeout.components.attoseconds) / 1e18
        configuration.timeoutIntervalForRequest = seconds
        configuration.timeoutIntervalForResource = seconds
        // Requests that missed their deadline are not cancelled (see `withDeadline`) and may
        // hold a connection until the session's own timeout ends them: room for those
        // beside the calls that keep coming.
        configuration.httpMaximumConnectionsPerHost = 16
        session = URLSession(configuration: configuration)
    }

    /// No request is in flight by now (each holds the client until it ends), so nothing is
    /// cancelled: `invalidateAndCancel` would cancel a task whose end FoundationNetworking
    /// may still be recording, which traps (see `withDeadline`).
    deinit {
        session.finishTasksAndInvalidate()
    }

    /// Calls `method` and returns its `result`; a JSON-RPC error answer throws `.rpc`.
    public func call(_ method: String, _ params: [JSONValue] = []) async throws(EthereumRPCError) -> JSONValue {
        let id = nextID.withLock { id in
            defer { id += 1 }
            return id
        }
        let body = JSONValue.object([
            "jsonrpc": .string("2.0"), "id": .number(Double(id)), "method": .string(method), "params": .array(params),
        ])
        var request = URLRequest(url: endpoint)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let seconds = Double(callTimeout.components.seconds) + Double(callTimeout.components.attoseconds) / 1e18
        request.timeoutInterval = seconds
        do {
            request.httpBody = try JSONEncoder().encode(body)
        } catch {
            throw .badAnswer("could not encode the request for \(method)")
        }
        let answer: (Data, URLResponse)
        let prepared = request
        do {
            // The body holds the client, not just its session: a caller that gave up at the
            // deadline may drop the last other reference, and `deinit` invalidates the
            // session, on which a request that starts late would trap ("Session invalidated").
            answer = try await withDeadline(callTimeout) { [self] in try await session.data(for: prepared) }
        } catch is DeadlinePassed {
            throw .timeout(method: method, seconds: seconds)
        } catch let error as URLError where error.code == .timedOut {
            throw .timeout(method: method, seconds: seconds)
        } catch {
            throw .unreachable(endpoint: endpoint.absoluteString, reason: Self.reason(error))
        }
        if let http = answer.1 as? HTTPURLResponse, http.statusCode != 200 {
            throw .http(status: http.statusCode)
        }
        return try Self.result(ofReply: answer.0, method: method)
    }

    /// The `result` of a JSON-RPC reply body, or its `error` as `.rpc`. Anything else (not
    /// JSON, neither field) is `.badAnswer`: the node's bytes never trap.
    package static func result(ofReply body: Data, method: String) throws(EthereumRPCError) -> JSONValue {
        let reply: JSONValue
        do {
            reply = try JSONDecoder().decode(JSONValue.self, from: body)
        } catch {
            throw .badAnswer("\(method) answered with something that is not JSON")
        }
        if let error = reply["error"], !error.isNull {
            let code: Int = if case let .number(number)? = error["code"], let exact = Int(exactly: number) { exact } else { 0 }
            let message = error["message"]?.string ?? error.description
            let data = error["data"]?.string.flatMap { text in
                text.hasPrefix("0x") ? Hex.decode(String(text.dropFirst(2))) : nil
            }
            throw .rpc(code: code, message: message, data: data)
        }
        guard let result = reply["result"] else { throw .badAnswer("\(method) answered with neither result nor error") }
        return result
    }

    private static func reason(_ error: any Error) -> String {
        if let error = error as? URLError {
            return error.localizedDescription.isEmpty ? "\(error.code)" : error.localizedDescription
        }
        return "\(error)"
    }
}
