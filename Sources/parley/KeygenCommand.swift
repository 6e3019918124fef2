import ArgumentParser
import Foundation
import ParleyCrypto

/// `parley keygen`: create a signing key file, or show the public key of one.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create a key file, or show the identity and Ethereum address of an existing one.",
        discussion: """
            A key file holds one secret seed. From it come your Parley identity (an Ed25519 \
            key, shown as "pk1...", which peers and the transport know you by) and your \
            settlement key for Ethereum channels (a secp256k1 key derived from the seed with \
            domain separation, shown as its EIP-55 "0x..." address). `--out FILE` creates a \
            new one with permissions 0600 (owner read/write only), flushed to disk before the \
            command returns, and refuses to replace an existing file unless you pass --force. \
            `--show FILE` reads a key file and prints both; it refuses files that other users \
            can read or write. Share the identity and the address (both carry checksums \
            against typos); never share the key file.

            Examples:
              parley keygen --out alice.key
              parley keygen --show alice.key --json
            """)

    @Option(name: .long, help: ArgumentHelp("Create a new key and write it to this file.", valueName: "file"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Print the public key of this existing key file.", valueName: "file"))
    var show: String?

    @Flag(name: .long, help: "With --out: replace the file if it exists. The old key is lost.")
    var force = false

    @Flag(name: .long, help: #"Print {"publicKey", "humanForm", "ethereumAddress", "path"} as one JSON object."#)
    var json = false

    func validate() throws {
        switch (out, show) {
        case (nil, nil):
            throw ValidationError("Pass --out FILE to create a key, or --show FILE to print the public key of one.")
        case (.some, .some):
            throw ValidationError("Use either --out or --show, not both.")
        default:
            if force && out == nil { throw ValidationError("--force only applies to --out.") }
        }
    }

    func run() throws {
        do {
            if let path = out {
                let key = SigningKey()
                try createParentDirectories(of: path)
                try KeyFile.write(key, to: path, overwrite: force)
                report(key, path: path, created: true)
            } else if let path = show {
                report(try KeyFile.load(from: path), path: path, created: false)
            }
        } catch {
            FileHandle.standardError.write(Data("parley keygen: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func report(_ key: SigningKey, path: String, created: Bool) {
        let publicKey = key.publicKey
        let address = key.settlementKey.address.checksummed
        if json {
            let fields = [
                ("publicKey", publicKey.hex), ("humanForm", publicKey.humanForm), ("ethereumAddress", address), ("path", path),
            ]
            print("{" + fields.map { "\(jsonString($0.0)): \(jsonString($0.1))" }.joined(separator: ", ") + "}")
            return
        }
        if created { print("Wrote a new signing key to \(path) (mode 0600). Keep it secret; back it up.") }
        print("public key: \(publicKey.humanForm)")
        print("hex:        \(publicKey.hex)")
        print("ethereum:   \(address)")
        if !created { print("file:       \(path)") }
    }
}

/// A JSON string literal for `text`, escaped per RFC 8259.
private func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
