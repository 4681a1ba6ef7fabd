// The file formats (safetensors, sharded checkpoints, AtomicFile, half-precision conversion) live
// in KosmosFormats, below the tensor engine, so image and data code can write files without it.
// Re-exported here: `import KosmosTensor` keeps giving them, and SafeTensorsTensors.swift adds the
// Tensor forms.
@_exported import KosmosFormats
