import Foundation
import ParleyFiles
import SystemPackage
import Testing

/// A fresh directory under /tmp, removed with everything in it when the test ends.
private final class ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/parley-files-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FileError(operation: "mkdtemp", path: "/tmp", errno: errno) }
        path = String(cString: made)
    }

    deinit { remove(path) }

    private func remove(_ path: String) {
        _ = chmod(path, 0o700)
        if let names = try? FileSystemPaths.listDirectory(path) {
            for name in names { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

private func text(_ path: String) throws -> String {
    String(decoding: try FileSystemPaths.readFile(path), as: UTF8.self)
}

@Suite struct AtomicFileWriteTests {
    @Test func replaceWritesANewFileAndReplacesAnOldOneWithMode0600() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/peers"
        try AtomicFileWrite.replace(path, with: Array("old\n".utf8))
        #expect(try text(path) == "old\n")
        try AtomicFileWrite.replace(path, with: Array("new\n".utf8))
        #expect(try text(path) == "new\n")
        let file = try DurableFile.open(path, .readOnly)
        defer { file.close() }
        #expect(try file.status().permissions == [.ownerReadWrite])
        #expect(try FileSystemPaths.listDirectory(dir.path) == ["peers"])
    }

    /// A rename that fails (here onto a non-empty directory) leaves what was there, and no temporary file.
    @Test func aFailedRenameLeavesTheOldContentsAndNoTemporaryFile() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/target"
        try FileSystemPaths.createDirectory(path)
        try AtomicFileWrite.create(path + "/old", with: Array("old".utf8))
        #expect {
            try AtomicFileWrite.replace(path, with: Array("new".utf8))
        } throws: { error in
            guard let error = error as? FileError else { return false }
            return error.operation == "rename" && error.path == path && [EISDIR, ENOTEMPTY, EEXIST].contains(error.errno)
        }
        #expect(try FileSystemPaths.listDirectory(dir.path) == ["target"])
        #expect(try text(path + "/old") == "old")
    }

    /// A crash between creating the temporary file and the rename leaves it behind; the next
    /// replace removes it instead of failing or leaving one more.
    @Test func aTemporaryFileLeftByACrashIsReplacedNotAccumulated() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/peers"
        try AtomicFileWrite.replace(path, with: Array("old".utf8))
        try AtomicFileWrite.create(dir.path + "/.peers.tmp", with: Array("half-written".utf8))
        try AtomicFileWrite.replace(path, with: Array("new".utf8))
        #expect(try text(path) == "new")
        #expect(try FileSystemPaths.listDirectory(dir.path) == ["peers"])
    }

    /// A directory nobody may write to (root ignores the mode, so not as root): the old file stays.
    @Test(.enabled(if: geteuid() != 0)) func aReadOnlyDirectoryLeavesTheOldContents() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/peers"
        try AtomicFileWrite.replace(path, with: Array("old".utf8))
        #expect(chmod(dir.path, 0o500) == 0)
        #expect(throws: FileError.self) { try AtomicFileWrite.replace(path, with: Array("new".utf8)) }
        #expect(try text(path) == "old")
        #expect(try FileSystemPaths.listDirectory(dir.path) == ["peers"])
    }

    @Test func createRefusesAnExistingFileAndKeepsIt() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/key"
        try AtomicFileWrite.create(path, with: Array("first".utf8))
        #expect(throws: FileError(operation: "open", path: path, errno: EEXIST)) {
            try AtomicFileWrite.create(path, with: Array("second".utf8))
        }
        #expect(try text(path) == "first")
    }

    /// The umask narrows `open`'s mode; the file still gets exactly the mode asked for.
    @Test func createSetsTheModeExactlyDespiteTheUmask() throws {
        let dir = try ScratchDirectory()
        let old = umask(0o277)
        defer { umask(old) }
        try AtomicFileWrite.create(dir.path + "/f", with: [1], mode: [.ownerReadWrite, .groupRead])
        let file = try DurableFile.open(dir.path + "/f", .readOnly)
        defer { file.close() }
        #expect(try file.status().permissions == [.ownerReadWrite, .groupRead])
    }
}

@Suite struct DurableFileTests {
    @Test func writeAllWritesALargeBufferWhole() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/large"
        let bytes = (0..<(24 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let file = try DurableFile.open(path, .writeOnly, options: [.create, .exclusiveCreate])
        try file.writeAll(bytes)
        try file.sync()
        file.close()
        #expect(try FileSystemPaths.readFile(path) == bytes)
        #expect(try FileSystemPaths.readFile(path, limit: 100_000) == Array(bytes.prefix(100_000)))
    }

    /// Through a pipe, writes come back short; writeAll continues them.
    @Test func writeAllContinuesShortWritesIntoAPipe() async throws {
        let (reader, writer) = try FileDescriptor.pipe()
        let bytes = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let reading = Task.detached { () throws -> [UInt8] in
            defer { try? reader.close() }
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 100_000)
            while case let count = try chunk.withUnsafeMutableBytes({ try DurableFile(reader, path: "pipe").readFully(into: $0) }),
                count > 0
            {
                received += chunk[0..<count]
            }
            return received
        }
        try DurableFile(writer, path: "pipe").writeAll(bytes)
        try writer.close()
        #expect(try await reading.value == bytes)
    }

    @Test func truncateAndAppendAfterIt() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/log"
        let file = try DurableFile.open(path, .readWrite, options: .create)
        defer { file.close() }
        try file.writeAll(Array("header-and-torn-tail".utf8))
        try file.truncate(to: 6)
        try file.seek(to: 6)
        try file.writeAll(Array("+record".utf8))
        try file.syncData()
        #expect(try text(path) == "header+record")
        try FileSystemPaths.truncate(path, to: 3)
        #expect(try file.readToEnd() == Array("hea".utf8))
    }

    @Test func directoriesAreCreatedListedSyncedAndFilesRemoved() throws {
        let dir = try ScratchDirectory()
        let nested = dir.path + "/a/b/c"
        try FileSystemPaths.createDirectory(nested)
        try FileSystemPaths.createDirectory(nested)
        try AtomicFileWrite.create(nested + "/one", with: [1])
        try AtomicFileWrite.create(nested + "/two", with: [2])
        try FileSystemPaths.syncDirectory(nested)
        #expect(try FileSystemPaths.listDirectory(nested).sorted() == ["one", "two"])
        try FileSystemPaths.remove(nested + "/one")
        try FileSystemPaths.remove(nested + "/one")
        #expect(try FileSystemPaths.listDirectory(nested) == ["two"])
        #expect(throws: FileError(operation: "mkdir", path: dir.path + "/x/y", errno: ENOENT)) {
            try FileSystemPaths.createDirectory(dir.path + "/x/y", intermediates: false)
        }
    }

    @Test func parentDirectories() {
        #expect(FileSystemPaths.parentDirectory(of: "/a/b/peers") == "/a/b")
        #expect(FileSystemPaths.parentDirectory(of: "/peers") == "/")
        #expect(FileSystemPaths.parentDirectory(of: "peers") == ".")
    }
}

@Suite struct FileErrorTests {
    @Test func anErrorNamesTheOperationThePathAndErrno() throws {
        let dir = try ScratchDirectory()
        let missing = dir.path + "/no such file"
        let error = #expect(throws: FileError.self) { try FileSystemPaths.readFile(missing) }
        #expect(error == FileError(operation: "open", path: missing, errno: ENOENT))
        #expect(error?.description == "open failed for \(missing): No such file or directory (errno \(ENOENT))")
        #expect(error?.reason == "No such file or directory")
    }

    @Test func eachOperationReportsItsOwnName() throws {
        let dir = try ScratchDirectory()
        let missing = dir.path + "/gone"
        #expect(throws: FileError(operation: "open", path: missing, errno: ENOENT)) { try FileSystemPaths.syncDirectory(missing) }
        #expect(throws: FileError(operation: "opendir", path: missing, errno: ENOENT)) { _ = try FileSystemPaths.listDirectory(missing) }
        #expect(throws: FileError(operation: "truncate", path: missing, errno: ENOENT)) { try FileSystemPaths.truncate(missing, to: 0) }
        #expect(throws: FileError(operation: "rename", path: missing + "2", errno: ENOENT)) {
            try FileSystemPaths.rename(missing, to: missing + "2")
        }
        let file = try DurableFile.open(dir.path + "/read-only", .readOnly, options: .create)
        defer { file.close() }
        #expect(throws: FileError(operation: "write", path: dir.path + "/read-only", errno: EBADF)) { try file.writeAll([1]) }
    }
}

@Suite struct LockFileTests {
    @Test func aSecondOpenIsRefusedUntilTheFirstReleases() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/LOCK"
        let first = try LockFile.acquire(path)
        let busy = #expect(throws: FileError.self) {
            _ = try LockFile.acquire(path, attempts: 3, retryInterval: .milliseconds(1))
        }
        #expect(busy == FileError(operation: "flock", path: path, errno: EWOULDBLOCK))
        #expect(busy.map(LockFile.isBusy) == true)
        first.release()
        let second = try LockFile.acquire(path, attempts: 1)
        second.release()
    }

    /// A lock released while the second one is still retrying is taken. The release comes
    /// from a thread of its own: `acquire` blocks its thread while it retries.
    @Test func aRetryTakesALockReleasedMeanwhile() throws {
        let dir = try ScratchDirectory()
        let path = dir.path + "/LOCK"
        let first = try LockFile.acquire(path)
        Thread {
            usleep(30_000)
            first.release()
        }.start()
        let second = try LockFile.acquire(path, attempts: 2000, retryInterval: .milliseconds(5))
        second.release()
    }
}

@Suite struct CRC32CTests {
    /// The standard check value, and the vectors of RFC 3720 (iSCSI), appendix B.4.
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map(UInt8.init)) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func aSliceGivesTheSameChecksumAsAnArray() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(CRC32C.checksum(bytes[100..<900]) == CRC32C.checksum(Array(bytes[100..<900])))
    }
}
