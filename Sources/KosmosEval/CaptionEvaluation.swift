import Foundation

/// COCO caption evaluation: reads the annotation and results files, tokenises both sides, and
/// scores BLEU-1..4, ROUGE-L and CIDEr-D like pycocoevalcap's `COCOEvalCap`.
///
/// Which images are scored follows pycocoevalcap's documented use (`params['image_id'] =
/// cocoRes.getImgIds()`): exactly the images that have a prediction, in the annotation file's
/// `images` order. Its behaviour on bad input is kept as errors here:
/// - a prediction whose `image_id` is not in `images` → `EvalError.unknownID` (pycocotools'
///   `loadRes` asserts "Results do not correspond to current coco set");
/// - two predictions for one image → `EvalError.duplicatePrediction` (the scorers assert one hypothesis);
/// - a scored image without reference captions → `EvalError.noReferences`.
/// Empty captions are scored (they tokenise to nothing: BLEU ≈ 0, CIDEr 0, ROUGE-L 0), and very
/// long ones are scored in full, as in the reference. No METEOR/SPICE: they need Java.
public struct CaptionEvaluation: Sendable {
    public struct ImageScore: Sendable, Equatable {
        public var imageID: Int
        public var bleu: [Double]
        public var rougeL: Double
        public var cider: Double
    }

    /// Corpus scores keyed as pycocoevalcap names them (`Bleu_1`…`Bleu_4`, `ROUGE_L`, `CIDEr`).
    public var scores: [String: Double]
    public var perImage: [ImageScore]

    public static let metricNames = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"]

    /// Reference captions per image id, and the image order of the annotation file.
    public struct Annotations: Sendable {
        public var imageOrder: [Int]
        public var captions: [Int: [String]]
        /// `file_name` of each image id, where the file gives one (to caption the images).
        public var fileNames: [Int: String] = [:]
        public init(imageOrder: [Int], captions: [Int: [String]], fileNames: [Int: String] = [:]) {
            self.imageOrder = imageOrder
            self.captions = captions
            self.fileNames = fileNames
        }
    }

    /// A COCO captions file ({"images", "annotations"}), or Karpathy's split file
    /// (`dataset_coco.json`, `dataset_flickr30k.json`: {"images": [{imgid, filename, split,
    /// sentences: [{raw}]}]}) of which the images of `split` are read (default "test").
    public static func loadAnnotations(_ url: URL, split: String? = nil) throws -> Annotations {
        let r = JSONReader(path: url.path)
        let json = try r.load(url)
        if let root = json as? [String: Any], root["annotations"] == nil,
           let first = (root["images"] as? [Any])?.first as? [String: Any], first["sentences"] != nil {
            return try parseKarpathy(root, reader: r, split: split ?? "test")
        }
        if let split {
            throw EvalError.malformed(path: url.path, location: "$", reason: "a COCO captions file has no splits (--split \(split) is for Karpathy's split files)")
        }
        return try parseAnnotations(json, reader: r)
    }

    /// Karpathy's format as the usual conversion to COCO reads it: image id = `imgid`, the
    /// references = the sentences' `raw` text, the file = `filepath/filename` (`filename` where
    /// there is no `filepath`, as in Flickr30k).
    static func parseKarpathy(_ root: [String: Any], reader r: JSONReader, split: String) throws -> Annotations {
        let images = try r.array(r.field(root, "images", at: "$"), at: "$.images")
        var order: [Int] = [], caps: [Int: [String]] = [:], files: [Int: String] = [:], splits = Set<String>()
        for (i, img) in images.enumerated() {
            let loc = "$.images[\(i)]"
            let object = try r.object(img, at: loc)
            let s = try r.string(object, "split", at: loc)
            splits.insert(s)
            guard s == split || (split == "train" && s == "restval") else { continue }
            let id = try r.int(object, "imgid", at: loc)
            guard caps[id] == nil else { throw EvalError.malformed(path: r.path, location: loc + ".imgid", reason: "image \(id) appears twice") }
            let name = try r.string(object, "filename", at: loc)
            files[id] = (object["filepath"] as? String).map { $0 + "/" + name } ?? name
            caps[id] = try r.array(r.field(object, "sentences", at: loc), at: loc + ".sentences").enumerated().map { j, sentence in
                try r.string(try r.object(sentence, at: "\(loc).sentences[\(j)]"), "raw", at: "\(loc).sentences[\(j)]")
            }
            order.append(id)
        }
        guard !order.isEmpty else {
            throw EvalError.malformed(path: r.path, location: "$.images", reason: "no images in split \"\(split)\" (the file has \(splits.sorted().joined(separator: ", ")))")
        }
        return Annotations(imageOrder: order, captions: caps, fileNames: files)
    }

    static func parseAnnotations(_ json: Any, reader r: JSONReader) throws -> Annotations {
        let root = try r.object(json, at: "$")
        let images = try r.array(r.field(root, "images", at: "$"), at: "$.images")
        var order: [Int] = []
        var known = Set<Int>()
        var files: [Int: String] = [:]
        for (i, img) in images.enumerated() {
            let loc = "$.images[\(i)]"
            let object = try r.object(img, at: loc)
            let id = try r.int(object, "id", at: loc)
            if known.insert(id).inserted { order.append(id) }
            if let name = object["file_name"] as? String { files[id] = name }
        }
        let anns = try r.array(r.field(root, "annotations", at: "$"), at: "$.annotations")
        var caps: [Int: [String]] = [:]
        for (i, a) in anns.enumerated() {
            let loc = "$.annotations[\(i)]"
            let o = try r.object(a, at: loc)
            let id = try r.int(o, "image_id", at: loc)
            caps[id, default: []].append(try r.string(o, "caption", at: loc))
        }
        return Annotations(imageOrder: order, captions: caps, fileNames: files)
    }

    /// Predictions in the COCO results format, `[{"image_id": Int, "caption": String}]`.
    public static func loadPredictions(_ url: URL, annotations: Annotations) throws -> [Int: String] {
        let r = JSONReader(path: url.path)
        return try parsePredictions(r.load(url), reader: r, annotations: annotations)
    }

    static func parsePredictions(_ json: Any, reader r: JSONReader, annotations: Annotations) throws -> [Int: String] {
        let list = try r.array(json, at: "$")
        if list.isEmpty { throw EvalError.emptyPredictions(path: r.path) }
        let known = Set(annotations.imageOrder)
        var out: [Int: String] = [:]
        for (i, p) in list.enumerated() {
            let loc = "$[\(i)]"
            let o = try r.object(p, at: loc)
            let id = try r.int(o, "image_id", at: loc)
            let cap = try r.string(o, "caption", at: loc)
            guard known.contains(id) else { throw EvalError.unknownID(path: r.path, location: loc, id: id) }
            guard out[id] == nil else { throw EvalError.duplicatePrediction(path: r.path, location: loc, id: id) }
            out[id] = cap
        }
        return out
    }

    /// Scores raw captions: tokenises them with `CaptionTokenizer` first, as COCOEvalCap does.
    public static func evaluate(annotations: Annotations, predictions: [Int: String]) throws -> CaptionEvaluation {
        var items: [CaptionMetrics.Item] = []
        for id in annotations.imageOrder {
            guard let pred = predictions[id] else { continue }
            // pycocoevalcap replaces newlines by spaces before handing each caption to the jar.
            let refs = annotations.captions[id] ?? []
            guard !refs.isEmpty else { throw EvalError.noReferences(imageID: id) }
            items.append(.init(imageID: id,
                               candidate: CaptionTokenizer.tokenizedCaption(pred),
                               references: refs.map(CaptionTokenizer.tokenizedCaption)))
        }
        return try evaluate(tokenized: items)
    }

    /// Scores already-tokenised captions (space-joined tokens).
    public static func evaluate(tokenized items: [CaptionMetrics.Item]) throws -> CaptionEvaluation {
        for item in items where item.references.isEmpty { throw EvalError.noReferences(imageID: item.imageID) }
        let b = CaptionMetrics.bleu(items)
        let r = CaptionMetrics.rougeL(items)
        let c = CaptionMetrics.ciderD(items)
        var per: [ImageScore] = []
        for (i, item) in items.enumerated() {
            per.append(ImageScore(imageID: item.imageID, bleu: b.perImage[i], rougeL: r.perImage[i], cider: c.perImage[i]))
        }
        var s: [String: Double] = [:]
        for k in 0..<4 { s["Bleu_\(k + 1)"] = b.corpus[k] }
        s["ROUGE_L"] = r.corpus
        s["CIDEr"] = c.corpus
        return CaptionEvaluation(scores: s, perImage: per)
    }

    /// JSON for `--out`: corpus scores, image count, per-image scores.
    public func jsonData() throws -> Data {
        var perImageJSON: [[String: Any]] = []
        for p in perImage {
            var o: [String: Any] = ["image_id": p.imageID, "ROUGE_L": p.rougeL, "CIDEr": p.cider]
            for k in 0..<p.bleu.count { o["Bleu_\(k + 1)"] = p.bleu[k] }
            perImageJSON.append(o)
        }
        let root: [String: Any] = ["metrics": scores, "num_images": perImage.count, "per_image": perImageJSON,
                                   "not_computed": ["METEOR", "SPICE"]]
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }
}
