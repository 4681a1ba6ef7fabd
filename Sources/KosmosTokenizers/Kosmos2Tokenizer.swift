import Foundation

/// Kosmos-2's tokenizer from a transformers directory. The released checkpoint ships both
/// `tokenizer.json` (the fast tokenizer, with Kosmos2Processor's added tokens in it) and
/// `sentencepiece.bpe.model` (XLM-R style SentencePiece, from which transformers 4's slow
/// Kosmos2Tokenizer built the same vocabulary: fairseq id offset, `<mask>`, then the grounding and
/// `<patch_index_NNNN>` tokens). Either gives the same ids (tests); tokenizer.json is preferred.
extension TokenizerLoader {
    /// The files tried, in order, in a Kosmos-2 directory.
    public static let kosmos2FileNames = ["tokenizer.json", "sentencepiece.bpe.model"]

    /// The Kosmos-2 tokenizer file of `directory`, if it has one.
    public static func kosmos2TokenizerFile(in directory: URL) -> URL? {
        kosmos2FileNames.map { directory.appendingPathComponent($0) }
            .first { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// Loads a Kosmos-2 tokenizer: a tokenizer.json as it is, a SentencePiece model wrapped in the
    /// Kosmos-2 layout (`SpecialTokensTokenizer.kosmos2`). Either must define `<image>`.
    public static func loadKosmos2(_ url: URL) throws -> Tokenizer {
        var tokenizer = try load(url)
        if let sentencePiece = tokenizer as? SentencePieceTokenizer {
            tokenizer = try SpecialTokensTokenizer.kosmos2(base: sentencePiece)
        }
        guard tokenizer.id(of: "<image>") != nil, tokenizer.specialIds.unk != nil else {
            throw TokenizerError.invalidModel(reason: "\(url.lastPathComponent) has no <image> or <unk> token: not a Kosmos-2 tokenizer (use the model's tokenizer.json or sentencepiece.bpe.model)")
        }
        return tokenizer
    }
}
