import Foundation
import ParleyControl
import ParleyLocks
import ParleySubprocess

/// Every stdout line of `parley node` goes through here, one whole line (or block, for a
/// human `status`) per write(2), under one lock: a pipe reader sees each line as soon as it
/// is written and never half of two. JSON lines when stdout is not a terminal or with
/// `--json`; the human form of ``ControlText`` on a terminal.
/// (Not `print` + `fflush`: stdio's flush-all would wait on the lock of stdin, which the
/// reader thread holds while it blocks in `readLine`.)
final class ConsoleOutput: Sendable {
    let human: Bool
    private let lock = Locked<Void>(())

    init(human: Bool) { self.human = human }

    func response(_ response: ControlResponse) {
        write(human ? ControlText.render(response) : encoded(response))
    }

    func event(_ event: ControlEvent) {
        write(human ? ControlText.render(event) : encoded(event))
    }

    private func encoded(_ value: some Encodable) -> String? {
        do { return try ControlCodec.line(value) } catch {
            Terminal.writeError("parley node: cannot encode output: \(error)\n")
            return nil
        }
    }

    private func write(_ text: String?) {
        guard let text else { return }
        lock.withLock { _ in try? FileHandle.standardOutput.write(contentsOf: Data((text + "\n").utf8)) }
    }
}
