import Foundation

/// Everything that can go wrong while reading evaluation inputs. Each case names the file (or
/// input) and the place inside it, so a bad prediction file can be fixed without a debugger.
public enum EvalError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read at all.
    case unreadable(path: String, reason: String)
    /// The bytes are not JSON.
    case invalidJSON(path: String, reason: String)
    /// The JSON is valid but not of the documented shape; `location` is a JSON-path-like string.
    case malformed(path: String, location: String, reason: String)
    /// A prediction refers to an id the annotations do not have (the reference tools assert here).
    case unknownID(path: String, location: String, id: Int)
    /// Two predictions for one image: pycocoevalcap's scorers assert `len(hypo) == 1`.
    case duplicatePrediction(path: String, location: String, id: Int)
    /// An image that is being scored has no reference caption (pycocoevalcap asserts `len(ref) > 0`).
    case noReferences(imageID: Int)
    /// A question being scored has no ground-truth answers (vqaEval.py would divide by zero).
    case noAnswers(questionID: Int)
    /// Nothing to score.
    case emptyPredictions(path: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read file: \(reason)"
        case let .invalidJSON(path, reason): return "\(path): not valid JSON: \(reason)"
        case let .malformed(path, location, reason): return "\(path): at \(location): \(reason)"
        case let .unknownID(path, location, id):
            return "\(path): at \(location): id \(id) is not in the annotations"
        case let .duplicatePrediction(path, location, id):
            return "\(path): at \(location): a second prediction for id \(id) (exactly one per id is allowed)"
        case let .noReferences(imageID): return "image \(imageID) has no reference captions in the annotations"
        case let .noAnswers(questionID): return "question \(questionID) has no ground-truth answers in the annotations"
        case let .emptyPredictions(path): return "\(path): the predictions list is empty"
        }
    }
}

/// Small typed accessors over `JSONSerialization` output, so every shape error says where it is.
struct JSONReader {
    let path: String

    func load(_ url: URL) throws -> Any {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvalError.unreadable(path: path, reason: error.localizedDescription)
        }
        return try parse(data)
    }

    func parse(_ data: Data) throws -> Any {
        do { return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw EvalError.invalidJSON(path: path, reason: (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)")
        }
    }

    func object(_ value: Any, at location: String) throws -> [String: Any] {
        guard let o = value as? [String: Any] else {
            throw EvalError.malformed(path: path, location: location, reason: "expected an object")
        }
        return o
    }

    func array(_ value: Any, at location: String) throws -> [Any] {
        guard let a = value as? [Any] else {
            throw EvalError.malformed(path: path, location: location, reason: "expected an array")
        }
        return a
    }

    func field(_ o: [String: Any], _ key: String, at location: String) throws -> Any {
        guard let v = o[key] else {
            throw EvalError.malformed(path: path, location: location, reason: "missing key \"\(key)\"")
        }
        return v
    }

    func int(_ o: [String: Any], _ key: String, at location: String) throws -> Int {
        let v = try field(o, key, at: location)
        // JSONSerialization yields NSNumber; booleans are NSNumber too, so reject them explicitly.
        if let n = v as? NSNumber, String(cString: n.objCType) != "c" {
            let d = n.doubleValue
            if d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        }
        throw EvalError.malformed(path: path, location: "\(location).\(key)", reason: "expected an integer id")
    }

    func string(_ o: [String: Any], _ key: String, at location: String) throws -> String {
        let v = try field(o, key, at: location)
        guard let s = v as? String else {
            throw EvalError.malformed(path: path, location: "\(location).\(key)", reason: "expected a string")
        }
        return s
    }
}
