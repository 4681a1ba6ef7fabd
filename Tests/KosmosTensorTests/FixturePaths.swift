import Foundation

/// Fixtures live in Tests/Fixtures beside the test targets. They are found relative to this source
/// file, so tests work from any working directory and need no bundle resources.
func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
        .appendingPathComponent(name)
}
