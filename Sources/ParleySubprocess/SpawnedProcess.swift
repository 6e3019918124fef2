import CParleySpawn
import Foundation
import ParleyLocks

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, for everything Parley and its tests run as a
/// separate process (bench peers, game-server clients, drill nodes, test daemons).
///
/// Not Foundation's `Process`: on Linux its `run()` lists `/proc/self/fd` to find what to
/// close and copies whole `dirent` names while doing so, which read past glibc's buffer and
/// crashed a test run that held thousands of sockets open (swift-corelibs-foundation
/// PR 5472, not in the toolchain this repository builds with). Here the C library closes
/// every descriptor above stderr in the child (`closefrom`), nothing is listed, and no
/// Swift code runs between the fork and the exec. The child also starts with every
/// signal at its default action and none blocked (a test runner ignores SIGPIPE; its
/// children must not inherit that).
public final class SpawnedProcess: Sendable {
    /// Where a standard stream of the child goes.
    public enum Stream: Sendable {
        /// The same as ours.
        case inherit
        /// `/dev/null`.
        case null
        /// A pipe to us: the other end is in `standardInput`/`standardOutput`/`standardError`.
        case pipe
    }

    /// How the child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// Shell-style: the exit code, or 128 plus the signal's number.
        public var status: Int32 {
            switch self {
            case let .exited(code): code
            case let .signalled(signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case let .exited(code): "exit status \(code)"
            case let .signalled(signal): "killed by signal \(signal)"
            }
        }
    }

    public let processIdentifier: pid_t
    public let executable: String
    /// Our write end of the child's stdin, when it is `.pipe`.
    public let standardInput: FileHandle?
    /// Our read ends of the child's stdout and stderr, when they are `.pipe`.
    public let standardOutput: FileHandle?
    public let standardError: FileHandle?
    private let ended = Locked<Termination?>(nil)

    /// Starts `executable arguments…` with our environment.
    /// - Throws: `SpawnError` when a pipe cannot be made or the executable cannot be started
    ///   (missing, not executable).
    public init(
        executable: String, arguments: [String], standardInput stdin: Stream = .null, standardOutput stdout: Stream = .inherit,
        standardError stderr: Stream = .inherit
    ) throws(SpawnError) {
        // The child's ends of the pipes made so far; ours are owned by their FileHandles.
        var childEnds: [Int32] = []
        func childEnd(_ stream: Stream, childReads: Bool) throws(SpawnError) -> (child: Int32, ours: FileHandle?) {
            switch stream {
            case .inherit: return (Int32(PARLEY_SPAWN_INHERIT), nil)
            case .null: return (Int32(PARLEY_SPAWN_NULL), nil)
            case .pipe:
                var fds: [Int32] = [-1, -1]
                guard parley_pipe_cloexec(&fds) == 0 else {
                    let code = errno
                    childEnds.forEach { _ = close($0) }
                    throw .pipe(String(cString: strerror(code)))
                }
                let (child, ours) = childReads ? (fds[0], fds[1]) : (fds[1], fds[0])
                childEnds.append(child)
                return (child, FileHandle(fileDescriptor: ours, closeOnDealloc: true))
            }
        }
        let input = try childEnd(stdin, childReads: true)
        let output = try childEnd(stdout, childReads: false)
        let errors = try childEnd(stderr, childReads: false)

        var cArguments: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let result = parley_spawn(&pid, executable, &cArguments, environ, input.child, output.child, errors.child)
        // The child has its copies now (or never will): close ours of its ends.
        for child in [input.child, output.child, errors.child] where child >= 0 { close(child) }
        guard result == 0 else {
            for ours in [input.ours, output.ours, errors.ours] { try? ours?.close() }
            throw .launch(executable, String(cString: strerror(result)))
        }
        processIdentifier = pid
        self.executable = executable
        standardInput = input.ours
        standardOutput = output.ours
        standardError = errors.ours
    }

    /// Whether the child has not ended yet (reaps it if it has).
    public var isRunning: Bool { reap(blocking: false) == nil }

    /// How the child ended; nil while it runs.
    public var termination: Termination? { reap(blocking: false) }

    /// Blocks the calling thread until the child ends (keep it off the cooperative pool).
    @discardableResult
    public func waitUntilExit() -> Termination {
        while true {
            if let ended = reap(blocking: true) { return ended }
        }
    }

    /// Waits for the child to end by polling, so no cooperative thread blocks.
    public func exit(pollingEvery interval: Duration = .milliseconds(10)) async -> Termination {
        while true {
            if let ended = reap(blocking: false) { return ended }
            try? await Task.sleep(for: interval)
        }
    }

    /// Sends `signal` unless the child has already been reaped (its pid may be reused).
    public func signal(_ signal: Int32) {
        ended.withLock { ended in
            if ended == nil { _ = kill(processIdentifier, signal) }
        }
    }

    /// The child's end, reaping it if it has ended. Reaping happens only under the lock that
    /// `signal` takes, so a signal never reaches a reused pid; a blocking wait first waits
    /// for the end without reaping (`WNOWAIT`), outside the lock.
    private func reap(blocking: Bool) -> Termination? {
        if blocking, ended.withLock({ $0 }) == nil {
            var info = siginfo_t()
            while waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOWAIT) == -1, errno == EINTR {}
        }
        return ended.withLock { ended in
            if let ended { return ended }
            var status: Int32 = 0
            guard waitpid(processIdentifier, &status, WNOHANG) == processIdentifier else { return nil }
            let termination: Termination =
                (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            ended = termination
            return termination
        }
    }
}

/// Why a child could not be started.
public enum SpawnError: Error, Equatable, Sendable, CustomStringConvertible {
    case pipe(String)
    case launch(String, String)

    public var description: String {
        switch self {
        case let .pipe(why): "could not make a pipe for a child process: \(why)"
        case let .launch(executable, why): "could not start \(executable): \(why)"
        }
    }
}
