import Foundation
import Dispatch

/// How a SentencePiece `.model` is presented to the model code.
public enum TokenizerLayout: String, CaseIterable, Sendable {
    /// The file's own ids.
    case plain
    /// SentencePiece ids + `<image>`, `</image>` appended (Kosmos-X on T5's vocabulary).
    case kosmosX = "kosmos-x"
    /// XLM-R fairseq ids + Kosmos2Processor's grounding tokens (Kosmos-2).
    case kosmos2 = "kosmos-2"
}

extension TokenizerLoader {
    /// Loads `url`; for a SentencePiece model, wraps it in `layout`. tokenizer.json files carry
    /// their own added tokens, so only `.plain` applies to them.
    public static func load(_ url: URL, layout: TokenizerLayout) throws -> Tokenizer {
        let tok = try load(url)
        switch layout {
        case .plain: return tok
        case .kosmosX, .kosmos2:
            guard let sp = tok as? SentencePieceTokenizer else {
                throw TokenizerError.invalidArgument("layout \(layout.rawValue) applies to SentencePiece .model files; a tokenizer.json already defines its added tokens")
            }
            return layout == .kosmos2 ? try SpecialTokensTokenizer.kosmos2(base: sp) : try SpecialTokensTokenizer.kosmosX(base: sp)
        }
    }

    /// Parses a JSON array of integer ids (the `kosmos detokenize` argument).
    public static func parseIds(json: String) throws -> [Int] {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]) } catch {
            throw TokenizerError.invalidArgument("ids must be a JSON array of integers, e.g. [1, 2, 3]: \(error.localizedDescription)")
        }
        guard let arr = any as? [Any] else { throw TokenizerError.invalidArgument("ids must be a JSON array of integers, e.g. [1, 2, 3]") }
        return try arr.enumerated().map { try J.int($0.element, "ids[\($0.offset)]") }
    }
}

private final class UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ v: T) { value = v }
}

extension Tokenizer {
    /// Encodes many texts on `threads` workers. The tokenizers are immutable after loading, so
    /// concurrent `encode` calls are safe.
    public func encodeBatch(_ texts: [String], threads: Int = 1) -> [[Int]] {
        encodeConcurrently(self, texts, threads: threads)
    }
}

private func encodeConcurrently(_ tok: any Tokenizer, _ texts: [String], threads: Int) -> [[Int]] {
        if threads <= 1 || texts.count < 2 { return texts.map { tok.encode($0) } }
        let out = UncheckedBox([[Int]](repeating: [], count: texts.count))
        let me = UncheckedBox<any Tokenizer>(tok)
        let chunks = min(threads * 4, texts.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = texts.count * c / chunks, hi = texts.count * (c + 1) / chunks
            var local: [[Int]] = []
            local.reserveCapacity(hi - lo)
            for i in lo..<hi { local.append(me.value.encode(texts[i])) }
            lock.lock()
            out.value.replaceSubrange(lo..<hi, with: local)
            lock.unlock()
        }
        return out.value
}
