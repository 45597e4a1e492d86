// Node tests of the TypeScript client against a real server.
// LATENTSERVE_HTTP_URL: the server's HTTP port; LATENTSERVE_EXPECTED: a JSON file of what the
// Python SDK got from the same server for the same calls (float32 arrays as base64 bytes).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { LatentClient, LatentServeError } from "../dist/index.js";

const url = process.env.LATENTSERVE_HTTP_URL;
const expected = JSON.parse(readFileSync(process.env.LATENTSERVE_EXPECTED, "utf8"));
const bytes = (array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
const same = (array, base64) => assert.ok(bytes(array).equals(Buffer.from(base64, "base64")),
  "arrays differ from the Python SDK's");

for (const format of ["binary", "json"]) {
  describe(`LatentClient (${format})`, () => {
    const client = new LatentClient(url, { format, timeoutMs: 30000 });

    test("listModels and getModel describe the served generators", async () => {
      const names = (await client.listModels()).map((m) => m.name);
      assert.ok(names.includes("tiny"));
      const info = await client.getModel("tiny");
      assert.equal(info.model.name, "tiny");
      assert.equal(info.latentDim, expected.latentDim);
      assert.ok(info.directions.some((d) => d.name === expected.direction));
    });

    test("sample returns the SDK's latents and float32 images, bit for bit", async () => {
      const out = await client.sample("tiny", { n: 3, seed: 7 });
      assert.deepEqual(out.latentShape, [3, expected.latentDim]);
      same(out.latents, expected.sample.latents);
      assert.ok(out.images instanceof Float32Array);
      assert.deepEqual(out.imageShape, expected.sample.imageShape);
      same(out.images, expected.sample.images);
      assert.equal(out.model.name, "tiny");
      assert.ok(out.outputRange);
    });

    test("png output gives one PNG Blob per row", async () => {
      const out = await client.sample("tiny", { n: 2, seed: 1, output: "png" });
      const blobs = out.pngBlobs();
      assert.equal(blobs.length, 2);
      const head = new Uint8Array(await blobs[0].arrayBuffer()).slice(0, 4);
      assert.deepEqual([...head], [0x89, 0x50, 0x4e, 0x47]);
      assert.equal(blobs[0].type, "image/png");
    });

    test("decode of sampled latents gives the sampled images", async () => {
      const sampled = await client.sample("tiny", { n: 3, seed: 7 });
      const out = await client.decode("tiny", { values: sampled.latents,
        dim: expected.latentDim });
      assert.deepEqual(bytes(out.images), bytes(sampled.images));
    });

    test("edit sweeps strengths base-major, as the SDK", async () => {
      const out = await client.edit("tiny", { seeds: [1, 2], direction: expected.direction,
        strengths: [-1, 0, 1.5] });
      assert.equal(out.latentShape[0], 6);
      same(out.images, expected.edit.images);
    });

    test("interpolate and streamInterpolate walk the same path", async () => {
      const whole = await client.interpolate("tiny", { seeds: [1, 2, 3], steps: 5,
        output: "latents" });
      same(whole.latents, expected.interpolate.latents);
      const chunks = [];
      for await (const chunk of client.streamInterpolate("tiny", { seeds: [1, 2, 3], steps: 5,
        output: "latents" })) chunks.push(chunk);
      assert.ok(chunks.length >= 1);
      const rows = chunks.reduce((n, c) => n + c.latentShape[0], 0);
      assert.equal(rows, 9);
      assert.equal(chunks[0].offset, 0);
      const joined = Buffer.concat(chunks.map((c) => bytes(c.latents)));
      assert.ok(joined.equals(bytes(whole.latents)));
    });

    test("encode maps PNG Blobs back to latents", async () => {
      const out = await client.sample("tiny", { n: 2, seed: 3, output: "png" });
      const back = await client.encode("tiny", out.pngBlobs());
      assert.deepEqual(back.latentShape, [2, expected.latentDim]);
      assert.ok(back.latents.every(Number.isFinite));
    });

    test("client mistakes are LatentServeErrors naming the field", async () => {
      await assert.rejects(client.sample("tiny", { n: 0 }), (error) => {
        assert.ok(error instanceof LatentServeError);
        assert.equal(error.code, "invalid_argument");
        assert.equal(error.fieldViolations[0].field, "n");
        return true;
      });
      await assert.rejects(client.sample("no-such-model", { n: 1 }),
        (error) => error.code === "not_found");
      await assert.rejects(async () => {
        for await (const _ of client.streamInterpolate("tiny", { seeds: [1], steps: 3 })) {
          // a path needs two keyframes
        }
      }, (error) => error.code === "invalid_argument" && error.fieldViolations.length > 0);
    });
  });
}
