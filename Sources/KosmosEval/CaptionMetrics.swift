import Foundation

/// Captioning metrics with pycocoevalcap's exact arithmetic. Inputs are already-tokenised
/// captions (space-joined strings, as pycocoevalcap's PTBTokenizer wrapper returns them).
///
/// METEOR and SPICE are not provided: pycocoevalcap computes both by running Java programs
/// (meteor-1.5.jar, and SPICE with Stanford CoreNLP models downloaded at first use), which this
/// package does not reimplement.
public enum CaptionMetrics {
    /// One image's candidate and references, tokenised.
    public struct Item: Sendable {
        public var imageID: Int
        public var candidate: String
        public var references: [String]
        public init(imageID: Int, candidate: String, references: [String]) {
            self.imageID = imageID
            self.candidate = candidate
            self.references = references
        }
    }


    /// n-gram counts for n = 1...maxN, as pycocoevalcap's `precook` (which splits on any whitespace).
    static func ngramCounts(_ words: [Substring], maxN: Int = 4) -> [[ArraySlice<Substring>: Int]] {
        var counts = Array(repeating: [ArraySlice<Substring>: Int](), count: maxN)
        for k in 1...maxN where words.count >= k {
            for i in 0...(words.count - k) {
                counts[k - 1][words[i..<(i + k)], default: 0] += 1
            }
        }
        return counts
    }

    static func whitespaceWords(_ s: String) -> [Substring] {
        s.split(whereSeparator: { $0.isWhitespace })
    }

    // MARK: BLEU

    /// Corpus BLEU-1..4 and per-image BLEU-1..4 exactly as bleu_scorer.py with option "closest":
    /// clipped n-gram matches and guesses are summed over the corpus, the reference length per
    /// image is the one closest to the candidate length (ties → the shorter), and the brevity
    /// penalty exp(1 - r/c) applies when c < r. The `tiny`/`small` constants guard zero counts
    /// as the reference does, so zero matches give ~0 rather than NaN.
    public static func bleu(_ items: [Item]) -> (corpus: [Double], perImage: [[Double]]) {
        let n = 4
        let small = 1e-9, tiny = 1e-15
        var totalGuess = [Double](repeating: 0, count: n)
        var totalCorrect = [Double](repeating: 0, count: n)
        var totalTest = 0.0, totalRef = 0.0
        var perImage: [[Double]] = []
        for item in items {
            let testWords = whitespaceWords(item.candidate)
            let testLen = testWords.count
            var refLens: [Int] = []
            var maxCounts = [ArraySlice<Substring>: Int]()
            for ref in item.references {
                let w = whitespaceWords(ref)
                refLens.append(w.count)
                for table in ngramCounts(w, maxN: n) {
                    for (g, c) in table { maxCounts[g] = max(maxCounts[g] ?? 0, c) }
                }
            }
            // min over (|l - c|, l): the closest length, the smaller on a tie.
            var refLen = refLens.first ?? 0
            for l in refLens {
                let d = abs(l - testLen), bd = abs(refLen - testLen)
                if d < bd || (d == bd && l < refLen) { refLen = l }
            }
            var guess = [Double](repeating: 0, count: n)
            var correct = [Double](repeating: 0, count: n)
            for k in 0..<n { guess[k] = Double(max(0, testLen - k)) }
            for (k, table) in ngramCounts(testWords, maxN: n).enumerated() {
                for (g, c) in table { correct[k] += Double(min(maxCounts[g] ?? 0, c)) }
            }
            totalTest += Double(testLen)
            totalRef += Double(refLen)
            var scores: [Double] = []
            var b = 1.0
            for k in 0..<n {
                totalGuess[k] += guess[k]
                totalCorrect[k] += correct[k]
                b *= (correct[k] + tiny) / (guess[k] + small)
                scores.append(pow(b, 1.0 / Double(k + 1)))
            }
            let ratio = (Double(testLen) + tiny) / (Double(refLen) + small)
            if ratio < 1 { for k in 0..<n { scores[k] *= exp(1 - 1 / ratio) } }
            perImage.append(scores)
        }
        var corpus: [Double] = []
        var b = 1.0
        for k in 0..<n {
            b *= (totalCorrect[k] + tiny) / (totalGuess[k] + small)
            corpus.append(pow(b, 1.0 / Double(k + 1)))
        }
        let ratio = (totalTest + tiny) / (totalRef + small)
        if ratio < 1 { for k in 0..<n { corpus[k] *= exp(1 - 1 / ratio) } }
        return (corpus, perImage)
    }

    // MARK: CIDEr-D

    /// CIDEr-D as cider_scorer.py: document frequency of each n-gram = number of images whose
    /// references contain it; tf-idf weight = tf × (log(#images) − log(max(1, df))); per n the
    /// candidate's weights are clipped by the reference's (min(hyp, ref) × ref), divided by both
    /// norms, and multiplied by the Gaussian length penalty exp(−δ²/(2σ²)), σ = 6. δ uses the
    /// number of *bigrams* (cider_scorer counts `length` where `n == 1`, i.e. 2-grams), which is
    /// reproduced. The mean over n = 1…4 is averaged over references and scaled by 10.
    public static func ciderD(_ items: [Item], sigma: Double = 6.0) -> (corpus: Double, perImage: [Double]) {
        let n = 4
        let refCounts = items.map { $0.references.map { ngramCounts(whitespaceWords($0), maxN: n) } }
        let testCounts = items.map { ngramCounts(whitespaceWords($0.candidate), maxN: n) }
        var df = [ArraySlice<Substring>: Double]()
        for refs in refCounts {
            var seen = Set<ArraySlice<Substring>>()
            for r in refs { for table in r { for g in table.keys { seen.insert(g) } } }
            for g in seen { df[g, default: 0] += 1 }
        }
        let refLen = log(Double(items.count))

        func vec(_ counts: [[ArraySlice<Substring>: Int]]) -> ([[ArraySlice<Substring>: Double]], [Double], Int) {
            var v = Array(repeating: [ArraySlice<Substring>: Double](), count: n)
            var norm = [Double](repeating: 0, count: n)
            var length = 0
            for (k, table) in counts.enumerated() {
                for (g, tf) in table {
                    let w = Double(tf) * (refLen - log(max(1.0, df[g] ?? 0)))
                    v[k][g] = w
                    norm[k] += w * w
                    if k == 1 { length += tf }
                }
            }
            return (v, norm.map { $0.squareRoot() }, length)
        }

        var scores: [Double] = []
        for (i, item) in items.enumerated() {
            let (vh, nh, lh) = vec(testCounts[i])
            var score = [Double](repeating: 0, count: n)
            for r in refCounts[i] {
                let (vr, nr, lr) = vec(r)
                let delta = Double(lh - lr)
                for k in 0..<n {
                    var val = 0.0
                    for (g, w) in vh[k] {
                        let wr = vr[k][g] ?? 0
                        val += min(w, wr) * wr
                    }
                    if nh[k] != 0 && nr[k] != 0 { val /= nh[k] * nr[k] }
                    val *= exp(-(delta * delta) / (2 * sigma * sigma))
                    score[k] += val
                }
            }
            var avg = score.reduce(0, +) / Double(n)
            avg /= Double(item.references.count)
            avg *= 10
            scores.append(avg)
        }
        let mean = scores.isEmpty ? 0 : scores.reduce(0, +) / Double(scores.count)
        return (mean, scores)
    }

    // MARK: ROUGE-L

    /// ROUGE-L as rouge.py: tokens are `split(" ")` (so an empty caption is one empty token, as
    /// in the reference), LCS precision and recall are maximised separately over the references,
    /// F = (1+β²)PR / (R + β²P) with β = 1.2, 0 when either is 0; the corpus score is the mean.
    public static func rougeL(_ items: [Item], beta: Double = 1.2) -> (corpus: Double, perImage: [Double]) {
        var scores: [Double] = []
        for item in items {
            let c = item.candidate.split(separator: " ", omittingEmptySubsequences: false)
            var precMax = 0.0, recMax = 0.0
            for ref in item.references {
                let r = ref.split(separator: " ", omittingEmptySubsequences: false)
                let l = Double(lcs(r, c))
                precMax = max(precMax, l / Double(c.count))
                recMax = max(recMax, l / Double(r.count))
            }
            if precMax != 0 && recMax != 0 {
                scores.append(((1 + beta * beta) * precMax * recMax) / (recMax + beta * beta * precMax))
            } else {
                scores.append(0)
            }
        }
        let mean = scores.isEmpty ? 0 : scores.reduce(0, +) / Double(scores.count)
        return (mean, scores)
    }

    static func lcs(_ a: [Substring], _ b: [Substring]) -> Int {
        if a.isEmpty || b.isEmpty { return 0 }
        var prev = [Int](repeating: 0, count: b.count + 1)
        var cur = prev
        for i in 1...a.count {
            for j in 1...b.count {
                cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : max(prev[j], cur[j - 1])
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
