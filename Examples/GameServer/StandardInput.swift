import Foundation
import ParleySubprocess

#if canImport(Glibc)
import Glibc
#endif

/// Our own stdin, a line at a time, read on a thread of its own.
enum StandardInput {
    static func nextLine() async -> String? {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: readLine()) }.start()
        }
    }
}

extension StandardInput {
    /// Exits the process (status 3) once stdin ends. The load run keeps our stdin open while
    /// it lives, so this ends a client whose parent died.
    static func exitAtEndOfInput() {
        Thread {
            while readLine() != nil {}
            Terminal.writeError("game-server client: the parent closed stdin; exiting\n")
            exit(3)
        }.start()
    }
}

/// Writes one line to stdout at once (stdout is a pipe to the parent: no buffering).
func writeLine(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
