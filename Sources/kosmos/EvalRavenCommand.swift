import ArgumentParser
import Foundation
import KosmosEval
import KosmosModels
import KosmosEvalRuns

/// `kosmos eval raven`: the Kosmos-1 paper's Raven-style IQ test (RavenItem in KosmosEval).
struct EvalRaven: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raven",
        abstract: "Raven-style IQ test as the Kosmos-1 paper scores it: each candidate appended to the matrix, the one likeliest to get \"Yes\" to \"Is it correct?\" chosen.",
        discussion: "DATA is JSON lines: {\"context\": [images], \"candidates\": [images], \"answer\": i} (paths relative to the file, answer 0-based). Needs a family that takes several images a prompt (Kosmos-1)."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The items (JSON lines, see above).")
    var data: String

    @Option(help: "The answer whose probability ranks the candidates.")
    var answer = "Yes"

    @Option(help: "Score only the first N items.")
    var limit: Int?

    @Option(help: "Write the accuracy and every candidate's log P(answer) as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let items = Array(try RavenItem.load(URL(fileURLWithPath: data)).prefix(limit ?? Int.max))
            let start = Date()
            let result = try scoreRaven(session: try modelOptions.session(), items: items, answer: answer,
                                        progress: { reportProgress($0, of: $1, since: start) })
            let chance = items.map { 1 / Double($0.candidates.count) }.reduce(0, +) / Double(items.count)
            print(String(format: "items: %d  accuracy: %.4f ± %@  (chance %.4f)", items.count, result.accuracy,
                         result.standardError.map { String(format: "%.4f", $0) } ?? "N/A", chance))
            if let out { try writeJSON(result.json(), to: out) }
        }
    }
}

