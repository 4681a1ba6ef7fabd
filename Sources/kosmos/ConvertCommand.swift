import ArgumentParser
import Foundation
import KosmosModels

/// `kosmos convert`: a PyTorch-checkpoint model directory as safetensors.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a model directory whose weights are pytorch_model.bin (or its sharded index) with the weights as model.safetensors.",
        discussion: """
        The checkpoint is read by a restricted unpickler that runs nothing and refuses any global a state dict does not \
        need (docs/model-format.md). Every command also loads pytorch_model.bin directly, through memory; the \
        safetensors copy loads memory-mapped. Tensors keep their dtype and values bit for bit.
        """
    )

    @Option(help: "Model directory holding pytorch_model.bin or pytorch_model.bin.index.json; or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Option(help: "Output format (safetensors).")
    var to = "safetensors"

    @Option(help: "Directory to create (must not exist or be empty).")
    var out: String

    mutating func validate() throws {
        model = try hub.resolve(model)
        guard to.lowercased() == "safetensors" else { throw ValidationError("--to '\(to)': only safetensors is written") }
    }

    func run() throws {
        let start = Date()
        print("converting \(model) to safetensors...")
        do {
            let summary = try CheckpointConverter.convertToSafetensors(URL(fileURLWithPath: model), to: URL(fileURLWithPath: out)) { done, total in
                if done == total || done % 50 == 0 { FileHandle.standardError.write(Data("\r\(done)/\(total) tensors".utf8)) }
            }
            FileHandle.standardError.write(Data("\n".utf8))
            print(String(format: "wrote %@/model.safetensors: %d tensors, %.1f MB, %.1f s", out, summary.tensors, Double(summary.bytes) / 1e6,
                         Date().timeIntervalSince(start)))
        } catch {
            throw CommandError("\(error)")
        }
    }
}
