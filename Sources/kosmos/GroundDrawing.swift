import ArgumentParser
import Foundation
import KosmosVision

/// `kosmos ground --draw`: checked before the model runs, so a bad path fails fast.
func validateDrawDestination(_ path: String) throws {
    do {
        try ImageWriter.checkDestination(URL(fileURLWithPath: path))
    } catch let error as ImageWriteError {
        throw ValidationError("--draw \(error.description)")
    }
}

/// Writes `image` with each entity's pixel boxes ([x1, y1, x2, y2]) and phrase drawn, one colour per entity.
func drawGrounding(_ entities: [(phrase: String, boxes: [[Int]])], on image: RGBImage, to path: String) throws {
    let labeled = entities.map { entity in
        LabeledBoxes(label: entity.phrase.trimmingCharacters(in: .whitespaces),
                     boxes: entity.boxes.filter { $0.count == 4 }.map {
                        // Corners as generated may come in either order.
                        PixelBox(x1: min($0[0], $0[2]), y1: min($0[1], $0[3]), x2: max($0[0], $0[2]), y2: max($0[1], $0[3]))
                     })
    }
    try ImageWriter.write(BoxDrawing.draw(labeled, on: image), to: URL(fileURLWithPath: path))
    FileHandle.standardError.write(Data("\(labeled.count) entit\(labeled.count == 1 ? "y" : "ies") drawn → \(path)\n".utf8))
}
