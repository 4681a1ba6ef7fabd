import ArgumentParser
import Foundation
import KosmosModels

/// A failure of a command's input found while it runs (ArgumentParser's ValidationError would
/// also print a usage line). The text says what is wrong and what to do.
struct CommandError: Error, CustomStringConvertible, LocalizedError {
    let description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { description }
}

/// Beam search takes 1…64 beams (`GenerationOptions.validate`); checked before the model loads.
func validateBeams(_ beams: Int) throws {
    guard beams >= 1 && beams <= 64 else {
        throw ValidationError("--beams \(beams): beam search takes 1 to 64 beams; pass a --beams in that range (1 is greedy)")
    }
}

/// Fits generation into the model's context: a prompt that leaves no position to generate into is
/// an error; a --max-tokens that would run past the context is lowered (with a warning), so the
/// text generated so far is not lost at the limit.
func fitToContext(_ options: GenerationOptions, promptLength: Int, context: Int) throws -> GenerationOptions {
    guard promptLength < context else {
        throw CommandError("the prompt is \(promptLength) tokens (image tokens included) but the model's context is \(context) positions; shorten the prompt or use fewer images (in chat: /reset)")
    }
    var fitted = options
    if promptLength + options.maxNewTokens > context {
        fitted.maxNewTokens = context - promptLength
        FileHandle.standardError.write(Data("warning: --max-tokens \(options.maxNewTokens) lowered to \(fitted.maxNewTokens): the prompt is \(promptLength) tokens and the model's context \(context)\n".utf8))
    }
    return fitted
}

/// `--model DIR` and `--tokenizer FILE`, as every command that loads a model directory takes them.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model directory: config.json (model_type kosmos-1 or kosmos-2), the weights, a tokenizer.")
    var model: String

    @Option(help: "Tokenizer file (default: the one in the model directory).")
    var tokenizer: String?

    var directory: URL { URL(fileURLWithPath: model) }
    var tokenizerFile: URL? { tokenizer.map(URL.init(fileURLWithPath:)) }

    /// The directory loaded through the registry (a warning when the tokenizer cannot be the model's).
    func session() throws -> ModelSession {
        let session = try ModelSession(directory: directory, tokenizer: tokenizerFile)
        if let warning = session.vocabularyWarning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        return session
    }
}
