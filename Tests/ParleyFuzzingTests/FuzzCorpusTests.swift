import Foundation
import ParleyFuzzing
import Testing

/// The fuzz targets' committed corpora and every input that once broke a decoder
/// (`Fuzz/Regressions/<target>/`), replayed through the same bodies libFuzzer runs, in the
/// normal build: a decoder change that breaks one of them fails here, without a fuzz build.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func files(_ directory: String) -> [URL] {
        let url = root.appendingPathComponent(directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { url.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func theCommittedCorpusAndTheRegressionsPass(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let corpus = Self.files("Fuzz/Corpus/\(name)")
        #expect(!corpus.isEmpty, "Fuzz/Corpus/\(name) is empty: run `python3 Tools/fuzz/fuzz.py seed`")
        for file in corpus + Self.files("Fuzz/Regressions/\(name)") {
            let bytes = try [UInt8](Data(contentsOf: file))
            #expect(throws: Never.self, "\(file.path)") { try target.run(bytes) }
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func theSeedsPassTheirOwnTarget(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let seeds = target.seeds()
        #expect(!seeds.isEmpty)
        for seed in seeds {
            #expect(seed.count <= target.maxInputBytes, "a seed longer than -max_len would be cut")
            #expect(throws: Never.self) { try target.run(seed) }
        }
    }

    @Test func everyTargetHasAnExecutableThePackageBuildsAndTheRunnerRuns() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let runner = try String(contentsOf: Self.root.appendingPathComponent("Tools/fuzz/fuzz.py"), encoding: .utf8)
        let directories = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Fuzz/Targets").path)
        #expect(Set(directories.filter { !$0.hasPrefix(".") }) == Set(FuzzTargets.all.map(\.name)), "Fuzz/Targets and FuzzTargets.all differ")
        for target in FuzzTargets.all {
            let main = Self.root.appendingPathComponent("Fuzz/Targets/\(target.name)/main.swift")
            #expect(FileManager.default.fileExists(atPath: main.path), "missing \(main.path)")
            #expect(manifest.contains("\"\(target.name)\""), "Package.swift's fuzz list lacks \(target.name)")
            #expect(runner.contains("\"\(target.name)\""), "Tools/fuzz/fuzz.py's TARGETS lacks \(target.name)")
        }
    }

    @Test func aBrokenPropertyIsAFindingNotASilentPass() throws {
        // The canonical check itself: bytes that decode to a value encoding differently.
        #expect(throws: FuzzFinding.self) { try Fuzz.canonical([1, 2], [1, 3], "a value") }
        #expect(throws: Never.self) { try Fuzz.canonical([1, 2], [1, 2], "a value") }
    }
}
