import Foundation
import KosmosTensor

/// Names of the tensors a quantized Linear weight is stored as (docs/model-format.md): the levels
/// under the weight's own name (`a.b.weight`, I8 or U8), `a.b.weight_scale` (F16) and, for q4,
/// `a.b.weight_min` (F16).
public enum QuantizedTensorNames {
    public static func scale(of weight: String) -> String { weight + "_scale" }
    public static func minimum(of weight: String) -> String { weight + "_min" }
}

extension Module {
    /// Every Linear below (and including) this module with the dotted prefix of its parameters
    /// ("encoder.layers.0.fc1."), in registration order; a module reached twice appears once.
    public func namedLinears(prefix: String = "") -> [(prefix: String, linear: Linear)] {
        var seen = Set<ObjectIdentifier>()
        var result: [(prefix: String, linear: Linear)] = []
        func walk(_ module: Module, _ path: String) {
            guard seen.insert(ObjectIdentifier(module)).inserted else { return }
            if let linear = module as? Linear { result.append((path, linear)) }
            for child in module.children { walk(child.module, path + child.name + ".") }
        }
        walk(self, prefix)
        return result
    }

    /// The Linears a quantizer converts: every Linear that is not tied to another module's weight,
    /// is not an output head (a name ending in `output_projection` or `lm_head`: the head, like
    /// the embeddings, stays 16-bit) and whose rows the group size divides.
    public func quantizableLinears(groupSize: Int) -> [(prefix: String, linear: Linear)] {
        namedLinears().filter { entry in
            !entry.linear.isTied && !Self.isOutputHead(entry.prefix)
                && entry.linear.inFeatures % groupSize == 0 && entry.linear.quantized == nil
        }
    }

    /// Whether a Linear's parameter prefix ("decoder.output_projection.") names an output head.
    public static func isOutputHead(_ prefix: String) -> Bool {
        let name = prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix
        return name.hasSuffix("output_projection") || name.hasSuffix("lm_head")
    }

    /// Quantizes every quantizable Linear in memory (from its current weights; the float weights
    /// are given back as each is done). Returns how many were quantized.
    @discardableResult
    public func quantizeLinears(_ format: QuantizationFormat, groupSize: Int? = nil) throws -> Int {
        let group = groupSize ?? format.defaultGroupSize
        let targets = quantizableLinears(groupSize: group)
        for (prefix, linear) in targets {
            let matrix = try QuantizedMatrix(quantizing: linear.weight, format: format, groupSize: group, tensor: prefix + "weight")
            linear.useQuantized(matrix)
        }
        return targets.count
    }

    /// The quantized Linears below this module.
    public var quantizedLinears: [(prefix: String, linear: Linear)] {
        namedLinears().filter { $0.linear.quantized != nil }
    }

    /// Bytes the model's weights take: float parameters as stored (a quantized Linear's released
    /// weight not counted) plus the quantized levels, scales and minimums.
    public var weightByteCount: Int {
        var released = Set<ObjectIdentifier>()
        var quantized = 0
        for (_, linear) in namedLinears() {
            if let q = linear.quantized {
                released.insert(ObjectIdentifier(linear.weight))
                quantized += q.byteCount
            }
        }
        var seen = Set<ObjectIdentifier>()
        var total = quantized
        for (_, t) in stateDict() where !released.contains(ObjectIdentifier(t)) && seen.insert(ObjectIdentifier(t)).inserted {
            total += t.count * t.dtype.byteCount
        }
        return total
    }
}

/// What loading found of quantized Linear weights in a checkpoint.
struct QuantizedLoadPlan {
    var attach: [(linear: Linear, matrix: QuantizedMatrix)] = []
    /// Weight names satisfied by quantized tensors (not loaded as floats).
    var weights: Set<String> = []
    /// Every tensor name the quantized weights use (levels, scales, minimums).
    var consumed: Set<String> = []
}

/// Holds bytes copied out of a checkpoint that is not mapped.
private final class CopiedBytes {
    let memory: UnsafeMutableRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) {
        memory = .allocate(byteCount: Swift.max(bytes.count, 1), alignment: 64)
        if let base = bytes.baseAddress { memory.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
    }

    deinit { memory.deallocate() }
}

extension Module {
    /// The quantized Linear weights of `source` for this module (problems added to `problems`):
    /// a weight stored as I8 (q8) or U8 (q4) with its `_scale` (and `_min`) tensors, the group
    /// size read from the scales' shape.
    func quantizedLoadPlan(from source: SafeTensorsReadable, prefix: String, problems: inout StateDictError) -> QuantizedLoadPlan {
        var plan = QuantizedLoadPlan()
        for (path, linear) in namedLinears() {
            let key = prefix + path + "weight"
            guard let entry = source.entry(key), entry.dtype == .i8 || entry.dtype == .u8 else { continue }
            let format: QuantizationFormat = entry.dtype == .i8 ? .q8 : .q4
            let rows = linear.outFeatures, columns = linear.inFeatures
            plan.weights.insert(key)
            let scaleKey = QuantizedTensorNames.scale(of: key), minKey = QuantizedTensorNames.minimum(of: key)
            plan.consumed.formUnion([key, scaleKey] + (format.hasMinimums ? [minKey] : []))
            func fail(_ reason: String) { problems.unreadable.append("quantized tensor \(key): \(reason)") }
            if linear.isTied {
                fail("is tied to another module's weight, which is not quantized")
                continue
            }
            let expectedShape = format.payloadShape(rows: rows, columns: columns)
            guard entry.shape == expectedShape else {
                fail("\(format) levels of shape \(entry.shape), the model's [\(rows), \(columns)] needs \(expectedShape)")
                continue
            }
            guard let scaleEntry = source.entry(scaleKey) else {
                fail("its scales \(scaleKey) are missing")
                continue
            }
            guard scaleEntry.dtype == .f16 else {
                fail("scales \(scaleKey) are \(scaleEntry.dtype.rawValue), expected F16")
                continue
            }
            guard scaleEntry.shape.count == 2, scaleEntry.shape[0] == rows, scaleEntry.shape[1] > 0,
                  columns % scaleEntry.shape[1] == 0 else {
                fail("scales \(scaleKey) of shape \(scaleEntry.shape) do not divide [\(rows), \(columns)] into groups")
                continue
            }
            let groupSize = columns / scaleEntry.shape[1]
            var minEntry: SafeTensorsEntry? = nil
            if format.hasMinimums {
                guard let found = source.entry(minKey) else {
                    fail("its minimums \(minKey) are missing")
                    continue
                }
                guard found.dtype == .f16, found.shape == scaleEntry.shape else {
                    fail("minimums \(minKey) are \(found.dtype.rawValue) \(found.shape), expected F16 \(scaleEntry.shape)")
                    continue
                }
                minEntry = found
            } else if source.entry(minKey) != nil {
                fail("q8 has no minimums, but \(minKey) is stored")
                continue
            }
            do {
                var owners: [AnyObject] = []
                func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
                    if let mapped = source.mappedBytes(name) {
                        owners.append(mapped.owner)
                        return UnsafeRawBufferPointer(mapped.bytes)
                    }
                    let copy = try source.withRawBytes(name) { CopiedBytes($0) }
                    owners.append(copy)
                    return UnsafeRawBufferPointer(copy.memory)
                }
                let levels = try bytes(key), scales = try bytes(scaleKey)
                let minimums = try minEntry.map { _ in try bytes(minKey) }
                let matrix = try QuantizedMatrix(format: format, rows: rows, columns: columns, groupSize: groupSize,
                                                 levels: levels, scales: scales, minimums: minimums,
                                                 owners: owners, tensor: key)
                plan.attach.append((linear, matrix))
            } catch let error as QuantizationError {
                fail(error.reason)
            } catch {
                fail("\(error)")
            }
        }
        return plan
    }
}
