// LatentClient: the latentserve API from Node or a browser, mirroring the Python SDK.

import { create } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import {
  DecodeRequestSchema,
  EditRequestSchema,
  EncodeRequestSchema,
  GeneratorService,
  GetModelRequestSchema,
  InterpolateRequestSchema,
  InterpolationMethod,
  type LatentSource,
  LatentSourceSchema,
  ListModelsRequestSchema,
  type ModelRef,
  ModelRefSchema,
  OutputFormat,
  PngListSchema,
  SampleRequestSchema,
  SeedListSchema,
} from "./gen/latentserve/v1/generator_pb.js";
import { LatentServeError } from "./errors.js";
import {
  type EncodeResult,
  encoded,
  type GenerateResult,
  generated,
  type ModelInfo,
  modelInfo,
  type ModelSummary,
  summary,
} from "./results.js";
import { float32Tensor } from "./tensors.js";

/** How the images of a result come back. */
export type Output = "float32" | "uint8" | "png" | "latents";
/** How to walk between keyframes ("auto": SLERP in Z, LERP in W). */
export type Method = "auto" | "lerp" | "slerp" | "vp_lerp";
/** Latents given directly: values row-major and the size of one latent. */
export interface Latents {
  values: Float32Array | number[];
  dim: number;
}

/** Options of every client. */
export interface ClientOptions {
  /** Bearer token, when the service requires one. */
  token?: string;
  /** Default deadline of every call in milliseconds (the service's default when unset). */
  timeoutMs?: number;
  /** "binary" (protobuf, the default: tensors travel as raw bytes) or "json". */
  format?: "binary" | "json";
  /** A fetch implementation (default: the global fetch of Node ≥ 18 and browsers). */
  fetch?: typeof globalThis.fetch;
}

/** Which version of a model to use (default: the alias "production"). */
export interface VersionOptions {
  version?: number;
  alias?: string;
  timeoutMs?: number;
}

const OUTPUTS: Record<Output, OutputFormat> = {
  float32: OutputFormat.FLOAT32,
  uint8: OutputFormat.UINT8,
  png: OutputFormat.PNG,
  latents: OutputFormat.LATENTS_ONLY,
};
const METHODS: Record<Method, InterpolationMethod> = {
  auto: InterpolationMethod.UNSPECIFIED,
  lerp: InterpolationMethod.LERP,
  slerp: InterpolationMethod.SLERP,
  vp_lerp: InterpolationMethod.VP_LERP,
};

function ref(model: string, options: VersionOptions = {}): ModelRef {
  const selector = options.version !== undefined
    ? { case: "version" as const, value: BigInt(options.version) }
    : options.alias !== undefined ? { case: "alias" as const, value: options.alias }
    : { case: undefined };
  return create(ModelRefSchema, { name: model, selector });
}

function source(seeds: Array<number | bigint> | undefined, latents: Latents | undefined,
                truncationPsi: number | undefined): LatentSource {
  if ((seeds === undefined) === (latents === undefined)) {
    throw new LatentServeError("invalid_argument", "give seeds or latents (exactly one)");
  }
  if (seeds !== undefined) {
    return create(LatentSourceSchema, { source: { case: "seeds", value: create(SeedListSchema,
      { seeds: seeds.map((s) => BigInt(s)), truncationPsi }) } });
  }
  const given = latents as Latents;
  const rows = given.values.length / given.dim;
  return create(LatentSourceSchema, { source: { case: "latents",
    value: float32Tensor(given.values, [rows, given.dim]) } });
}

/**
 * A client of latentserve's HTTP port (the Connect protocol: the same API as gRPC).
 *
 * ```ts
 * const client = new LatentClient("http://127.0.0.1:8000");
 * const out = await client.sample("sprites-vae", { n: 4, seed: 0, output: "png" });
 * out.pngBlobs();          // Blob[] for <img> elements
 * const edit = await client.edit("sprites-vae", { seeds: [1], direction: "scale",
 *                                                 strengths: [-2, 0, 2] });
 * edit.images;             // Float32Array [3, C, H, W]
 * ```
 */
export class LatentClient {
  readonly baseUrl: string;
  private readonly api: Client<typeof GeneratorService>;
  private readonly timeoutMs?: number;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs;
    const interceptors: Interceptor[] = [];
    if (options.token) {
      const token = options.token;
      interceptors.push((next) => async (request) => {
        request.header.set("authorization", `Bearer ${token}`);
        return next(request);
      });
    }
    const transport: Transport = createConnectTransport({
      baseUrl: this.baseUrl,
      useBinaryFormat: (options.format ?? "binary") === "binary",
      jsonOptions: { ignoreUnknownFields: true },
      binaryOptions: { readUnknownFields: false },
      interceptors,
      fetch: options.fetch,
    });
    this.api = createClient(GeneratorService, transport);
  }

  private options(timeoutMs?: number): { timeoutMs?: number } {
    const ms = timeoutMs ?? this.timeoutMs;
    return ms === undefined ? {} : { timeoutMs: ms };
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw LatentServeError.from(error);
    }
  }

  /** The generators the service can serve, with versions and aliases. */
  async listModels(options: { timeoutMs?: number } = {}): Promise<ModelSummary[]> {
    const reply = await this.call(() => this.api.listModels(create(ListModelsRequestSchema),
      this.options(options.timeoutMs)));
    return reply.models.map(summary);
  }

  /** Describe one generator version: dims, output range, classes, directions. */
  async getModel(model: string, options: VersionOptions = {}): Promise<ModelInfo> {
    const reply = await this.call(() => this.api.getModel(
      create(GetModelRequestSchema, { model: ref(model, options) }),
      this.options(options.timeoutMs)));
    return modelInfo(reply);
  }

  /** Draw n seeded latents (item i of seed s is the same everywhere) and decode them. */
  async sample(model: string, options: VersionOptions & { n?: number; seed?: number | bigint;
    truncationPsi?: number; classLabels?: number[]; output?: Output } = {},
  ): Promise<GenerateResult> {
    const request = create(SampleRequestSchema, {
      model: ref(model, options), n: options.n ?? 1, seed: BigInt(options.seed ?? 0),
      truncationPsi: options.truncationPsi, classLabels: options.classLabels ?? [],
      output: OUTPUTS[options.output ?? "float32"],
    });
    return generated(await this.call(() => this.api.sample(request,
      this.options(options.timeoutMs))));
  }

  private interpolateRequest(model: string, options: InterpolateOptions) {
    return create(InterpolateRequestSchema, {
      model: ref(model, options),
      keyframes: source(options.seeds, options.latents, options.truncationPsi),
      steps: options.steps ?? 8, method: METHODS[options.method ?? "auto"],
      classLabels: options.classLabels ?? [], output: OUTPUTS[options.output ?? "float32"],
    });
  }

  /** Decode a path through ≥ 2 keyframes (seeds or latents), `steps` frames per segment. */
  async interpolate(model: string, options: InterpolateOptions): Promise<GenerateResult> {
    const request = this.interpolateRequest(model, options);
    return generated(await this.call(() => this.api.interpolate(request,
      this.options(options.timeoutMs))));
  }

  /** The same path, streamed in order in chunks (`offset` says where each starts). */
  async *streamInterpolate(model: string, options: InterpolateOptions,
  ): AsyncGenerator<GenerateResult> {
    const request = this.interpolateRequest(model, options);
    try {
      for await (const chunk of this.api.streamInterpolate(request,
        this.options(options.timeoutMs))) {
        yield generated(chunk);
      }
    } catch (error) {
      throw LatentServeError.from(error);
    }
  }

  /** Move base latents (seeds or latents) along a named direction (or a vector) for each
   *  strength; rows are base-major: row = base * strengths.length + strength. */
  async edit(model: string, options: EditOptions): Promise<GenerateResult> {
    const direction = typeof options.direction === "string"
      ? { case: "directionName" as const, value: options.direction }
      : { case: "directionVector" as const,
        value: float32Tensor(options.direction, [options.direction.length]) };
    const request = create(EditRequestSchema, {
      model: ref(model, options), base: source(options.seeds, options.latents,
        options.truncationPsi),
      direction, strengths: options.strengths, conditionalOn: options.conditionalOn ?? [],
      classLabels: options.classLabels ?? [], output: OUTPUTS[options.output ?? "float32"],
    });
    return generated(await this.call(() => this.api.edit(request,
      this.options(options.timeoutMs))));
  }

  /** Map images to latents: PNG files (Uint8Array or Blob) of the model's size, or float32
   *  values [n, C, H, W] in the model's output range. */
  async encode(model: string, images: Array<Uint8Array | Blob> | { values: Float32Array;
    shape: number[] }, options: VersionOptions & { classLabels?: number[] } = {},
  ): Promise<EncodeResult> {
    let input;
    if (Array.isArray(images)) {
      const files = await Promise.all(images.map(async (image) => image instanceof Blob
        ? new Uint8Array(await image.arrayBuffer()) : image));
      input = { case: "png" as const, value: create(PngListSchema, { images: files }) };
    } else {
      input = { case: "images" as const, value: float32Tensor(images.values, images.shape) };
    }
    const request = create(EncodeRequestSchema, { model: ref(model, options), input,
      classLabels: options.classLabels ?? [] });
    return encoded(await this.call(() => this.api.encode(request,
      this.options(options.timeoutMs))));
  }

  /** Decode your own latents (values row-major, `dim` per latent). */
  async decode(model: string, latents: Latents, options: VersionOptions & {
    classLabels?: number[]; output?: Output } = {}): Promise<GenerateResult> {
    const rows = latents.values.length / latents.dim;
    const request = create(DecodeRequestSchema, {
      model: ref(model, options), latents: float32Tensor(latents.values, [rows, latents.dim]),
      classLabels: options.classLabels ?? [], output: OUTPUTS[options.output ?? "float32"],
    });
    return generated(await this.call(() => this.api.decode(request,
      this.options(options.timeoutMs))));
  }
}

/** Options of interpolate and streamInterpolate. */
export interface InterpolateOptions extends VersionOptions {
  seeds?: Array<number | bigint>;
  latents?: Latents;
  truncationPsi?: number;
  steps?: number;
  method?: Method;
  classLabels?: number[];
  output?: Output;
}

/** Options of edit. */
export interface EditOptions extends VersionOptions {
  seeds?: Array<number | bigint>;
  latents?: Latents;
  truncationPsi?: number;
  direction: string | Float32Array;
  strengths: number[];
  conditionalOn?: string[];
  classLabels?: number[];
  output?: Output;
}
