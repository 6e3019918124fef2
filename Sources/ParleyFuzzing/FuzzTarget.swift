import ParleyCrypto

/// One libFuzzer target: a decoder family, the property its body checks on every input, and
/// the real inputs its corpus starts from (Docs/Architecture.md, "Fuzzing").
///
/// The body throws a ``FuzzFinding`` when a property breaks; a crash (a trap, an ASan report)
/// is a finding too. Under libFuzzer a finding aborts the run and leaves the input as an
/// artifact; in the normal test suite (`FuzzCorpusTests`) it fails the test that replays
/// the committed corpus and regressions.
package struct FuzzTarget: Sendable {
    /// The target's name: `Fuzz/Targets/<name>`, `Fuzz/Corpus/<name>`, executable `fuzz-<name>`.
    package let name: String
    /// What it feeds and what it checks, for `make fuzz` and the docs.
    package let summary: String
    /// The largest input libFuzzer makes for it (`-max_len`).
    package let maxInputBytes: Int
    package let body: @Sendable (UnsafeRawBufferPointer) throws(FuzzFinding) -> Void
    /// Real inputs made by the code that writes them (frames, journal segments, key files…).
    package let seeds: @Sendable () -> [[UInt8]]

    package init(
        name: String, summary: String, maxInputBytes: Int,
        body: @escaping @Sendable (UnsafeRawBufferPointer) throws(FuzzFinding) -> Void,
        seeds: @escaping @Sendable () -> [[UInt8]]
    ) {
        self.name = name
        self.summary = summary
        self.maxInputBytes = maxInputBytes
        self.body = body
        self.seeds = seeds
    }

    /// Runs the body on `bytes`.
    package func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        let outcome = bytes.withUnsafeBytes { buffer in Result { () throws(FuzzFinding) in try body(buffer) } }
        try outcome.get()
    }
}

/// A property a decoder broke on some input.
package struct FuzzFinding: Error, Equatable, CustomStringConvertible {
    package let message: String

    package init(_ message: String) { self.message = message }

    package var description: String { message }
}

/// Checks inside a fuzz body.
package enum Fuzz {
    /// Throws a finding with `message` unless `condition` holds.
    @inline(__always)
    package static func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFinding) {
        if !condition { throw FuzzFinding(message()) }
    }

    /// A decoded value's canonical encoding must be the bytes it was decoded from.
    package static func canonical(_ decoded: [UInt8], _ input: some Collection<UInt8>, _ what: String) throws(FuzzFinding) {
        try check(decoded.elementsEqual(input), "\(what) decoded from \(Array(input).hexPrefix) re-encodes to \(decoded.hexPrefix)")
    }
}

extension Array where Element == UInt8 {
    /// The first 64 bytes in hex, for a finding's message.
    var hexPrefix: String {
        Hex.encode(prefix(64)) + (count > 64 ? "… (\(count) bytes)" : "")
    }
}

/// Reads the leading bytes of a fuzz input as choices (which decoder, where to split), the
/// way libFuzzer's FuzzedDataProvider does; running out of bytes reads zeros.
package struct FuzzInput {
    private let bytes: UnsafeRawBufferPointer
    private(set) var position = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var remaining: Int { bytes.count - position }

    package mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    package mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// Up to `count` bytes (fewer at the end).
    package mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + max(0, count))
        defer { position = end }
        return Array(bytes[position..<end])
    }

    /// Everything not read yet.
    package mutating func rest() -> [UInt8] { take(remaining) }

    /// The rest as chunks, each a 2-byte length (taken modulo `limit`) and that many bytes:
    /// how the framed modes turn an input into records they then frame with a real checksum.
    /// ``lengthPrefixed(_:)`` writes this layout.
    package mutating func lengthPrefixedChunks(limit: Int) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        while remaining > 0 { chunks.append(take(Int(uint16()) % limit)) }
        return chunks
    }

    /// `chunks` in the layout ``lengthPrefixedChunks(limit:)`` reads (each under 64 KiB).
    package static func lengthPrefixed(_ chunks: [[UInt8]]) -> [UInt8] {
        chunks.flatMap { [UInt8(truncatingIfNeeded: $0.count >> 8), UInt8(truncatingIfNeeded: $0.count)] + $0 }
    }
}
