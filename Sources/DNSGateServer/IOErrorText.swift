import NIOCore

/// An error as the operator reads it. SwiftNIO's `IOError` text has a stray ")" after the system's
/// message ("bind: Cannot assign requested address) (errno: 99)"); it is dropped here.
func errorText(_ error: Error) -> String {
    guard error is IOError else { return "\(error)" }
    return "\(error)".replacingOccurrences(of: ") (errno: ", with: " (errno: ")
}
