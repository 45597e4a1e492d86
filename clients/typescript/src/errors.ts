// One error type for every failed call, with the service's field violations.

import { ConnectError } from "@connectrpc/connect";

/** A field the service found wrong, e.g. { field: "n", description: "n must be ..." }. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** A call the service refused or could not answer. `code` is the status name
 *  ("invalid_argument", "not_found", "failed_precondition", "resource_exhausted",
 *  "unavailable", "deadline_exceeded", "unauthenticated", "internal", ...). */
export class LatentServeError extends Error {
  readonly code: string;
  readonly fieldViolations: FieldViolation[];

  constructor(code: string, message: string, fieldViolations: FieldViolation[] = []) {
    super(message);
    this.name = "LatentServeError";
    this.code = code;
    this.fieldViolations = fieldViolations;
  }

  /** The same error from a Connect error (codes by name, BadRequest details decoded). */
  static from(error: unknown): LatentServeError {
    if (error instanceof LatentServeError) return error;
    const connect = ConnectError.from(error);
    const violations: FieldViolation[] = [];
    for (const detail of connect.details) {
      if ("type" in detail && detail.type === "google.rpc.BadRequest") {
        violations.push(...decodeBadRequest(detail.value));
      }
    }
    const code = codeName(connect.code);
    return new LatentServeError(code, connect.rawMessage, violations);
  }
}

const CODES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded",
  "not_found", "already_exists", "permission_denied", "resource_exhausted",
  "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal",
  "unavailable", "data_loss", "unauthenticated"];

function codeName(code: number): string {
  return CODES[code] ?? "unknown";
}

// google.rpc.BadRequest { repeated FieldViolation field_violations = 1; }
// FieldViolation { string field = 1; string description = 2; }
function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const found: FieldViolation[] = [];
  for (const [num, value] of fields(bytes)) {
    if (num !== 1) continue;
    const violation: FieldViolation = { field: "", description: "" };
    for (const [inner, text] of fields(value)) {
      const decoded = new TextDecoder().decode(text);
      if (inner === 1) violation.field = decoded;
      if (inner === 2) violation.description = decoded;
    }
    found.push(violation);
  }
  return found;
}

// Length-delimited fields of a protobuf message (other wire types skipped).
function* fields(bytes: Uint8Array): Generator<[number, Uint8Array]> {
  let at = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    while (at < bytes.length) {
      const byte = bytes[at++];
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    return result;
  };
  while (at < bytes.length) {
    const key = varint();
    const wire = key & 7;
    if (wire === 2) {
      const length = varint();
      yield [Math.floor(key / 8), bytes.subarray(at, at + length)];
      at += length;
    } else if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else return;
  }
}
