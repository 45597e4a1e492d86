// @latentserve/client: latentserve from TypeScript (Node ≥ 18 and browsers).

export { type ClientOptions, type EditOptions, type InterpolateOptions, LatentClient,
  type Latents, type Method, type Output, type VersionOptions } from "./client.js";
export { type FieldViolation, LatentServeError } from "./errors.js";
export type { DirectionInfo, EncodeResult, GenerateResult, ModelInfo, ModelSummary,
  ResolvedModel } from "./results.js";
export { float32Tensor, fromTensor } from "./tensors.js";
export * as proto from "./gen/latentserve/v1/generator_pb.js";
