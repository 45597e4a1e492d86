// Tensors on the wire (dense, row-major, little-endian) to and from typed arrays.

import { create } from "@bufbuild/protobuf";
import { DType, TensorSchema, type Tensor } from "./gen/latentserve/v1/generator_pb.js";

/** A typed array with its shape, outermost dimension first. */
export interface Shaped<T extends Float32Array | Uint8Array> {
  data: T;
  shape: number[];
}

/** A float32 tensor message from values and a shape (the product of shape = values). */
export function float32Tensor(values: Float32Array | number[], shape: number[]): Tensor {
  const array = values instanceof Float32Array ? values : Float32Array.from(values);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== array.length) {
    throw new RangeError(`shape [${shape}] needs ${count} values, got ${array.length}`);
  }
  return create(TensorSchema, {
    dtype: DType.FLOAT32,
    shape: shape.map((d) => BigInt(d)),
    data: new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
  });
}

/** The values of a tensor as a Float32Array or Uint8Array (copied, so aligned). */
export function fromTensor(tensor: Tensor): Shaped<Float32Array> | Shaped<Uint8Array> {
  const shape = tensor.shape.map((d) => Number(d));
  const bytes = tensor.data.slice();
  if (tensor.dtype === DType.UINT8) return { data: bytes, shape };
  return { data: new Float32Array(bytes.buffer, 0, bytes.byteLength / 4), shape };
}

/** The values of a float32 tensor. */
export function float32Of(tensor: Tensor | undefined): Shaped<Float32Array> {
  if (tensor === undefined) return { data: new Float32Array(0), shape: [0] };
  const found = fromTensor(tensor);
  if (!(found.data instanceof Float32Array)) throw new TypeError("expected a float32 tensor");
  return found as Shaped<Float32Array>;
}
