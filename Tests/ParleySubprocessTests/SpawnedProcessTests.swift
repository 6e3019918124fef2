import Foundation
import ParleySubprocess
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `SpawnedProcess` starts every child Parley and its tests run. Real `/bin/sh` children.
@Suite("SpawnedProcess")
struct SpawnedProcessTests {
    /// Runs `/bin/sh -c script` with stdout piped; returns what it printed and how it ended.
    private func shell(_ script: String) throws -> (output: String, ended: SpawnedProcess.Termination) {
        let child = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", script], standardOutput: .pipe)
        let output = try #require(child.standardOutput).readDataToEndOfFile()
        return (String(decoding: output, as: UTF8.self), child.waitUntilExit())
    }

    @Test func exitCodeAndOutputComeBack() throws {
        let run = try shell("echo hello; echo oops >&2; exit 3")
        #expect(run.output == "hello\n")
        #expect(run.ended == .exited(3))
        #expect(run.ended.status == 3)
    }

    @Test func aKilledChildReportsItsSignalAndIsReapedOnce() async throws {
        let child = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "sleep 30"])
        #expect(child.isRunning)
        #expect(child.termination == nil)
        child.signal(SIGKILL)
        #expect(await child.exit() == .signalled(SIGKILL))
        #expect(child.waitUntilExit() == .signalled(SIGKILL), "the status is kept after the reap")
        #expect(!child.isRunning)
        #expect(child.termination?.status == 128 + SIGKILL)
        child.signal(SIGKILL)  // after the reap: a no-op, never a signal to a reused pid
    }

    @Test func concurrentWaitersAllSeeTheSameEnd() async throws {
        let child = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "sleep 0.2; exit 7"])
        let ends = await withTaskGroup(of: SpawnedProcess.Termination.self) { group in
            for index in 0..<4 {
                group.addTask {
                    if index % 2 == 0 { return await child.exit(pollingEvery: .milliseconds(5)) }
                    return await Task.detached { child.waitUntilExit() }.value
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(ends == Array(repeating: .exited(7), count: 4))
    }

    @Test func stdinPipeFeedsTheChild() throws {
        let child = try SpawnedProcess(
            executable: "/bin/sh", arguments: ["-c", "read line; echo got:$line"], standardInput: .pipe, standardOutput: .pipe)
        let input = try #require(child.standardInput)
        try input.write(contentsOf: Data("ping\n".utf8))
        try input.close()
        let output = try #require(child.standardOutput).readDataToEndOfFile()
        #expect(String(decoding: output, as: UTF8.self) == "got:ping\n")
        #expect(child.waitUntilExit() == .exited(0))
    }

    @Test func theChildInheritsNoDescriptorAboveStandardError() throws {
        // Opened without O_CLOEXEC, as a library might: Foundation's Process would close it in
        // the child only by listing /proc/self/fd; here the C library closes everything above 2.
        let leaked = open("/dev/null", O_RDONLY)
        try #require(leaked > 2)
        defer { close(leaked) }
        let run = try shell("if [ -e /proc/self/fd/\(leaked) ]; then echo inherited; else echo clean; fi")
        #expect(run.output == "clean\n")
        #expect(run.ended == .exited(0))
    }

    @Test func signalsStartAtTheirDefaults() throws {
        // Test runners ignore SIGPIPE; an ignored signal survives exec unless reset. (Not
        // restored: other suites of this run ignore it too, and must keep it ignored.)
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
        let run = try shell("grep '^SigIgn:' /proc/self/status")
        let mask = try #require(UInt64(run.output.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16))
        #expect(mask & (1 << (UInt64(SIGPIPE) - 1)) == 0, "SIGPIPE is ignored in the child: \(run.output)")
    }

    @Test func aMissingExecutableIsATypedError() {
        #expect(throws: SpawnError.launch("/nonexistent/parley", String(cString: strerror(ENOENT)))) {
            try SpawnedProcess(executable: "/nonexistent/parley", arguments: [])
        }
    }

    /// The crash this type replaced: Foundation's `Process.run()` faulted while listing
    /// /proc/self/fd with thousands of descriptors open. Spawning with 3,000 open
    /// descriptors never lists them.
    @Test func manyOpenDescriptorsDoNotDisturbSpawning() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let wanted = Int(min(3_000, limit.rlim_max - 200))
        if limit.rlim_cur < rlim_t(wanted + 200) {  // a default soft limit of 1,024: raise it for this process
            limit.rlim_cur = rlim_t(wanted + 200)
            try #require(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        }
        var descriptors: [Int32] = []
        defer { descriptors.forEach { close($0) } }
        for _ in 0..<wanted {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            try #require(fd >= 0)
            descriptors.append(fd)
        }
        for round in 0..<40 {
            let run = try shell("echo \(round)")
            #expect(run.output == "\(round)\n")
            #expect(run.ended == .exited(0))
        }
    }
}
