import Foundation
import ParleySubprocess

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system's temporary directory.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw GameServerFailure("cannot make a temporary directory for \(prefix)") }
    return String(cString: made)
}

/// A failure the commands report on stderr before exiting 1.
struct GameServerFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
