import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed file operation: which path, what was being done, and the system's reason
/// (e.g. "No space left on device").
public struct AtomicFileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let operation: String
    public let reason: String

    public init(path: String, operation: String, reason: String) {
        self.path = path
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "\(path): \(operation) failed: \(reason)" }
}

extension AtomicFileError: LocalizedError {
    public var errorDescription: String? { description }
}

/// Writes files so that a crash, kill or full disk at any moment leaves either the complete old
/// file or the complete new one, never a mix: the data goes to a temporary file in the destination's
/// directory (same file system, so the rename is atomic), is fsynced, renamed over the destination,
/// and the directory is fsynced so the rename itself survives a power loss.
public enum AtomicFile {
    /// Calls `body` with a writer for the new contents, then commits them to `url`. If `body` or any
    /// step throws, the temporary file is removed, the old destination is untouched, and the error
    /// is rethrown (errors from `body` unchanged, I/O errors as `AtomicFileError`).
    public static func write(to url: URL, _ body: (AtomicFileWriter) throws -> Void) throws {
        let destination = url.path
        let directory = url.deletingLastPathComponent().path
        // A dot-name with the pid and a random suffix: hidden from casual listings, unique per
        // writer, and recognisable as debris if the process is killed before cleanup.
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            .path
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            throw AtomicFileError(
                path: destination, operation: "creating a temporary file in \(directory)", reason: errnoText())
        }
        let writer = AtomicFileWriter(descriptor: descriptor, path: temporary)
        var committed = false
        defer {
            if !committed {
                writer.closeQuietly()
                unlink(temporary)
            }
        }
        try body(writer)
        try writer.flush()
        #if canImport(Darwin)
        // On Darwin fsync only reaches the drive's cache; F_FULLFSYNC asks for stable storage.
        if fcntl(descriptor, F_FULLFSYNC) != 0 {
            guard fsync(descriptor) == 0 else {
                throw AtomicFileError(path: temporary, operation: "fsync", reason: errnoText())
            }
        }
        #else
        guard fsync(descriptor) == 0 else {
            throw AtomicFileError(path: temporary, operation: "fsync", reason: errnoText())
        }
        #endif
        // close can report deferred write errors (NFS), so it is checked too.
        try writer.close()
        guard rename(temporary, destination) == 0 else {
            throw AtomicFileError(path: destination, operation: "renaming \(temporary) over it", reason: errnoText())
        }
        committed = true
        // Make the new directory entry durable. The file is already in place, so a failure here is
        // reported but there is nothing to undo.
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// fsyncs a directory, so entries created or renamed in it survive a power loss. File systems
    /// that cannot fsync a directory (EINVAL) are accepted: there is nothing more to do there.
    public static func syncDirectory(_ directory: String) throws {
        let directoryDescriptor = open(directory, O_RDONLY | O_CLOEXEC)
        guard directoryDescriptor >= 0 else {
            throw AtomicFileError(path: directory, operation: "opening the directory to fsync it", reason: errnoText())
        }
        defer { close(directoryDescriptor) }
        guard fsync(directoryDescriptor) == 0 || errno == EINVAL else {
            throw AtomicFileError(path: directory, operation: "fsync of the directory", reason: errnoText())
        }
    }

    /// Atomically replaces `url` with `bytes`.
    public static func write(_ bytes: [UInt8], to url: URL) throws {
        try write(to: url) { try $0.write(bytes) }
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

/// Appends bytes to the temporary file of an `AtomicFile.write`. Small writes are gathered in a
/// 1 MiB buffer; large ones go straight to the file, so callers can stream data of any size
/// without holding it all in memory. Valid only inside the `write` body.
public final class AtomicFileWriter {
    private static let bufferCapacity = 1 << 20

    /// The temporary file's path (the destination gets its name only on commit).
    public let temporaryPath: String
    /// Bytes accepted so far.
    public private(set) var bytesWritten = 0

    private var descriptor: Int32
    private let buffer: UnsafeMutableRawPointer
    private var buffered = 0

    init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        temporaryPath = path
        buffer = UnsafeMutableRawPointer.allocate(byteCount: AtomicFileWriter.bufferCapacity, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        closeQuietly()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard descriptor >= 0 else {
            throw AtomicFileError(path: temporaryPath, operation: "write", reason: "the file is already closed")
        }
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if buffered + bytes.count <= AtomicFileWriter.bufferCapacity {
            (buffer + buffered).copyMemory(from: source, byteCount: bytes.count)
            buffered += bytes.count
        } else {
            try flush()
            if bytes.count < AtomicFileWriter.bufferCapacity {
                buffer.copyMemory(from: source, byteCount: bytes.count)
                buffered = bytes.count
            } else {
                try writeFully(UnsafeRawBufferPointer(bytes))
            }
        }
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    public func write(_ text: String) throws {
        try write(Array(text.utf8))
    }

    /// Sends buffered bytes to the file.
    func flush() throws {
        guard buffered > 0 else { return }
        let pending = UnsafeRawBufferPointer(start: buffer, count: buffered)
        buffered = 0
        try writeFully(pending)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws {
        guard var source = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            // Linux transfers at most ~2 GiB per call; ask for 1 GiB at a time and loop on short writes.
            let written = posixWrite(descriptor, source, min(remaining, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw AtomicFileError(path: temporaryPath, operation: "write", reason: AtomicFile.errnoText())
            }
            guard written > 0 else {
                throw AtomicFileError(path: temporaryPath, operation: "write", reason: "no progress (wrote 0 bytes)")
            }
            source += written
            remaining -= written
        }
    }

    func close() throws {
        let descriptor = self.descriptor
        self.descriptor = -1
        guard descriptor >= 0 else { return }
        #if canImport(Glibc)
        let status = Glibc.close(descriptor)
        #else
        let status = Darwin.close(descriptor)
        #endif
        guard status == 0 else {
            throw AtomicFileError(path: temporaryPath, operation: "close", reason: AtomicFile.errnoText())
        }
    }

    func closeQuietly() {
        try? close()
    }
}

/// The C `write`, named so it does not clash with `AtomicFileWriter.write` inside the class.
@inline(__always)
private func posixWrite(_ descriptor: Int32, _ source: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, source, count)
    #else
    return Darwin.write(descriptor, source, count)
    #endif
}
