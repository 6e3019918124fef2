import Foundation
import ParleyCrypto
import ParleySubprocess
import ParleyWire

#if canImport(Glibc)
    import Glibc
#endif

/// Why the local EVM could not be started.
public enum LocalEVMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The Python environment or the devnet script is not there.
    case notInstalled(String)
    case failedToStart(String)

    public var description: String {
        switch self {
        case let .notInstalled(why): why
        case let .failedToStart(why): "the local EVM did not start: \(why)"
        }
    }
}

/// The local EVM (`Tools/evm-devnet/devnet.py`, py-evm behind standard JSON-RPC) as a child
/// process, for tests, drills and demos. It stops when this object is released or `stop()`
/// is called, and also when this process dies (it reads its stdin to the end: `--stop-on-eof`).
public final class LocalEVM: Sendable {
    /// A pre-funded development account.
    public struct Account: Sendable {
        public let address: EthereumAddress
        public let key: EthereumSigningKey
    }

    public let endpoint: URL
    public let chainID: UInt64
    public let accounts: [Account]
    public let rpc: JSONRPCClient
    private let process: SpawnedProcess

    /// Where to find the devnet: `PARLEY_EVM_PYTHON` and `PARLEY_EVM_DEVNET` when set, else a
    /// `Tools/evm-devnet/devnet.py` with a `.venv-evm/bin/python` beside it, looked for from
    /// the working directory and from this executable's directory upwards.
    public static func locate() -> (python: String, script: String)? {
        let environment = ProcessInfo.processInfo.environment
        if let python = environment["PARLEY_EVM_PYTHON"], let script = environment["PARLEY_EVM_DEVNET"] {
            return (python, script)
        }
        var starts = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            starts.append(URL(fileURLWithPath: executable).deletingLastPathComponent())
        }
        for start in starts {
            var directory = start.standardizedFileURL
            for _ in 0..<12 {
                let script = directory.appendingPathComponent("Tools/evm-devnet/devnet.py").path
                let python = directory.appendingPathComponent(".venv-evm/bin/python").path
                if FileManager.default.fileExists(atPath: script), FileManager.default.isExecutableFile(atPath: python) {
                    return (python, script)
                }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        return nil
    }

    public static var isAvailable: Bool { locate() != nil }

    public static let notInstalledMessage =
        "the local EVM needs its Python environment: run `make evm-env` in the Parley checkout (it creates .venv-evm from PyPI)"

    /// Starts the devnet on a free loopback port and waits (up to `timeout`) for its
    /// listening line. `manualTime`: block timestamps move only on `evm_increaseTime` /
    /// `evm_mine` and start at `startTime`, as the embedded chain's clock does.
    public static func start(
        chainID: UInt64 = 1337, port: UInt16 = 0, manualTime: Bool = false, startTime: UInt64? = nil,
        blockTime: Double? = nil, accounts: Int = 10, verbose: Bool = false, timeout: Duration = .seconds(60)
    ) throws(LocalEVMError) -> LocalEVM {
        guard let (python, script) = locate() else { throw .notInstalled(notInstalledMessage) }
        var arguments = [script, "--port", String(port), "--chain-id", String(chainID), "--accounts", String(accounts), "--stop-on-eof"]
        if manualTime { arguments.append("--manual-time") }
        if let startTime { arguments += ["--start-time", String(startTime)] }
        if let blockTime { arguments += ["--block-time", String(blockTime)] }
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess(
                executable: python, arguments: arguments, standardInput: .pipe, standardOutput: .pipe,
                standardError: verbose ? .inherit : .null)
        } catch {
            throw .failedToStart("\(error)")
        }
        guard let stdout = process.standardOutput,
            let line = Self.firstLine(stdout.fileDescriptor, within: timeout)
        else {
            process.signal(SIGKILL)
            _ = process.waitUntilExit()
            throw .failedToStart("no listening line within \(timeout) (run \(python) \(script) by hand to see why)")
        }
        guard let ready = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)),
            let rpcText = ready["rpc"]?.string, let endpoint = URL(string: rpcText),
            case let .number(chain)? = ready["chainId"], let list = ready["accounts"]?.array
        else {
            process.signal(SIGKILL)
            _ = process.waitUntilExit()
            throw .failedToStart("unexpected listening line: \(line)")
        }
        var funded: [Account] = []
        for entry in list {
            guard let keyText = entry["privateKey"]?.string, let secret = Hex.decode(String(keyText.dropFirst(2))),
                let key = try? EthereumSigningKey(secretBytes: secret)
            else { continue }
            funded.append(Account(address: key.address, key: key))
        }
        return LocalEVM(endpoint: endpoint, chainID: UInt64(chain), accounts: funded, process: process)
    }

    private init(endpoint: URL, chainID: UInt64, accounts: [Account], process: SpawnedProcess) {
        self.endpoint = endpoint
        self.chainID = chainID
        self.accounts = accounts
        self.process = process
        rpc = JSONRPCClient(endpoint: endpoint)
    }

    /// Reads one line from `fd`, giving up after `limit`.
    private static func firstLine(_ fd: Int32, within limit: Duration) -> String? {
        let deadline = ContinuousClock.now + limit
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            let count = read(fd, &byte, 1)
            if count <= 0 { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// Stops the devnet (SIGTERM, then SIGKILL if it lingers).
    public func stop() {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        for _ in 0..<200 where process.isRunning { usleep(10_000) }
        if process.isRunning { process.signal(SIGKILL) }
        _ = process.waitUntilExit()
    }

    deinit { stop() }

    // MARK: - Development extras

    /// Moves the clock forward and mines a block at the new time.
    public func increaseTime(_ seconds: UInt64) async throws(EthereumRPCError) {
        _ = try await rpc.call("evm_increaseTime", [.number(Double(seconds))])
        _ = try await rpc.call("evm_mine")
    }

    public func mine() async throws(EthereumRPCError) {
        _ = try await rpc.call("evm_mine")
    }

    public func snapshot() async throws(EthereumRPCError) -> String {
        guard let id = try await rpc.call("evm_snapshot").string else { throw .badAnswer("evm_snapshot answered no id") }
        return id
    }

    public func revert(to snapshot: String) async throws(EthereumRPCError) {
        _ = try await rpc.call("evm_revert", [.string(snapshot)])
    }

    /// Sets an account's ether balance (anvil's `anvil_setBalance`).
    public func setBalance(_ address: EthereumAddress, wei: Amount) async throws(EthereumRPCError) {
        _ = try await rpc.call("anvil_setBalance", [.string(Quantity.data(address.bytes)), .string(Quantity.hex(wei))])
    }
}
