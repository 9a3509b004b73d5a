#!/usr/bin/env node
// Reference outputs of nsfwjs's MobileNetV2 on the fidelity photographs, computed by the package's
// own code on TensorFlow.js's pure-JavaScript CPU backend.
//
// Run from the repository root, after models/nsfwjs/convert.py (which fetches and verifies the
// nsfwjs tarball) and models/prepare.py (which exports models/photos/):
//
//     node models/nsfwjs/reference.mjs
//
// It installs pinned packages into models/nsfwjs/.cache/node (git-ignored): nsfwjs from the
// verified tarball, @tensorflow/tfjs at the version nsfwjs 4.4.0 was built and tested against
// (its devDependency; the peer range is ^4.0.0), buffer (nsfwjs's other peer dependency) and pngjs
// to decode the photographs. No native code: npm runs no install scripts.
//
// For each PNG in models/photos (sorted by name) it
//   - decodes it to 8-bit RGB and makes an int32 [h, w, 3] tensor, as tf.browser.fromPixels would;
//   - runs nsfwjs's own `infer` (what `classify` calls) for the probabilities;
//   - replays infer's preprocessing (float, / 255, tf.image.resizeBilinear to 224x224 with
//     alignCorners = true, reshape to [1, 224, 224, 3]) and checks that the model's `predict` on
//     that tensor gives bit-identical probabilities, so the dumped tensor is the one the network saw;
//   - dumps that tensor as a .npy file in .cache/reference/ for check.py;
//   - computes the logits (the last Dense layer without its softmax) from the `dropout_3` endpoint.
// Then the golden self-test's output: the network on the manifest's fixed `ramp-unit-v1` input.
// Results: one JSON line per photograph on stdout, and .cache/reference.json.

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "..", "..");
const CACHE = join(HERE, ".cache");
const NODE_DIR = join(CACHE, "node");
const OUT_DIR = join(CACHE, "reference");
const PHOTOS = join(HERE, "..", "photos");

const TARBALL = join(CACHE, "nsfwjs-4.4.0.tgz");
const TARBALL_SHA256 = "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382";
// Exact versions. @tensorflow/tfjs pins its own @tensorflow/* sub-packages to the same version.
const PINS = {
  nsfwjs: "4.4.0",
  "@tensorflow/tfjs": "4.22.0",
  buffer: "6.0.3",
  pngjs: "7.0.0",
};
const SIZE = 224;
const ENDPOINT_BEFORE_LOGITS = "dropout_3";
const LOGITS_LAYER = "dense_3";

function fail(msg) {
  console.error(`reference: error: ${msg}`);
  process.exit(1);
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

function installedVersion(name) {
  const p = join(NODE_DIR, "node_modules", name, "package.json");
  return existsSync(p) ? JSON.parse(readFileSync(p, "utf8")).version : null;
}

function install() {
  if (!existsSync(TARBALL)) fail(`${relative(REPO, TARBALL)} is missing: run models/nsfwjs/convert.py first`);
  const got = sha256(readFileSync(TARBALL));
  if (got !== TARBALL_SHA256) fail(`${relative(REPO, TARBALL)} has sha256 ${got}, expected ${TARBALL_SHA256}`);
  const ok = Object.entries(PINS).every(([n, v]) => installedVersion(n) === v);
  if (!ok) {
    mkdirSync(NODE_DIR, { recursive: true });
    const deps = { ...PINS, nsfwjs: `file:${TARBALL}` };
    writeFileSync(join(NODE_DIR, "package.json"), JSON.stringify({ private: true, dependencies: deps }, null, 2) + "\n");
    execFileSync(
      "npm",
      ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", "--engine-strict=false"],
      { cwd: NODE_DIR, stdio: ["ignore", process.stderr, "inherit"] }, // keep stdout for results
    );
  }
  for (const [n, v] of Object.entries(PINS)) {
    if (installedVersion(n) !== v) fail(`${n} ${installedVersion(n)} installed in ${NODE_DIR}, want ${v}`);
  }
  for (const sub of ["tfjs-core", "tfjs-layers", "tfjs-backend-cpu"]) {
    const v = installedVersion(`@tensorflow/${sub}`);
    if (v !== PINS["@tensorflow/tfjs"]) fail(`@tensorflow/${sub} is ${v}, want ${PINS["@tensorflow/tfjs"]}`);
  }
}

// A minimal .npy (format 1.0) writer for a little-endian float32 array.
function npy(data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(pad % 64) + "\n";
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, Buffer.from(header, "latin1"), body]);
}

function stats(a) {
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of a) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: sum / a.length };
}

async function main() {
  install();
  const require = createRequire(join(NODE_DIR, "package.json"));
  const tf = require("@tensorflow/tfjs");
  const nsfwjs = require("nsfwjs");
  const { PNG } = require("pngjs");

  await tf.setBackend("cpu");
  await tf.ready();
  if (tf.getBackend() !== "cpu") fail(`backend is ${tf.getBackend()}, not cpu`);

  // nsfwjs's bundled MobileNetV2 (dist/models/mobilenet_v2/*.min.js), loaded by the package itself.
  const info = console.info;
  console.info = () => {}; // load() prints a banner about hosting the model
  const model = await nsfwjs.load("MobileNetV2");
  console.info = info;
  const net = model.model; // the tf.LayersModel
  const [kernel, bias] = net.getLayer(LOGITS_LAYER).getWeights();

  const files = readdirSync(PHOTOS).filter((f) => f.endsWith(".png")).sort();
  if (files.length === 0) fail(`no PNG files in ${relative(REPO, PHOTOS)}: run models/prepare.py first`);
  mkdirSync(OUT_DIR, { recursive: true });

  const results = [];
  for (const file of files) {
    const png = PNG.sync.read(readFileSync(join(PHOTOS, file))); // RGBA, 8 bits per channel
    const { width: w, height: h } = png;
    const rgb = new Int32Array(w * h * 3);
    for (let i = 0; i < w * h; i++) {
      rgb[3 * i] = png.data[4 * i];
      rgb[3 * i + 1] = png.data[4 * i + 1];
      rgb[3 * i + 2] = png.data[4 * i + 2];
    }
    const img = tf.tensor3d(rgb, [h, w, 3], "int32");

    // The package's own pipeline (classify = infer + top-k sorting).
    const probsT = model.infer(img);
    const probs = await probsT.data();

    // The same preprocessing, step by step, as nsfwjs's infer (dist/esm/core.js) does it.
    const x = tf.tidy(() => {
      const normalized = img.toFloat().div(model.normalizationOffset);
      const resized = h !== SIZE || w !== SIZE ? tf.image.resizeBilinear(normalized, [SIZE, SIZE], true) : normalized;
      return resized.reshape([1, SIZE, SIZE, 3]);
    });
    const xData = await x.data();
    const again = await tf.tidy(() => net.predict(x)).data();
    for (let i = 0; i < probs.length; i++) {
      if (again[i] !== probs[i]) fail(`${file}: predict on the replayed preprocessing differs from infer`);
    }

    // Logits: the last Dense layer's matMul + bias, before its softmax.
    const featT = model.infer(img, ENDPOINT_BEFORE_LOGITS);
    const logits = await tf.tidy(() => tf.add(tf.matMul(featT, kernel), bias)).data();

    const stem = file.replace(/\.png$/, "");
    const npyPath = join(OUT_DIR, `${stem}.npy`);
    writeFileSync(npyPath + ".tmp", npy(xData, [1, SIZE, SIZE, 3]));
    renameSync(npyPath + ".tmp", npyPath);

    const row = {
      file,
      width: w,
      height: h,
      input_sha256: sha256(Buffer.from(xData.buffer, xData.byteOffset, xData.byteLength)),
      input_stats: stats(xData),
      input_npy: relative(HERE, npyPath),
      probabilities: Array.from(probs),
      logits: Array.from(logits),
    };
    console.log(JSON.stringify(row));
    results.push(row);
    tf.dispose([img, probsT, x, featT]);
  }

  // The manifest's golden self-test: `ramp-unit-v1` (runtime/src/inference/model/golden.rs golden_input), element
  // (0, y, x, c) = ((y * 7 + x * 13 + c * 29) mod 251) / 250, straight into the network.
  const ramp = new Float32Array(SIZE * SIZE * 3); // storing rounds the quotient to f32 exactly once
  for (let y = 0, i = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      for (let c = 0; c < 3; c++, i++) ramp[i] = ((y * 7 + x * 13 + c * 29) % 251) / 250;
    }
  }
  const goldenT = tf.tidy(() => net.predict(tf.tensor4d(ramp, [1, SIZE, SIZE, 3])));
  const golden = { input: "ramp-unit-v1", probabilities: Array.from(await goldenT.data()) };
  goldenT.dispose();
  console.log(JSON.stringify({ golden }));

  const out = {
    nsfwjs: PINS.nsfwjs,
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    node: process.version,
    labels: Object.values(require(join(NODE_DIR, "node_modules", "nsfwjs", "dist", "cjs", "nsfw_classes.js")).NSFW_CLASSES),
    golden,
    photos: results,
  };
  writeFileSync(join(CACHE, "reference.json"), JSON.stringify(out, null, 1) + "\n");
  console.error(`reference: ${results.length} photographs, written to ${relative(REPO, join(CACHE, "reference.json"))}`);
}

await main();
