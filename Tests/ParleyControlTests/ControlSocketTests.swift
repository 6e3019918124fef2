import Foundation
import Testing

@testable import ParleyControl

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket as a daemon's operator meets it: mode 0600, a stale file replaced, a
/// live node or a file that is not a socket refused, and a stop that removes only its own
/// socket. A client gets answers by id. The deadlines are long: under a loaded test run the
/// echo server's task once waited over 5 s for a thread.
@Suite(.serialized) struct ControlSocketTests {
    static func directory() -> String {
        let path = NSTemporaryDirectory() + "parley-ctl-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A server that answers every request with ok and its id, on a thread of its own per
    /// connection: not a task, which a loaded run's busy cooperative pool once held back for
    /// over 30 s (the pool has as many threads as cores, and other tests block some).
    static func echo(_ path: String) throws -> ControlSocketServer {
        try ControlSocketServer(path: path) { connection in
            let thread = Thread {
                connection.readLines { line in
                    guard let request = try? ControlCodec.request(line) else { return }
                    connection.write((try? ControlCodec.line(ControlResponse(command: request.command.rawValue, id: request.id, ok: true))) ?? "")
                }
            }
            thread.start()
        }
    }

    @Test func aClientGetsItsAnswerAndTheSocketIsPrivate() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/node.sock"
        let server = try Self.echo(path)
        defer { server.stop() }
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let client = try ControlClient.connect(path: path, timeout: .seconds(30))
        let answer = try client.call(ControlRequest(.status, id: "x1"), timeout: .seconds(30))
        #expect(answer.ok && answer.id == "x1" && answer.command == "status")
    }

    @Test func aLiveSocketIsRefusedAStaleOneReplacedAndAFileNeverTouched() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/node.sock"
        let first = try Self.echo(path)
        #expect(throws: ControlSocketError.inUse(path)) { _ = try Self.echo(path) }
        first.stop()
        #expect(!FileManager.default.fileExists(atPath: path), "stop leaves no socket file")

        // A socket file whose node died without removing it.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = try ControlSocketServer.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(stale)
        let second = try Self.echo(path)
        let client = try ControlClient.connect(path: path, timeout: .seconds(30))
        #expect(try client.call(ControlRequest(.help), timeout: .seconds(30)).ok)

        // A node that replaced this one's socket keeps it when this one stops.
        unlink(path)
        let third = try Self.echo(path)
        second.stop()
        #expect(FileManager.default.fileExists(atPath: path), "stop removed another server's socket")
        third.stop()

        FileManager.default.createFile(atPath: path, contents: Data("not a socket".utf8))
        #expect(throws: ControlSocketError.notASocket(path)) { _ = try Self.echo(path) }
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func nobodyThereIsReportedAsUnreachable() {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: ControlSocketError.self) { _ = try ControlClient.connect(path: dir + "/none.sock", timeout: .seconds(1)) }
    }
}
