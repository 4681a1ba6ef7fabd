import Foundation

/// The parts of SentencePiece's `ModelProto` (sentencepiece_model.proto) that affect encoding
/// and decoding. Field numbers follow that .proto file.
public struct SentencePieceModel: Sendable {
    public enum PieceType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }
    public enum ModelType: Int, Sendable {
        case unigram = 1, bpe = 2, word = 3, char = 4
    }
    public struct Piece: Sendable {
        public var piece: String
        public var score: Float
        public var type: PieceType
    }
    public struct TrainerSpec: Sendable {
        public var modelType: ModelType = .unigram
        public var vocabSize = 8000
        // split_by_* only shape what the trainer may emit as a piece; sentencepiece's unigram and
        // BPE encoders do not consult them, so they are read for completeness only.
        public var splitByUnicodeScript = true
        public var splitByNumber = true
        public var splitByWhitespace = true
        public var splitDigits = false
        public var treatWhitespaceAsSuffix = false
        public var allowWhitespaceOnlyPieces = false
        public var byteFallback = false
        public var unkId = 0
        public var bosId = 1
        public var eosId = 2
        public var padId = -1
        public var unkSurface = " \u{2047} "
    }
    public struct NormalizerSpec: Sendable {
        public var name = ""
        public var precompiledCharsmap: [UInt8] = []
        public var addDummyPrefix = true
        public var removeExtraWhitespaces = true
        public var escapeWhitespaces = true
    }

    public var pieces: [Piece] = []
    public var trainer = TrainerSpec()
    public var normalizer = NormalizerSpec()
    public var denormalizer: NormalizerSpec?

    public init(data: Data) throws {
        var r = ProtoReader([UInt8](data))
        if r.atEnd { throw TokenizerError.invalidModel(reason: "the file is empty") }
        while !r.atEnd {
            let (field, wt) = try r.tag()
            switch field {
            case 1:
                try r.expect(2, got: wt, field: "ModelProto.pieces")
                let (slice, off) = try r.lengthDelimited()
                pieces.append(try Self.parsePiece(slice, base: off, index: pieces.count))
            case 2:
                try r.expect(2, got: wt, field: "ModelProto.trainer_spec")
                let (slice, off) = try r.lengthDelimited()
                trainer = try Self.parseTrainer(slice, base: off)
            case 3:
                try r.expect(2, got: wt, field: "ModelProto.normalizer_spec")
                let (slice, off) = try r.lengthDelimited()
                normalizer = try Self.parseNormalizer(slice, base: off)
            case 5:
                try r.expect(2, got: wt, field: "ModelProto.denormalizer_spec")
                let (slice, off) = try r.lengthDelimited()
                denormalizer = try Self.parseNormalizer(slice, base: off)
            default:
                try r.skip(wireType: wt)
            }
        }
        if pieces.isEmpty { throw TokenizerError.invalidModel(reason: "the model has no pieces (is this a SentencePiece .model file?)") }
    }

    private static func parsePiece(_ slice: ArraySlice<UInt8>, base: Int, index: Int) throws -> Piece {
        var r = ProtoReader(Array(slice), base: base)
        var p = Piece(piece: "", score: 0, type: .normal)
        var sawPiece = false
        while !r.atEnd {
            let (field, wt) = try r.tag()
            switch field {
            case 1:
                try r.expect(2, got: wt, field: "pieces[\(index)].piece")
                p.piece = try r.string(field: "pieces[\(index)].piece")
                sawPiece = true
            case 2:
                try r.expect(5, got: wt, field: "pieces[\(index)].score")
                p.score = Float(bitPattern: try r.fixed32())
            case 3:
                try r.expect(0, got: wt, field: "pieces[\(index)].type")
                let raw = try r.varint()
                guard let t = PieceType(rawValue: Int(truncatingIfNeeded: raw)), raw < 16 else {
                    throw TokenizerError.invalidModel(reason: "pieces[\(index)] has unknown type \(raw)")
                }
                p.type = t
            default:
                try r.skip(wireType: wt)
            }
        }
        if !sawPiece || p.piece.isEmpty {
            throw TokenizerError.invalidModel(reason: "pieces[\(index)] has an empty piece string")
        }
        return p
    }

    private static func parseTrainer(_ slice: ArraySlice<UInt8>, base: Int) throws -> TrainerSpec {
        var r = ProtoReader(Array(slice), base: base)
        var t = TrainerSpec()
        while !r.atEnd {
            let (field, wt) = try r.tag()
            func varintField(_ name: String) throws -> UInt64 {
                try r.expect(0, got: wt, field: "trainer_spec.\(name)")
                return try r.varint()
            }
            switch field {
            case 3:
                let raw = try varintField("model_type")
                guard raw < 16, let m = ModelType(rawValue: Int(raw)) else {
                    throw TokenizerError.invalidModel(reason: "trainer_spec.model_type \(raw) is not UNIGRAM/BPE/WORD/CHAR")
                }
                t.modelType = m
            case 4: t.vocabSize = Int(Int32(truncatingIfNeeded: try varintField("vocab_size")))
            case 21: t.splitByUnicodeScript = try varintField("split_by_unicode_script") != 0
            case 22: t.splitByWhitespace = try varintField("split_by_whitespace") != 0
            case 23: t.splitByNumber = try varintField("split_by_number") != 0
            case 24: t.treatWhitespaceAsSuffix = try varintField("treat_whitespace_as_suffix") != 0
            case 25: t.splitDigits = try varintField("split_digits") != 0
            case 26: t.allowWhitespaceOnlyPieces = try varintField("allow_whitespace_only_pieces") != 0
            case 35: t.byteFallback = try varintField("byte_fallback") != 0
            case 40: t.unkId = Int(Int32(truncatingIfNeeded: try varintField("unk_id")))
            case 41: t.bosId = Int(Int32(truncatingIfNeeded: try varintField("bos_id")))
            case 42: t.eosId = Int(Int32(truncatingIfNeeded: try varintField("eos_id")))
            case 43: t.padId = Int(Int32(truncatingIfNeeded: try varintField("pad_id")))
            case 44:
                try r.expect(2, got: wt, field: "trainer_spec.unk_surface")
                t.unkSurface = try r.string(field: "trainer_spec.unk_surface")
            default: try r.skip(wireType: wt)
            }
        }
        return t
    }

    private static func parseNormalizer(_ slice: ArraySlice<UInt8>, base: Int) throws -> NormalizerSpec {
        var r = ProtoReader(Array(slice), base: base)
        var n = NormalizerSpec()
        while !r.atEnd {
            let (field, wt) = try r.tag()
            switch field {
            case 1:
                try r.expect(2, got: wt, field: "normalizer_spec.name")
                n.name = try r.string(field: "normalizer_spec.name")
            case 2:
                try r.expect(2, got: wt, field: "normalizer_spec.precompiled_charsmap")
                n.precompiledCharsmap = Array(try r.lengthDelimited().0)
            case 3:
                try r.expect(0, got: wt, field: "normalizer_spec.add_dummy_prefix")
                n.addDummyPrefix = try r.bool()
            case 4:
                try r.expect(0, got: wt, field: "normalizer_spec.remove_extra_whitespaces")
                n.removeExtraWhitespaces = try r.bool()
            case 5:
                try r.expect(0, got: wt, field: "normalizer_spec.escape_whitespaces")
                n.escapeWhitespaces = try r.bool()
            default: try r.skip(wireType: wt)
            }
        }
        return n
    }
}
