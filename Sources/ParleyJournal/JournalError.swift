#if canImport(Glibc)
import Glibc
#endif
import ParleyChannel

/// Why the journal could not do what was asked. Every case says what to do next.
public enum JournalError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// The disk is full: nothing after this point is durable, so the journal refuses further writes.
    case diskFull(path: String)
    /// A damaged record before the end of the journal: committed history would be lost by skipping it.
    case corrupted(segment: String, offset: Int, reason: String)
    /// A segment file that is not a Parley journal segment of a version this build reads.
    case badSegmentHeader(segment: String, reason: String)
    /// A segment written in another journal format: by an older Parley (version 2 held
    /// 64-bit amounts) or a newer one. Nothing in it is read.
    case unsupportedFormat(segment: String, version: UInt16, supported: UInt16)
    /// An earlier write or sync failed; the journal accepts nothing more until it is reopened.
    case stopped(after: String)
    /// Another process holds this journal open.
    case locked(directory: String)
    case closed
    case recordTooLarge(bytes: Int, limit: Int)
    /// An `opened` record for a channel id the journal already holds (open or closed): a
    /// channel id is used once, ever (Docs/Protocol.md invariant 8). Nothing was written.
    case channelExists(ChannelID)

    public var description: String {
        switch self {
        case let .io(operation, path, code):
            return "\(operation) \(path) failed: \(String(cString: strerror(code))) (errno \(code))"
        case let .diskFull(path):
            return "disk full while writing \(path); free space and restart the node — nothing further will be signed"
        case let .corrupted(segment, offset, reason):
            return "journal segment \(segment) is damaged at byte \(offset) (\(reason)), before its end: "
                + "refusing to drop committed history; restore the file from a backup or inspect it with `parley journal verify`"
        case let .badSegmentHeader(segment, reason):
            return "\(segment) is not a readable journal segment: \(reason)"
        case let .unsupportedFormat(segment, version, supported) where version < supported:
            return "\(segment) is in journal format \(version), written by an older Parley (64-bit amounts); this build "
                + "reads format \(supported) only. Settle its channels with the release that wrote it, then start this "
                + "node with a new journal directory"
        case let .unsupportedFormat(segment, version, supported):
            return "\(segment) is in journal format \(version), newer than this build reads (\(supported)); use a newer parley"
        case let .stopped(after):
            return "the journal stopped accepting records after an earlier failure (\(after)); restart the node once the cause is fixed"
        case let .locked(directory):
            return "journal \(directory) is in use by another process"
        case .closed:
            return "the journal is closed"
        case let .recordTooLarge(bytes, limit):
            return "journal record of \(bytes) bytes exceeds the limit of \(limit)"
        case let .channelExists(id):
            return "channel \(id.shortID) is already in the journal; a channel id is used once, ever"
        }
    }
}
