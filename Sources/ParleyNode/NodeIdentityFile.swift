import ParleyCrypto
import ParleyJournal

/// The key a journal directory belongs to, kept in the file `identity` next to the journal
/// (one line: the key's `pk1…` form).
///
/// A journal holds signatures made with one key. A node started on another key's journal
/// (a mistyped --key or --journal) would find every channel foreign and fail each one with
/// an error, so the node refuses to start instead, naming both keys. Journals written
/// before this file existed are judged by their channels and then get the file.
enum NodeIdentityFile {
    static let fileName = "identity"

    static func check(directory: String, key: PublicKey, journal: Journal) throws(NodeError) {
        let path = directory + "/" + fileName
        if let text = PeerBook.readFile(path) {
            let line = text.split(separator: "\n").first.map(String.init) ?? ""
            guard let owner = try? PublicKey(humanForm: line) else {
                throw .invalidParameters("\(path) does not hold a node key (one line, pk1…): remove it to have it written again")
            }
            guard owner == key else { throw .journalOfAnotherKey(directory: directory, journal: owner, ours: key) }
            return
        }
        if let foreign = journal.channels.values.first(where: { $0.params.index(of: key) == nil }) {
            throw .journalOfAnotherKey(directory: directory, journal: foreign.params[.first], ours: key)
        }
        try PeerBook.writeDurably(path, key.humanForm + "\n")
    }
}
