import Foundation
import XCTest
import KosmosModels
import KosmosTensor
@testable import KosmosTraining

/// Quantized weights do not train: a run whose model comes from a quantized directory stops
/// before it starts, saying why.
final class QuantizedTrainingTests: XCTestCase {
    func testTrainingFromAQuantizedDirectoryIsRefused() throws {
        let root = try TrainingTestSupport.temporaryDirectory("quantized-train")
        defer { try? FileManager.default.removeItem(at: root) }
        let url = TrainingTestSupport.fixtures.appendingPathComponent("kosmos_tiny_config.json")
        let configuration = try ModelDirectory.decode(KosmosConfiguration.self, from: Data(contentsOf: url), file: url)
        let model = try KosmosModel(configuration: configuration, generator: RandomGenerator(seed: 1))
        let float = root.appendingPathComponent("float"), quantized = root.appendingPathComponent("q8")
        try model.save(directory: float)
        _ = try ModelQuantizer.quantize(float, to: quantized, format: .q8)

        var c = try TrainingTestSupport.tinyConfiguration(directory: root.appendingPathComponent("run"), steps: 10, checkpointEvery: 5)
        c.model.config = nil
        c.model.from = quantized.path
        XCTAssertThrowsError(try Trainer(configuration: c, resume: false)) { error in
            XCTAssertTrue("\(error)".contains("is quantized (q8): quantized weights do not train"), "\(error)")
        }
    }
}
