import ParleyFiles

/// Why a key file could not be written or loaded. Every case names the file, and its
/// description says what to do about it. No case ever carries secret material.
public enum KeyFileError: Error, Equatable, CustomStringConvertible {
    case notFound(path: String)
    /// Refused to replace an existing file because overwriting was not requested.
    case alreadyExists(path: String)
    /// A directory, device, pipe or socket rather than a regular file.
    case notARegularFile(path: String)
    /// Group or others may read or write the file; `mode` holds its permission bits.
    case insecurePermissions(path: String, mode: UInt32)
    /// Larger than any key file can be; `limit` is the most bytes load will read.
    case tooLarge(path: String, limit: Int)
    case empty(path: String)
    /// The file stops part-way through a valid key file.
    case truncated(path: String)
    /// The first line is not a Parley header at all.
    case notAParleyKey(path: String)
    /// A Parley header, but not one this version reads; `found` is the (sanitized) header line.
    case unsupportedHeader(path: String, found: String)
    /// Line `line` (1-based) does not have the expected shape.
    case malformedLine(path: String, line: Int, expected: String)
    /// The value on line `line` is not exactly 64 lowercase hexadecimal digits.
    case invalidHex(path: String, line: Int, field: String)
    /// Something follows the third line; a key file has exactly three.
    case trailingData(path: String)
    /// The public key line does not belong to the seed: the file was edited or corrupted.
    case publicKeyMismatch(path: String)
    /// A system call failed; `errno` is its error number.
    case systemError(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case let .notFound(path):
            "no key file at \(path); check the path, or create one with `parley keygen --out \(shellQuoted(path))`"
        case let .alreadyExists(path):
            "\(path) already exists; refusing to overwrite a key (the old one would be lost). "
                + "Choose another path, or overwrite explicitly (`parley keygen --force`) after backing it up"
        case let .notARegularFile(path):
            "\(path) is not a regular file (a directory, device or pipe?); point at the key file itself"
        case let .insecurePermissions(path, mode):
            "\(path) is accessible by other users (mode \(octal(mode))); a secret key must be private. "
                + "Run `chmod 600 \(shellQuoted(path))`, and treat the key as leaked if others could have read it"
        case let .tooLarge(path, limit):
            "\(path) is larger than \(limit) bytes, so it is not a Parley key file; check the path"
        case let .empty(path):
            "\(path) is empty; it is not a key file (was it truncated by a crash or a full disk?). Restore it from a backup"
        case let .truncated(path):
            "\(path) is cut short: it is the beginning of a key file but not all of it. Restore it from a backup"
        case let .notAParleyKey(path):
            "\(path) is not a Parley key file (it must start with the line \(KeyFile.header)); check the path"
        case let .unsupportedHeader(path, found):
            "\(path) starts with \"\(found)\", which this version of Parley cannot read; expected \(KeyFile.header)"
        case let .malformedLine(path, line, expected):
            "line \(line) of \(path) is malformed; expected \"\(expected)\" exactly, with Unix line endings (\\n, not \\r\\n)"
        case let .invalidHex(path, line, field):
            "line \(line) of \(path): the \(field) must be exactly 64 lowercase hexadecimal digits (0-9, a-f)"
        case let .trailingData(path):
            "\(path) has data after its third line; a key file has exactly three lines. Remove the extra text"
        case let .publicKeyMismatch(path):
            "\(path) is corrupt or was edited: its public key line does not match its seed. Restore it from a backup"
        case let .systemError(path, operation, code):
            "\(operation) failed for \(path): \(FileError.message(for: code)) (errno \(code))"
        }
    }
}

private func octal(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// The path as a single shell word, so a copied suggestion works even with spaces in it.
private func shellQuoted(_ path: String) -> String {
    let safe = path.unicodeScalars.allSatisfy { scalar in
        scalar.isASCII && (scalar.properties.isAlphabetic || scalar.properties.numericType != nil || "/._-+:,@".unicodeScalars.contains(scalar))
    }
    if safe && !path.isEmpty { return path }
    return "'" + path.replacing("'", with: "'\\''") + "'"
}
