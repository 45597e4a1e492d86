// Typed results of the calls: typed arrays with shapes, PNGs as bytes or Blobs.

import type {
  EncodeResponse,
  GenerateResponse,
  ModelInfo as ModelInfoMessage,
  ModelSummary as ModelSummaryMessage,
  ResolvedModel as ResolvedMessage,
} from "./gen/latentserve/v1/generator_pb.js";
import { LatentSpace } from "./gen/latentserve/v1/generator_pb.js";
import { float32Of, fromTensor } from "./tensors.js";

/** The version that served a call. */
export interface ResolvedModel {
  name: string;
  version: number;
  alias: string;
}

/** Latents and images from sample, interpolate, edit, decode (or one stream chunk). */
export interface GenerateResult {
  model: ResolvedModel;
  /** Editing-space latents, row-major [n, D]. */
  latents: Float32Array;
  latentShape: number[];
  /** Images [n, C, H, W]: Float32Array in the model's range (output "float32"), Uint8Array
   *  0..255 (output "uint8"), undefined for "png" and "latents" output. */
  images?: Float32Array | Uint8Array;
  imageShape?: number[];
  /** One PNG file per row (output "png"). */
  png: Uint8Array[];
  /** Index of the first row in the whole result (stream chunks). */
  offset: number;
  /** The model's float output range, when the reply carries images. */
  outputRange?: [number, number];
  /** "z", "w" or "" (unknown): the space of `latents`. */
  latentSpace: string;
  /** The PNGs as Blobs (for <img src=URL.createObjectURL(blob)>, uploads, files). */
  pngBlobs(): Blob[];
}

/** Encode's result. */
export interface EncodeResult {
  model: ResolvedModel;
  latents: Float32Array;
  latentShape: number[];
  latentSpace: string;
}

/** One named direction of a model. */
export interface DirectionInfo {
  name: string;
  method: string;
  unit: string;
  factor: string;
  sigma: number;
}

/** What getModel describes. */
export interface ModelInfo {
  model: ResolvedModel;
  latentDim: number;
  /** Size of one editing-space latent (w_dim for two-stage generators, else latentDim). */
  editingDim: number;
  outputShape: number[];
  outputRange: [number, number];
  hasEncoder: boolean;
  numClasses: number;
  classNames: string[];
  directions: DirectionInfo[];
  maxBatchSize: number;
  aliases: string[];
  description: string;
}

/** One registered model in listModels. */
export interface ModelSummary {
  name: string;
  versions: number[];
  aliases: Record<string, number>;
  loadedVersion: number;
}

const SPACES: Record<number, string> = { [LatentSpace.Z]: "z",
  [LatentSpace.W]: "w" };

export function resolved(model: ResolvedMessage | undefined): ResolvedModel {
  return { name: model?.name ?? "", version: Number(model?.version ?? 0n),
    alias: model?.alias ?? "" };
}

export function generated(reply: GenerateResponse): GenerateResult {
  const latents = float32Of(reply.latents);
  const images = reply.images && reply.images.shape.length ? fromTensor(reply.images) : undefined;
  const png = reply.png;
  return {
    model: resolved(reply.model),
    latents: latents.data,
    latentShape: latents.shape,
    images: images?.data,
    imageShape: images?.shape,
    png,
    offset: reply.offset,
    outputRange: reply.outputRange ? [reply.outputRange.min, reply.outputRange.max] : undefined,
    latentSpace: SPACES[reply.latentSpace] ?? "",
    pngBlobs: () => png.map((bytes) => new Blob([bytes.slice()], { type: "image/png" })),
  };
}

export function encoded(reply: EncodeResponse): EncodeResult {
  const latents = float32Of(reply.latents);
  return { model: resolved(reply.model), latents: latents.data, latentShape: latents.shape,
    latentSpace: SPACES[reply.latentSpace] ?? "" };
}

export function modelInfo(info: ModelInfoMessage): ModelInfo {
  const editingDim = info.editingSpace === LatentSpace.W && info.wDim
    ? info.wDim : info.latentDim;
  return {
    model: resolved(info.model),
    latentDim: info.latentDim,
    editingDim,
    outputShape: info.outputShape.map(Number),
    outputRange: [info.outputMin, info.outputMax],
    hasEncoder: info.hasEncoder,
    numClasses: info.numClasses,
    classNames: info.classNames,
    directions: info.directions.map((d) => ({ name: d.name, method: d.method, unit: d.unit,
      factor: d.factor, sigma: d.sigma })),
    maxBatchSize: info.maxBatchSize,
    aliases: info.aliases,
    description: info.description,
  };
}

export function summary(entry: ModelSummaryMessage): ModelSummary {
  return {
    name: entry.name,
    versions: entry.versions.map(Number),
    aliases: Object.fromEntries(Object.entries(entry.aliases).map(([k, v]) => [k, Number(v)])),
    loadedVersion: Number(entry.loadedVersion),
  };
}
