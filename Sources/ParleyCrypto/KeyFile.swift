#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ParleyFiles
import SystemPackage

/// Signing keys on disk.
///
/// A key file is exactly these three lines, each ending in `"\n"`:
///
/// ```
/// PARLEY-ED25519-SECRET-KEY-V1
/// seed: <64 lowercase hex digits: the 32-byte Ed25519 seed>
/// public: <64 lowercase hex digits: the public key, a check that the seed is intact>
/// ```
///
/// Nothing else is accepted — no comments, blank lines, `\r`, or upper-case hex — so a file
/// either is a key or fails with a ``KeyFileError`` that says what is wrong with it. The file
/// must be readable and writable by its owner only (mode 0600).
///
/// Secret text is assembled and parsed in ``SecretBytes``, never in a `String`, and is wiped
/// after use.
public enum KeyFile {
    static let header = "PARLEY-ED25519-SECRET-KEY-V1"
    /// Headers of other Parley key kinds and versions start with this.
    static let headerFamilyPrefix = "PARLEY-"
    static let seedLabel = "seed: "
    static let publicKeyLabel = "public: "
    static let hexDigitsPerValue = 64
    /// ``load(from:)`` never reads more than this many bytes of a file.
    public static let maxFileBytes = 4096
    private static let maxReportedHeaderCharacters = 64
    private static let privateMode: FilePermissions = [.ownerReadWrite]
    private static let permissionBits = FilePermissions(rawValue: 0o7777)
    private static let groupAndOtherBits: FilePermissions = [.groupReadWriteExecute, .otherReadWriteExecute]

    /// Writes `key` to a new file at `path`, readable and writable by its owner only.
    ///
    /// The file holds the seed and, as a consistency check, the public key (format above).
    /// It is created with `O_CREAT|O_EXCL` and mode 0600, then `fchmod`ed to exactly 0600 so the
    /// umask cannot change it, written, and fsync'd; then its directory is fsync'd.
    /// An existing file is refused with ``KeyFileError/alreadyExists(path:)`` unless
    /// `overwrite` is true; then the key goes to a 0600 temporary file in the same directory
    /// that is renamed over `path`, so a crash leaves either the old key or the new one.
    ///
    /// Contract: when this returns, the file and its directory entry are durable. If creating,
    /// writing or renaming fails, no partial file is left behind and an existing file at `path`
    /// is unchanged; if only the final directory fsync fails, the new file is in place but a
    /// crash could still lose it.
    public static func write(_ key: SigningKey, to path: String, overwrite: Bool = false) throws(KeyFileError) {
        let contents = encodedContents(of: key)
        let directory = FileSystemPaths.parentDirectory(of: path)
        do throws(FileError) {
            try contents.withUnsafeBytes { (bytes) throws(FileError) in
                if overwrite {
                    try AtomicFileWrite.replace(path, with: bytes, mode: privateMode)
                } else {
                    try AtomicFileWrite.create(path, with: bytes, mode: privateMode)
                    try FileSystemPaths.syncDirectory(directory, acceptingUnsupported: true)
                }
            }
        } catch {
            if !overwrite && error.operation == "open" && error.errno == EEXIST { throw .alreadyExists(path: path) }
            // The temporary file is an implementation detail: name the file asked for.
            throw .systemError(path: error.path == directory ? directory : path, operation: error.operation, errno: error.errno)
        }
    }

    /// Loads the signing key stored at `path`.
    ///
    /// Refuses, each with its own ``KeyFileError``: a missing file; anything but a regular
    /// file; a file group or others may read or write (`mode & 0o077 != 0`) — checked before a
    /// byte is read, and the error tells the user to `chmod 600` it; a file larger than
    /// ``maxFileBytes`` (never read past that); and any content that is not exactly the
    /// format above — empty, cut short, another file type, another header, a malformed line,
    /// bad hex, extra lines, or a public key line that does not match the seed.
    /// No file content can crash it. The bytes read are wiped before it returns.
    public static func load(from path: String) throws(KeyFileError) -> SigningKey {
        let file: DurableFile
        do {
            // O_NONBLOCK: opening a FIFO by mistake must fail below, not hang here.
            file = try DurableFile.open(path, .readOnly, options: .nonBlocking)
        } catch {
            throw error.errno == ENOENT
                ? .notFound(path: path) : .systemError(path: path, operation: error.operation, errno: error.errno)
        }
        defer { file.close() }
        try checkIsPrivateRegularFile(file)

        var length = 0
        let contents = try SecretBytes(count: maxFileBytes + 1) { (buffer) throws(KeyFileError) in
            do throws(FileError) {
                length = try file.readFully(into: buffer)
            } catch {
                throw .systemError(path: path, operation: error.operation, errno: error.errno)
            }
        }
        guard length <= maxFileBytes else { throw .tooLarge(path: path, limit: maxFileBytes) }
        return try contents.withUnsafeBytes { (buffer) throws(KeyFileError) in
            try parse(UnsafeRawBufferPointer(rebasing: buffer.prefix(length)), path: path)
        }
    }

    // MARK: Writing

    package static func encodedContents(of key: SigningKey) -> SecretBytes {
        let beforeSeed = Array((header + "\n" + seedLabel).utf8)
        let afterSeed = Array(("\n" + publicKeyLabel + key.publicKey.hex + "\n").utf8)
        let seedStart = beforeSeed.count
        let seedEnd = seedStart + hexDigitsPerValue
        return SecretBytes(count: seedEnd + afterSeed.count) { out in
            out.copyBytes(from: beforeSeed)
            key.withSeed { seed in
                Hex.encode(seed, into: UnsafeMutableRawBufferPointer(rebasing: out[seedStart..<seedEnd]))
            }
            UnsafeMutableRawBufferPointer(rebasing: out[seedEnd...]).copyBytes(from: afterSeed)
        }
    }

    // MARK: Loading

    private static func checkIsPrivateRegularFile(_ file: DurableFile) throws(KeyFileError) {
        let info: Stat
        do {
            info = try file.status()
        } catch {
            throw .systemError(path: file.path, operation: error.operation, errno: error.errno)
        }
        guard info.type == .regular else { throw .notARegularFile(path: file.path) }
        guard info.permissions.isDisjoint(with: groupAndOtherBits) else {
            throw .insecurePermissions(path: file.path, mode: UInt32(info.permissions.rawValue & permissionBits.rawValue))
        }
        guard info.size <= maxFileBytes else { throw .tooLarge(path: file.path, limit: maxFileBytes) }
    }

    /// Parses file contents; errors are reported in file order, at the first problem.
    package static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(KeyFileError) -> SigningKey {
        guard !bytes.isEmpty else { throw .empty(path: path) }
        var lines = LineReader(bytes: bytes)
        try checkHeader(lines.next(), path: path)

        let seedHex = try fieldValue(lines.next(), lineNumber: 2, label: seedLabel, path: path)
        let seed = try SecretBytes(count: SigningKey.seedByteCount) { (out) throws(KeyFileError) in
            guard Hex.decode(seedHex, into: out, acceptUppercase: false) else {
                throw .invalidHex(path: path, line: 2, field: "seed")
            }
        }
        let key = SigningKey(seedSecret: seed)

        let publicHex = try fieldValue(lines.next(), lineNumber: 3, label: publicKeyLabel, path: path)
        var recordedPublicKey = [UInt8](repeating: 0, count: PublicKey.byteCount)
        let publicHexIsValid = recordedPublicKey.withUnsafeMutableBytes {
            Hex.decode(publicHex, into: $0, acceptUppercase: false)
        }
        guard publicHexIsValid else { throw .invalidHex(path: path, line: 3, field: "public key") }

        guard lines.isAtEnd else { throw .trailingData(path: path) }
        guard recordedPublicKey == key.publicKey.bytes else { throw .publicKeyMismatch(path: path) }
        return key
    }

    private static func checkHeader(_ line: LineReader.Line, path: String) throws(KeyFileError) {
        let expected = Array(header.utf8)
        let found: UnsafeRawBufferPointer
        switch line {
        case .end:
            throw .truncated(path: path)
        case let .incomplete(partial):
            if expected.starts(with: partial) { throw .truncated(path: path) }
            found = partial
        case let .complete(complete):
            if complete.elementsEqual(expected) { return }
            found = complete
        }
        if found.last == UInt8(ascii: "\r") {
            throw .malformedLine(path: path, line: 1, expected: header)
        }
        guard found.starts(with: headerFamilyPrefix.utf8) else { throw .notAParleyKey(path: path) }
        throw .unsupportedHeader(path: path, found: printable(found))
    }

    /// The 64-digit value after `label`, still unchecked hex. An unterminated line that could
    /// still grow into a valid one means the file was cut short.
    private static func fieldValue(
        _ line: LineReader.Line, lineNumber: Int, label: String, path: String
    ) throws(KeyFileError) -> UnsafeRawBufferPointer {
        let labelBytes = Array(label.utf8)
        let text: UnsafeRawBufferPointer
        switch line {
        case .end:
            throw .truncated(path: path)
        case let .incomplete(partial):
            if couldBeStart(of: labelBytes, partial) { throw .truncated(path: path) }
            text = partial
        case let .complete(complete):
            text = complete
        }
        guard text.starts(with: labelBytes) else {
            throw .malformedLine(
                path: path, line: lineNumber, expected: label + "<\(hexDigitsPerValue) lowercase hex digits>")
        }
        let value = UnsafeRawBufferPointer(rebasing: text[labelBytes.count...])
        guard value.count == hexDigitsPerValue else {
            throw .invalidHex(path: path, line: lineNumber, field: label == seedLabel ? "seed" : "public key")
        }
        return value
    }

    /// Whether `partial` is a prefix of `label` followed by up to 64 lowercase hex digits.
    private static func couldBeStart(of label: [UInt8], _ partial: UnsafeRawBufferPointer) -> Bool {
        guard partial.count <= label.count + hexDigitsPerValue else { return false }
        guard partial.prefix(label.count).elementsEqual(label.prefix(partial.count)) else { return false }
        return partial.dropFirst(label.count).allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
        }
    }

    /// A header line made safe to show: printable ASCII only, bounded length.
    private static func printable(_ line: UnsafeRawBufferPointer) -> String {
        let shown = line.prefix(maxReportedHeaderCharacters).map { (0x20...0x7e).contains($0) ? $0 : UInt8(ascii: "?") }
        return String(decoding: shown, as: UTF8.self) + (line.count > maxReportedHeaderCharacters ? "..." : "")
    }
}

/// Splits a buffer into `\n`-terminated lines without copying.
private struct LineReader {
    enum Line {
        case complete(UnsafeRawBufferPointer)
        /// The rest of the buffer, which has no terminating newline.
        case incomplete(UnsafeRawBufferPointer)
        case end
    }

    let bytes: UnsafeRawBufferPointer
    private var position = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }

    mutating func next() -> Line {
        guard position < bytes.count else { return .end }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
        guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")) else {
            position = bytes.count
            return .incomplete(rest)
        }
        position += newline + 1
        return .complete(UnsafeRawBufferPointer(rebasing: rest[..<newline]))
    }
}
