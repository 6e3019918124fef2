import Foundation
import PropertyBased
import Testing

@testable import ParleyCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serialized: some tests change the process-wide umask.
@Suite(.serialized) struct KeyFileTests {
    static let vectorFileText = """
        PARLEY-ED25519-SECRET-KEY-V1
        seed: 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
        public: d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a

        """
    static var vectorFile: [UInt8] { Array(vectorFileText.utf8) }

    @Test func writeThenLoadGivesTheSameKey() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/alice.key"
            let key = SigningKey()
            try KeyFile.write(key, to: path)
            let loaded = try KeyFile.load(from: path)
            #expect(loaded.publicKey == key.publicKey)
            #expect(loaded.sign([1, 2, 3]) == key.sign([1, 2, 3]))
        }
    }

    @Test func writtenFileIsExactlyTheDocumentedThreeLines() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/vector.key"
            try KeyFile.write(try SigningKey(seed: RFC8032Vector1.seed), to: path)
            #expect(try contents(of: path) == Self.vectorFile)
        }
    }

    @Test(arguments: [0o000, 0o277] as [mode_t])
    func writtenFileHasMode0600WhateverTheUmask(mask: mode_t) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/key"
            let previous = umask(mask)
            defer { umask(previous) }
            try KeyFile.write(SigningKey(), to: path)
            #expect(try permissions(of: path) == 0o600)
            try KeyFile.write(SigningKey(), to: path, overwrite: true)
            #expect(try permissions(of: path) == 0o600)
        }
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o620, 0o602, 0o700 | 0o004] as [mode_t])
    func fileOthersCanAccessIsRefused(mode: mode_t) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/key"
            try KeyFile.write(SigningKey(), to: path)
            #expect(chmod(path, mode) == 0)
            #expect(throws: KeyFileError.insecurePermissions(path: path, mode: UInt32(mode))) {
                try KeyFile.load(from: path)
            }
        }
    }

    @Test func insecurePermissionsMessageSaysHowToFixIt() {
        let error = KeyFileError.insecurePermissions(path: "/home/a/my key", mode: 0o644)
        #expect(error.description.contains("chmod 600 '/home/a/my key'"))
        #expect(error.description.contains("0644"))
    }

    @Test func existingFileIsNotOverwrittenWithoutTheFlag() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/key"
            let original = SigningKey()
            try KeyFile.write(original, to: path)
            #expect(throws: KeyFileError.alreadyExists(path: path)) { try KeyFile.write(SigningKey(), to: path) }
            #expect(try KeyFile.load(from: path).publicKey == original.publicKey)
        }
    }

    @Test func overwriteReplacesTheKeyAndLeavesNoTemporaryFile() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/key"
            try KeyFile.write(SigningKey(), to: path)
            let replacement = SigningKey()
            try KeyFile.write(replacement, to: path, overwrite: true)
            #expect(try KeyFile.load(from: path).publicKey == replacement.publicKey)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["key"])
        }
    }

    @Test func overwriteCreatesAMissingFile() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/new.key"
            let key = SigningKey()
            try KeyFile.write(key, to: path, overwrite: true)
            #expect(try KeyFile.load(from: path).publicKey == key.publicKey)
        }
    }

    @Test func writingIntoAMissingDirectoryIsASystemError() async throws {
        await withTemporaryDirectory { directory in
            let path = directory + "/no/such/dir/key"
            #expect(throws: KeyFileError.systemError(path: path, operation: "open", errno: ENOENT)) {
                try KeyFile.write(SigningKey(), to: path)
            }
        }
    }

    @Test func missingFileIsNotFound() async {
        await withTemporaryDirectory { directory in
            let path = directory + "/absent.key"
            #expect(throws: KeyFileError.notFound(path: path)) { try KeyFile.load(from: path) }
        }
    }

    @Test func directoryIsNotARegularFile() async {
        await withTemporaryDirectory { directory in
            #expect(throws: KeyFileError.notARegularFile(path: directory)) { try KeyFile.load(from: directory) }
        }
    }

    @Test func emptyFileIsReportedAsEmpty() async throws {
        try await expectLoad(of: [], fails: { .empty(path: $0) })
    }

    @Test func everyProperPrefixOfAKeyFileIsTruncated() async throws {
        for length in 1..<Self.vectorFile.count {
            try await expectLoad(of: Array(Self.vectorFile.prefix(length)), fails: { .truncated(path: $0) })
        }
    }

    @Test func vectorFileLoadsToTheVectorKey() async throws {
        try await withTemporaryDirectory { directory in
            let path = try writeRaw(Self.vectorFile, in: directory)
            #expect(try KeyFile.load(from: path).publicKey.bytes == RFC8032Vector1.publicKey)
        }
    }

    @Test func binaryGarbageIsNotAParleyKey() async throws {
        try await expectLoad(of: [0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x0a, 0xff], fails: { .notAParleyKey(path: $0) })
        try await expectLoad(of: Array("-----BEGIN OPENSSH PRIVATE KEY-----\n".utf8), fails: { .notAParleyKey(path: $0) })
    }

    @Test func randomContentNeverLoads() async {
        await withTemporaryDirectory { directory in
            await propertyCheck(count: 200, input: Gen.uint8().array(of: 1...400)) { garbage in
                let path = try writeRaw(garbage, in: directory)
                #expect(throws: KeyFileError.self) { try KeyFile.load(from: path) }
            }
        }
    }

    @Test func anySingleByteCorruptionIsRejected() async {
        let file = Self.vectorFile
        await withTemporaryDirectory { directory in
            await propertyCheck(count: 300, input: Gen.int(in: 0...(file.count - 1)), Gen.uint8(in: 1...255)) {
                position, flip in
                var corrupted = file
                corrupted[position] ^= flip
                let path = try writeRaw(corrupted, in: directory)
                #expect(throws: KeyFileError.self) { try KeyFile.load(from: path) }
            }
        }
    }

    @Test func otherParleyHeaderIsUnsupported() async throws {
        let text = Self.vectorFileText.replacing("KEY-V1", with: "KEY-V2")
        try await expectLoad(
            of: Array(text.utf8), fails: { .unsupportedHeader(path: $0, found: "PARLEY-ED25519-SECRET-KEY-V2") })
    }

    @Test func windowsLineEndingsAreMalformed() async throws {
        let text = Self.vectorFileText.replacing("\n", with: "\r\n")
        try await expectLoad(
            of: Array(text.utf8), fails: { .malformedLine(path: $0, line: 1, expected: "PARLEY-ED25519-SECRET-KEY-V1") })
    }

    @Test func missingSeedLabelIsMalformed() async throws {
        let text = Self.vectorFileText.replacing("seed: ", with: "seed:")
        try await expectLoad(
            of: Array(text.utf8),
            fails: { .malformedLine(path: $0, line: 2, expected: "seed: <64 lowercase hex digits>") })
    }

    @Test func uppercaseSeedHexIsInvalid() async throws {
        let text = Self.vectorFileText.replacing("9d61b19deffd", with: "9D61B19DEFFD")
        try await expectLoad(of: Array(text.utf8), fails: { .invalidHex(path: $0, line: 2, field: "seed") })
    }

    @Test func shortPublicKeyIsInvalidHex() async throws {
        let text = Self.vectorFileText.replacing("f707511a\n", with: "f707511\n")
        try await expectLoad(of: Array(text.utf8), fails: { .invalidHex(path: $0, line: 3, field: "public key") })
    }

    @Test func publicKeyOfAnotherSeedIsAMismatch() async throws {
        let otherPublic = SigningKey().publicKey.hex
        let text = Self.vectorFileText.replacing(RFC8032Vector1.publicKey.map { hexByte($0) }.joined(), with: otherPublic)
        try await expectLoad(of: Array(text.utf8), fails: { .publicKeyMismatch(path: $0) })
    }

    @Test func trailingCommentLineIsRefused() async throws {
        try await expectLoad(of: Self.vectorFile + Array("# alice\n".utf8), fails: { .trailingData(path: $0) })
        try await expectLoad(of: Self.vectorFile + [0x0a], fails: { .trailingData(path: $0) })
    }

    @Test func fileLargerThanTheLimitIsRefusedUnread() async throws {
        let huge = Self.vectorFile + [UInt8](repeating: 0x23, count: KeyFile.maxFileBytes)
        try await expectLoad(of: huge, fails: { .tooLarge(path: $0, limit: KeyFile.maxFileBytes) })
    }

    @Test func everyErrorDescriptionNamesTheFile() {
        let path = "/keys/alice.key"
        let errors: [KeyFileError] = [
            .notFound(path: path), .alreadyExists(path: path), .notARegularFile(path: path),
            .insecurePermissions(path: path, mode: 0o644), .tooLarge(path: path, limit: 4096), .empty(path: path),
            .truncated(path: path), .notAParleyKey(path: path), .unsupportedHeader(path: path, found: "PARLEY-X"),
            .malformedLine(path: path, line: 2, expected: "seed: ..."), .invalidHex(path: path, line: 2, field: "seed"),
            .trailingData(path: path), .publicKeyMismatch(path: path),
            .systemError(path: path, operation: "open", errno: EACCES),
        ]
        for error in errors { #expect(error.description.contains(path), "\(error)") }
    }

    // MARK: Helpers

    private func expectLoad(
        of bytes: [UInt8], fails expected: (String) -> KeyFileError, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await withTemporaryDirectory { directory in
            let path = try writeRaw(bytes, in: directory)
            #expect(throws: expected(path), sourceLocation: sourceLocation) { try KeyFile.load(from: path) }
        }
    }
}

/// Writes `bytes` to a file named `key` in `directory` with mode 0600, replacing any previous one.
private func writeRaw(_ bytes: [UInt8], in directory: String) throws -> String {
    let path = directory + "/key"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    guard chmod(path, 0o600) == 0 else { throw POSIXError(.EPERM) }
    return path
}

private func contents(of path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

private func permissions(of path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? Int) ?? -1
}

private func hexByte(_ byte: UInt8) -> String {
    (byte < 16 ? "0" : "") + String(byte, radix: 16)
}
