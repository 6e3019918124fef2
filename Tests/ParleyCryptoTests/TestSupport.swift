import Foundation

/// RFC 8032, section 7.1, TEST 1.
enum RFC8032Vector1 {
    static let seed = bytes(hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    static let publicKey = bytes(hex: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    static let signatureOfEmptyMessage = bytes(
        hex: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
}

/// Decodes test-vector hex independently of the code under test.
func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    precondition(digits.count.isMultiple(of: 2), "odd hex in test vector")
    return stride(from: 0, to: digits.count, by: 2).map { index in
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            preconditionFailure("bad hex in test vector")
        }
        return byte
    }
}

/// Runs `body` with the path of a fresh, uniquely named directory that is removed afterwards.
@discardableResult
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async rethrows -> R {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("parley-crypto-tests-\(UUID().uuidString)", isDirectory: true)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url.path)
}
