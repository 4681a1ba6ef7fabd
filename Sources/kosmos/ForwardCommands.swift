import ArgumentParser
import Foundation
import KosmosModels
import KosmosTensor
import KosmosTokenizers

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Kosmos-1 model on a prompt (with images) and write input_ids, logits and image features to safetensors.",
        discussion: "`<image>` in the prompt marks where each --image goes, in order. Use it to check a converted checkpoint against PyTorch."
    )

    @Option(help: "Kosmos-1 model directory.")
    var model: String

    @Option(help: "Prompt text; <image> marks each image's place.")
    var prompt: String

    @Option(help: "Image file (JPEG or PNG); repeat for several.")
    var image: [String] = []

    @Option(help: "Tokenizer file (default: the one in the model directory).")
    var tokenizer: String?

    @Option(help: "Output .safetensors file.")
    var out: String

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let kosmos = try KosmosModel.load(directory: directory)
        guard let tokenizerURL = tokenizer.map(URL.init(fileURLWithPath:)) ?? ModelDirectory.tokenizerFile(in: directory) else {
            throw ValidationError("no tokenizer in \(model); pass --tokenizer")
        }
        let textTokenizer = try TokenizerLoader.load(tokenizerURL)
        let input = try ImageInput(modelDirectory: directory, imageSize: kosmos.configuration.vision.imageSize)
        let images = try image.map { try input.load(URL(fileURLWithPath: $0)) }
        let tokens = try kosmos.promptTokens(prompt, imageCount: images.count, encode: textTokenizer.encode)
        let batch = try kosmos.makeBatch([KosmosSequence(tokens: tokens, images: images)])
        var writer = SafeTensorsWriter(metadata: ["prompt": prompt, "model": directory.lastPathComponent])
        var keep: [Tensor] = []
        try withoutGrad {
            if let pixels = batch.pixels {
                let features = try kosmos.visionModel(pixels).lastHiddenState
                let embeds = try kosmos.imageEmbeddings(visionFeatures: features)
                keep += [pixels, features, embeds]
                try writer.add(name: "pixel_values", tensor: pixels)
                try writer.add(name: "image_features", tensor: features)
                try writer.add(name: "image_embeds", tensor: embeds)
            }
            let logits = try kosmos.logits(batch)
            keep.append(logits)
            try writer.add(name: "logits", tensor: logits)
        }
        try writer.add(name: "input_ids", shape: [1, tokens.count], int64s: tokens.map(Int64.init))
        try withExtendedLifetime(keep) { try writer.write(to: URL(fileURLWithPath: out)) }
        print("\(tokens.count) tokens, \(images.count) image(s) → \(out)")
    }
}

struct EncodeImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-image",
        abstract: "Preprocess an image and run a vision tower; write pixel_values and last_hidden_state to safetensors.",
        discussion: "MODEL is a Kosmos-1 directory or a transformers CLIP directory (model_type clip or clip_vision_model)."
    )

    @Option(help: "Kosmos-1 or CLIP model directory.")
    var model: String

    @Argument(help: "Image file (JPEG or PNG).")
    var image: String

    @Option(help: "Output .safetensors file.")
    var out: String

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let (_, type, _) = try ModelDirectory.configuration(in: directory)
        let tower = type == "kosmos-1" ? try KosmosModel.load(directory: directory).visionModel : try CLIPVisionTransformer.load(directory: directory)
        let input = try ImageInput(modelDirectory: directory, imageSize: tower.configuration.imageSize)
        let pixels = try input.load(URL(fileURLWithPath: image)).unsqueezed(0)
        let last = try withoutGrad { try tower(pixels).lastHiddenState }
        var writer = SafeTensorsWriter(metadata: ["image": image])
        try writer.add(name: "pixel_values", tensor: pixels)
        try writer.add(name: "last_hidden_state", tensor: last)
        try withExtendedLifetime((pixels, last)) { try writer.write(to: URL(fileURLWithPath: out)) }
        print("pixel_values \(pixels.shape), last_hidden_state \(last.shape) → \(out)")
    }
}
