#if FUZZING
import CLibFuzzer
#endif
import ParleySubprocess
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `main` of each `fuzz-<name>` executable (Fuzz/Targets/<name>/main.swift).
///
/// SwiftPM gives every executable its own `main`, which clashes with libFuzzer's, so fuzz
/// builds link libFuzzer's "no main" runtime and start it here with `LLVMFuzzerRunDriver`.
/// `fuzz-<name> --write-seeds DIR` writes the target's seed inputs instead (one file each,
/// named by content), which is how `Fuzz/Corpus/<name>` was made; `fuzz-<name> --max-len`
/// prints the largest input the target reads.
package enum FuzzDriver {
    /// The running target: set once before libFuzzer starts, read by the C callback, which
    /// cannot capture it.
    nonisolated(unsafe) private static var current: FuzzTarget?

    /// Runs the target called `name` (``FuzzTargets/all``).
    package static func main(named name: String) -> Never {
        guard let target = FuzzTargets.named(name) else {
            Terminal.writeError("fuzz-\(name): no fuzz target has that name\n")
            exit(2)
        }
        main(target)
    }

    package static func main(_ target: FuzzTarget) -> Never {
        let arguments = CommandLine.arguments
        if arguments.count == 3, arguments[1] == "--write-seeds" {
            exit(writeSeeds(target, to: arguments[2]))
        }
        if arguments.count == 2, arguments[1] == "--max-len" {
            // Tools/fuzz/fuzz.py passes this on as -max_len.
            print(target.maxInputBytes)
            exit(0)
        }
        #if FUZZING
        current = target
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in
            guard let target = FuzzDriver.current else { return 0 }
            do throws(FuzzFinding) {
                try target.body(UnsafeRawBufferPointer(start: data, count: count))
            } catch {
                // A broken property is a crash to libFuzzer: it stops and keeps the input.
                Terminal.writeError("\n==\(getpid())== fuzz finding in \(target.name): \(error.message)\n")
                abort()
            }
            return 0
        })
        #else
        Terminal.writeError("fuzz-\(target.name): built without -DFUZZING; build it with `make fuzz` (Tools/fuzz/fuzz.py)\n")
        exit(2)
        #endif
    }

    private static func writeSeeds(_ target: FuzzTarget, to directory: String) -> Int32 {
        var written = 0
        for seed in target.seeds() {
            do {
                try target.run(seed)
            } catch {
                Terminal.writeError("fuzz-\(target.name): a seed breaks the target's own property: \(error.message)\n")
                return 1
            }
            let path = directory + "/" + SeedName.of(seed)
            guard let file = fopen(path, "wb") else {
                Terminal.writeError("fuzz-\(target.name): cannot write \(path): \(String(cString: strerror(errno)))\n")
                return 1
            }
            let ok = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) == $0.count }
            guard fclose(file) == 0, ok else {
                Terminal.writeError("fuzz-\(target.name): cannot write \(path)\n")
                return 1
            }
            written += 1
        }
        print("fuzz-\(target.name): wrote \(written) seeds to \(directory)")
        return 0
    }
}

/// A seed file's name: `seed-` and 16 hex digits of a 64-bit FNV-1a hash of its bytes, so
/// writing the same seeds again changes nothing.
package enum SeedName {
    package static func of(_ bytes: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "seed-" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
