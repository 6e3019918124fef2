import ParleyCrypto
import ParleyDrill
import ParleyNode
import ParleyTransport

extension FuzzTargets {
    /// Key files and the key texts people paste: `parley keygen`'s file format, `pk1…`
    /// human-form keys, hex public keys and Ethereum addresses.
    ///
    /// Input: 1 byte choosing the parser, then the text. Checks: a key file that loads is
    /// byte for byte the file `keygen` would write for that key; a human-form key that parses
    /// is exactly the key's human form (one string per key); hex forms parse back to the same
    /// bytes from their canonical text.
    static let keyFile = FuzzTarget(
        name: "keyfile",
        summary: "KeyFile.parse (canonical file), pk1… human-form keys, hex public keys, EIP-55 addresses",
        maxInputBytes: 4 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            var input = FuzzInput(bytes)
            let choice = input.byte()
            let rest = input.rest()
            switch choice % 4 {
            case 0:
                let parsed = rest.withUnsafeBytes { buffer in
                    Result { () throws(KeyFileError) in try KeyFile.parse(buffer, path: "fuzz.key") }
                }
                guard case let .success(key) = parsed else { return }
                let written = KeyFile.encodedContents(of: key).withUnsafeBytes { Array($0) }
                try Fuzz.canonical(written, rest, "a key file")
            case 1:
                let text = String(decoding: rest, as: UTF8.self)
                guard let key = try? PublicKey(humanForm: text) else { return }
                try Fuzz.check(key.humanForm == text, "\(text) names key \(key.humanForm), a different string")
            case 2:
                let text = String(decoding: rest, as: UTF8.self)
                guard let key = try? PublicKey(hex: text) else { return }
                try Fuzz.check((try? PublicKey(hex: key.hex)) == key, "public key \(key.hex) does not parse back")
                try Fuzz.check(key.hex == text.lowercased(), "\(text) parsed as public key \(key.hex)")
            default:
                let text = String(decoding: rest, as: UTF8.self)
                guard let address = try? EthereumAddress(hex: text) else { return }
                try Fuzz.check((try? EthereumAddress(hex: address.description)) == address, "address \(address) does not parse back")
                try Fuzz.check(address.bytes.count == 20, "an address of \(address.bytes.count) bytes")
            }
        },
        seeds: {
            let file = KeyFile.encodedContents(of: Samples.alice).withUnsafeBytes { Array($0) }
            var seeds: [[UInt8]] = [[0] + file, [0] + file.dropLast(9), [0] + Array("PARLEY-ED25519-SECRET-KEY-V2\n".utf8)]
            seeds.append([1] + Array(Samples.bob.publicKey.humanForm.utf8))
            seeds.append([2] + Array(Samples.bob.publicKey.hex.uppercased().utf8))
            if let address = Samples.ethereumKeys.first?.address {
                seeds.append([3] + Array(address.description.utf8))
                seeds.append([3] + Array(address.description.lowercased().utf8))
            }
            return seeds
        })

    /// The node's `peers` file (`<public key hex> <host:port>` per line) and `identity` file.
    ///
    /// Checks: every line is either read or reported with its own line number; what was read,
    /// written back as the node writes it, reads back to the same book with no problems.
    static let peers = FuzzTarget(
        name: "peers",
        summary: "PeerBook's peers file and the identity file's pk1… line; written back, read back the same",
        maxInputBytes: 8 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            let text = String(decoding: bytes, as: UTF8.self)
            let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
            let (addresses, problems) = PeerBook.parse(text, path: "peers")
            for problem in problems {
                let number = problem.dropFirst("peers:".count).prefix { $0.isNumber }
                try Fuzz.check(Int(number).map { (1...lineCount).contains($0) } ?? false, "a problem without a line of the file: \(problem)")
            }
            try Fuzz.check(addresses.count + problems.count <= lineCount, "more entries and problems than lines")
            let written = PeerBook.text(of: addresses)
            let (again, newProblems) = PeerBook.parse(written, path: "peers")
            try Fuzz.check(newProblems.isEmpty, "the book as written does not read back: \(newProblems.first ?? "")")
            try Fuzz.check(again == addresses, "the book as written reads back as another book")
            // The identity file: its first line must be one pk1… key.
            if let line = text.split(separator: "\n").first, let key = try? PublicKey(humanForm: String(line)) {
                try Fuzz.check(key.humanForm == line, "identity line \(line) names \(key.humanForm)")
            }
        },
        seeds: {
            var book: [PublicKey: SocketAddress] = [:]
            if let v4 = try? SocketAddress("127.0.0.1:7001"), let v6 = try? SocketAddress("[::1]:7002") {
                book[Samples.alice.publicKey] = v4
                book[Samples.bob.publicKey] = v6
            }
            let text = PeerBook.text(of: book)
            return [
                Array(text.utf8),
                Array((text + "not a line\n\(Samples.alice.publicKey.hex) 10.0.0.1:\n").utf8),
                Array((Samples.alice.publicKey.humanForm + "\n").utf8),
            ]
        })

    /// Drill files (YAML), as `parley drill` reads them.
    ///
    /// Checks: the parser returns a drill or a `DrillFileError` whose line is 0 (the whole
    /// file) or a line of the file.
    static let drill = FuzzTarget(
        name: "drill",
        summary: "DrillParser over YAML drill files; errors name a line of the file",
        // The shipped drills are under 1 KiB; longer inputs only cost the fuzzer time in Yams.
        maxInputBytes: 2 * 1024,
        body: { (bytes) throws(FuzzFinding) in
            let text = String(decoding: bytes, as: UTF8.self)
            do throws(DrillFileError) {
                _ = try DrillParser.parse(text, path: "fuzz.yaml")
            } catch {
                // libyaml breaks lines at \n, \r (so \r\n counts twice here: a looser bound), NEL,
                // LS and PS, and its error's line number counts them all.
                let lines = text.unicodeScalars.split(omittingEmptySubsequences: false) { DrillLines.breaks.contains($0) }.count
                try Fuzz.check((0...lines + 1).contains(error.line), "error at line \(error.line) of a \(lines)-line file: \(error.message)")
            }
        },
        seeds: { DrillSeeds.files })
}

/// The characters libyaml ends a line at.
enum DrillLines {
    static let breaks: Set<Unicode.Scalar> = ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"]
}
