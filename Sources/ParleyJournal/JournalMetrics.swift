import Metrics

/// What the journal records (Docs/Metrics.md): made once per journal, with the factory bound
/// when it opens, so a commit only bumps existing objects.
struct JournalMetrics: Sendable {
    /// Records made durable.
    let appends = Counter(label: "parley_journal_appends_total")
    /// Group commits written (each one write and, with `.fsync`, one sync).
    let commits = Counter(label: "parley_journal_commits_total")
    /// How long each group commit's fsync took.
    let fsync = Metrics.Timer(label: "parley_journal_fsync_seconds")
}
