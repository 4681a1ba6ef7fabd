import Foundation
import KosmosModels

// The subset of the OpenAI API the server speaks (chat completions, completions, models), as
// Codable types. Field names are OpenAI's; unknown request fields are ignored, as OpenAI's own
// server and llama.cpp's do.

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.
public struct APIError: Error, Encodable, CustomStringConvertible {
    public let status: Int
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?

    public init(status: Int, message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status) \(type): \(message)" }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, param: param, code: code)
    }

    enum CodingKeys: String, CodingKey { case error }
    enum InnerKeys: String, CodingKey { case message, type, param, code }

    public func encode(to encoder: Encoder) throws {
        var outer = encoder.container(keyedBy: CodingKeys.self)
        var c = outer.nestedContainer(keyedBy: InnerKeys.self, forKey: .error)
        try c.encode(message, forKey: .message)
        try c.encode(type, forKey: .type)
        try c.encode(param, forKey: .param)  // null when absent, as OpenAI writes it
        try c.encode(code, forKey: .code)
    }
}

/// `stop`: one string or a list of strings.
struct StopSequences: Decodable {
    var values: [String]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) {
            values = [one]
        } else {
            values = try c.decode([String].self)
        }
    }
}

/// A chat message's content: a string, or a list of `text`, `image_url` and `input_audio` parts.
enum MessageContent: Decodable {
    case text(String)
    case parts([ContentPart])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .text("")
        } else if let text = try? c.decode(String.self) {
            self = .text(text)
        } else {
            self = .parts(try c.decode([ContentPart].self))
        }
    }
}

struct ContentPart: Decodable {
    struct ImageURL: Decodable {
        var url: String
        var detail: String?
    }
    /// OpenAI's audio input part: base64 bytes and their format ("wav", "mp3").
    struct InputAudio: Decodable {
        var data: String
        var format: String?
    }
    var type: String
    var text: String?
    var imageURL: ImageURL?
    var videoURL: ImageURL?
    var inputAudio: InputAudio?

    enum CodingKeys: String, CodingKey { case type, text, imageURL = "image_url", videoURL = "video_url", inputAudio = "input_audio" }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        text = try c.decodeIfPresent(String.self, forKey: .text)
        // OpenAI's form is {"url": ...}; a bare string is accepted too, as several clients send it.
        if let object = try? c.decodeIfPresent(ImageURL.self, forKey: .imageURL) {
            imageURL = object
        } else if let url = try c.decodeIfPresent(String.self, forKey: .imageURL) {
            imageURL = ImageURL(url: url, detail: nil)
        }
        inputAudio = try c.decodeIfPresent(InputAudio.self, forKey: .inputAudio)
        // vLLM's video part: {"video_url": {"url": ...}} (a bare string accepted too).
        if let object = try? c.decodeIfPresent(ImageURL.self, forKey: .videoURL) {
            videoURL = object
        } else if let url = try? c.decodeIfPresent(String.self, forKey: .videoURL) {
            videoURL = ImageURL(url: url, detail: nil)
        }
    }
}

struct ChatMessage: Decodable {
    var role: String
    var content: MessageContent?
}

struct StreamOptions: Decodable {
    var includeUsage: Bool?
    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
}

/// The sampling fields chat completions and completions share.
struct SamplingFields: Decodable {
    var model: String?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    var seed: Int64?
    var stop: StopSequences?
    var n: Int?
    var stream: Bool?
    var streamOptions: StreamOptions?
    /// Kosmos extension: Kosmos-2 grounding (prompt prefixed with `<grounding>`, entities returned).
    var grounding: Bool?
    /// Extension (as vLLM's): keep generating past EOS, up to max_tokens.
    var ignoreEOS: Bool?

    enum CodingKeys: String, CodingKey {
        case model, temperature, seed, stop, n, stream, grounding
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p"
        case streamOptions = "stream_options", ignoreEOS = "ignore_eos"
    }
}

struct ChatCompletionRequest: Decodable {
    var messages: [ChatMessage]
}

struct CompletionRequest: Decodable {
    /// A string, or a list with one string.
    var prompt: String

    enum CodingKeys: String, CodingKey { case prompt }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let one = try? c.decode(String.self, forKey: .prompt) {
            prompt = one
        } else {
            let list = try c.decode([String].self, forKey: .prompt)
            guard list.count == 1 else {
                throw DecodingError.dataCorruptedError(forKey: .prompt, in: c, debugDescription: "only one prompt per request is supported")
            }
            prompt = list[0]
        }
    }
}

struct Usage: Encodable {
    let promptTokens: Int
    let completionTokens: Int
    var totalTokens: Int { promptTokens + completionTokens }
    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
    }
}

struct AssistantMessage: Encodable {
    var role = "assistant"
    var content: String?
    /// Kosmos-2 grounding (only when the request asked for it).
    var entities: [GroundedEntity]?
}

struct ChatChoice: Encodable {
    let index: Int
    let message: AssistantMessage
    let finishReason: String
    let logprobs: String? = nil
    enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason", logprobs }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(message, forKey: .message)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encode(logprobs, forKey: .logprobs)
    }
}

struct ChatCompletion: Encodable {
    let id: String
    let object = "chat.completion"
    let created: Int
    let model: String
    let choices: [ChatChoice]
    let usage: Usage
    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
}

struct ChatDelta: Encodable {
    var role: String?
    var content: String?
    var entities: [GroundedEntity]?
}

struct ChunkChoice<Payload: Encodable>: Encodable {
    let index: Int
    let payload: Payload
    let payloadKey: String
    let finishReason: String?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(index, forKey: Key("index"))
        try c.encode(payload, forKey: Key(payloadKey))
        try c.encode(finishReason, forKey: Key("finish_reason"))  // null until the last chunk
        try c.encodeNil(forKey: Key("logprobs"))
    }
}

struct StreamChunk<Payload: Encodable>: Encodable {
    let id: String
    let object: String
    let created: Int
    let model: String
    let choices: [ChunkChoice<Payload>]
    let usage: Usage?
    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        try c.encodeIfPresent(usage, forKey: .usage)
    }
}

struct CompletionChoice: Encodable {
    let index: Int
    let text: String
    let finishReason: String
    let logprobs: String? = nil
    enum CodingKeys: String, CodingKey { case index, text, finishReason = "finish_reason", logprobs }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encode(logprobs, forKey: .logprobs)
    }
}

struct TextCompletion: Encodable {
    let id: String
    let object = "text_completion"
    let created: Int
    let model: String
    let choices: [CompletionChoice]
    let usage: Usage
    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
}

struct ModelList: Encodable {
    struct Entry: Encodable {
        let id: String
        let object = "model"
        let created: Int
        let ownedBy = "kosmos"
        /// Kosmos extension: what the chat page needs to know of the model.
        let kosmos: Capabilities
        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by", kosmos }
    }
    struct Capabilities: Encodable {
        let grounding: Bool
        let contextLength: Int
        enum CodingKeys: String, CodingKey { case grounding, contextLength = "context_length" }
    }
    let object = "list"
    let data: [Entry]
    enum CodingKeys: String, CodingKey { case object, data }
}

/// Describes a decoding failure as a client can act on it: the JSON path and what was wrong.
func describe(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return p.isEmpty ? "the body" : String(p.drop(while: { $0 == "." }))
    }
    switch error {
    case .typeMismatch(let type, let context):
        return "\(path(context)): expected \(type)"
    case .valueNotFound(let type, let context):
        return "\(path(context)): expected \(type), found null"
    case .keyNotFound(let key, let context):
        let p = path(context)
        return (p == "the body" ? "" : p + ": ") + "missing field '\(key.stringValue)'"
    case .dataCorrupted(let context):
        return "\(path(context)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
