#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wire bytes of a name (or of one of its suffixes) as a dictionary key, hashed in one call.
///
/// `ArraySlice<UInt8>`'s own `Hashable` feeds the hasher one byte at a time, which made hashing the
/// largest part of a policy lookup. A lookup wraps a slice of the query's own name: no copy.
public struct WireKey: Hashable, Sendable {
    public let bytes: ArraySlice<UInt8>

    @inlinable public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    @inlinable public static func == (a: WireKey, b: WireKey) -> Bool {
        a.bytes.withUnsafeBytes { pa in b.bytes.withUnsafeBytes { pb in wireBytesEqual(pa, pb) } }
    }

    @inlinable public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    @inlinable public func _rawHashValue(seed: Int) -> Int { bytes.withUnsafeBytes { TableHash.of($0, seed: seed) } }
}

/// Byte equality with one `memcmp`, for the `==` of types that hash their wire bytes in bulk.
@inlinable func wireBytesEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
}
