import Foundation

extension KeyedDecodingContainer {
    /// The value under `key`, or `value` when the key is absent or null: how every configuration
    /// in the package reads a field that has a default.
    @inlinable
    public func decode<T: Decodable>(_ key: Key, default value: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? value()
    }
}
