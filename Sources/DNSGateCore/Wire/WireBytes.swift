#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte equality with one `memcmp`, for the `==` of types that hash their wire bytes in bulk.
@inlinable func wireBytesEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
}

/// The same for two arrays, or slices of them: an element-wise `==` goes a byte at a time.
@inlinable func wireBytesEqual(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
    a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in wireBytesEqual(pa, pb) } }
}
