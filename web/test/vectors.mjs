// The JavaScript side of tests/browser/test_js_codecs.py: reads the vectors the Python side
// generated (argv[2], JSON) and prints, as one JSON line, what the page's codecs make of them:
// each animation unit decoded by src/dcapp/units.js (or its error code), the SHA-256 of each
// input by src/dcapp/sha256.js, entries of a ZIP (an ARF container) by src/dcapp/zip.js, and
// the raw audio messages, packetizer and resampler of src/dcapp/audio.js. Every section is
// optional.
import { readFileSync } from "node:fs";
import { decodeUnit } from "../src/dcapp/units.js";
import { sha256Hex } from "../src/dcapp/sha256.js";
import { zipRead } from "../src/dcapp/zip.js";
import { TransferReceiver, parseChunk, uploadChunks } from "../src/dcapp/transfer.js";
import { AudioPacketizer, Resampler, encodeAudio } from "../src/dcapp/audio.js";

const fromHex = (hex) => Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
const num = (x) => (Number.isFinite(x) ? x : String(x));
const nums = (xs) => (xs === null ? null : xs.map(num));
const vecs = (xs) => (xs === null ? null : xs.map(nums));

function normal(unit) {
  switch (unit.type) {
    case "CONFIG":
      return { type: "CONFIG", timestamp: unit.timestamp, profile: unit.profile, timescale: num(unit.timescale) };
    case "BLENDSHAPE":
      return { type: "BLENDSHAPE", timestamp: unit.timestamp, set_id: unit.setId, indices: unit.indices,
        weights: nums(unit.weights), confidences: nums(unit.confidences) };
    case "JOINT":
      return { type: "JOINT", timestamp: unit.timestamp, set_id: unit.jointSetId, indices: unit.indices,
        matrices: vecs(unit.matrices), velocities: vecs(unit.velocities) };
    case "LANDMARK":
      return { type: "LANDMARK", timestamp: unit.timestamp, set_id: unit.setId, is_3d: unit.is3d,
        indices: unit.indices, coords: vecs(unit.coords), velocities: vecs(unit.velocities),
        confidences: nums(unit.confidences) };
    default:
      return { type: "UNKNOWN", unit_type: unit.unitType, payload: Buffer.from(unit.payload).toString("hex") };
  }
}

const vectors = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = {};
out.units = (vectors.units || []).map((hex) => {
  try {
    return normal(decodeUnit(fromHex(hex)));
  } catch (err) {
    return { error: err.code || String(err) };
  }
});
out.sha256 = (vectors.sha256 || []).map((hex) => sha256Hex(fromHex(hex)));
if (vectors.zip) {
  const archive = new Uint8Array(readFileSync(vectors.zip.path));
  out.zip = {};
  for (const name of vectors.zip.entries) out.zip[name] = sha256Hex(await zipRead(archive, name));
}
if (vectors.transfer) {
  // The page's receiver fed with the MF-format chunks the Python side made.
  const { offer, chunks } = vectors.transfer;
  const receiver = new TransferReceiver(offer, { maxSize: 1 << 30 });
  out.transfer = chunks.map((hex) => {
    const event = receiver.receive(parseChunk(fromHex(hex)));
    return event.kind === "complete" ? { kind: "complete", sha256: event.sha256 } : event;
  });
  out.transfer_tag = receiver.tag;
  const payload = fromHex(vectors.transfer.upload);
  out.upload = [...uploadChunks(payload, offer.transferId, offer.chunkSize, 0)].map((c) => Buffer.from(c).toString("hex"));
}
if (vectors.audio) {
  const { messages, packetizer, resample } = vectors.audio;
  const hex = (bytes) => Buffer.from(bytes).toString("hex");
  out.audio = {};
  // One message each, or the error's name for what the codec refuses.
  out.audio.messages = messages.map(({ sequence, timestamp, samples, format }) => {
    try {
      return hex(encodeAudio(sequence, timestamp, Int16Array.from(samples), format));
    } catch (err) {
      return { error: err.name };
    }
  });
  // The packetizer fed floats in uneven pieces, its random draws given.
  const draws = [...packetizer.random];
  const p = new AudioPacketizer({ frameSamples: packetizer.frameSamples, random: () => draws.shift() });
  const sent = [];
  let at = 0;
  for (const size of packetizer.pieces) {
    sent.push(...p.push(packetizer.floats.slice(at, at + size)));
    at += size;
  }
  out.audio.packetized = sent.map(hex);
  // Tones through the resampler, pushed 128 samples at a time (an AudioWorklet's quantum).
  out.audio.resampled = resample.map(({ rate, frequency, seconds }) => {
    const r = new Resampler(rate);
    const n = Math.round(rate * seconds);
    const x = Float64Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * frequency * i) / rate));
    const y = [];
    for (let i = 0; i < n; i += 128) y.push(...r.push(x.subarray(i, i + 128)));
    return y;
  });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
