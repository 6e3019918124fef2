import ArgumentParser
import Foundation
import ParleyControl
import ParleySubprocess

/// `parley ctl`: one command to a node running in the background (`parley node --control`).
struct CtlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Send one command to a running node through its control socket.",
        discussion: """
            Talks to a `parley node --control unix:PATH` (which may run under systemd or in a \
            container with no terminal): sends COMMAND, prints the answer, and exits 0 if \
            the node carried it out, 1 if it refused (the reason and a hint on stderr), 2 if \
            the node could not be reached. COMMAND is what the node's console takes; \
            `parley ctl --control unix:PATH help` lists them. With --json the answer is \
            printed as the node sent it: one JSON line of the control protocol \
            (Docs/Control.md).

            `subscribe` prints the node's events as they happen until interrupted.

            Examples:
              parley ctl --control unix:/run/parley/alice.sock status
              parley ctl --control unix:/run/parley/alice.sock pay 3f9a12cd 20
              parley ctl --control unix:/run/parley/alice.sock --json balance | jq .chainBalance
            """)

    @Option(name: .long, help: ArgumentHelp("The node's control socket.", valueName: "unix:PATH"))
    var control: String

    @Flag(name: .long, help: "Print the answer (and events) as JSON lines of the control protocol.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("How long to wait for the answer.", valueName: "seconds"))
    var timeout: Double = 120

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments, e.g. `pay 3f9a12cd 20`.")
    var command: [String] = []

    /// One line straight to the descriptor, unbuffered: in order, and nothing lost when
    /// SIGINT ends `subscribe`.
    static func output(_ line: String) {
        try? FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
    }

    func validate() throws {
        guard control.hasPrefix("unix:"), control.count > 5 else {
            throw ValidationError("--control must be unix:PATH, the path `parley node --control` was given.")
        }
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be in (0, 86400] seconds.") }
        guard !command.isEmpty else { throw ValidationError("Give a command, e.g. `status` (`help` lists them).") }
    }

    func run() throws {
        let request: ControlRequest
        do {
            guard let parsed = try ControlCodec.words(command) else { throw ValidationError("Give a command.") }
            request = parsed
        } catch let error as ControlUsageError {
            throw failure("ctl", error.description)
        }
        let path = String(control.dropFirst("unix:".count))
        let client: ControlClient
        do { client = try ControlClient.connect(path: path, timeout: .seconds(5)) } catch {
            Terminal.writeError("parley ctl: \(error)\n")
            throw ExitCode(2)
        }
        let limit = Duration.milliseconds(Int64((timeout * 1000).rounded()))
        let response: ControlResponse
        do {
            response = try client.call(request, timeout: limit) { event in
                Self.output(json ? (try? ControlCodec.line(event)) ?? "" : ControlText.render(event))
            }
        } catch {
            Terminal.writeError("parley ctl: \(error)\n")
            throw ExitCode(2)
        }
        if json {
            Self.output((try? ControlCodec.line(response)) ?? "")
        } else if response.ok {
            Self.output(ControlText.render(response))
        } else {
            Terminal.writeError(ControlText.render(response) + "\n")
        }
        guard response.ok else { throw ExitCode.failure }
        if request.command == .subscribe {
            while true {
                let line: String
                do { line = try client.nextLine(before: .now + .seconds(86_400)) } catch {
                    if case .timeout = error { continue }
                    Terminal.writeError("parley ctl: \(error)\n")
                    throw ExitCode(2)
                }
                if case let .event(event)? = try? ControlCodec.decodeLine(line) {
                    Self.output(json ? line : ControlText.render(event))
                }
            }
        }
    }
}
