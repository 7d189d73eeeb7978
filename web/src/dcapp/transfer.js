/*
 * Base avatar transfers over the data channel (docs/protocol.md section 6): the chunk message
 * (magic "AVT1", 4-byte tag = first 4 bytes of SHA-256 of the UTF-8 transferId, uint32 offset,
 * data), the receiver rules (in order; duplicates ignored; overlaps contribute their new bytes;
 * a gap is answered by one transfer accept with resumeFrom = the next expected byte; a chunk
 * over chunkSize or past totalSize fails the transfer; SHA-256 checked at the end) and the
 * sender side of an upload.
 */

import { sha256, sha256Hex, toHex } from "./sha256.js";

export const CHUNK_HEADER_SIZE = 12;
const MAGIC = [0x41, 0x56, 0x54, 0x31];

export function transferTag(transferId) {
  return sha256(new TextEncoder().encode(transferId)).subarray(0, 4);
}

/** A chunk message's fields, or null when `bytes` is not one. */
export function parseChunk(bytes) {
  if (bytes.length <= CHUNK_HEADER_SIZE) return null;
  for (let i = 0; i < 4; i += 1) if (bytes[i] !== MAGIC[i]) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { tag: toHex(bytes.subarray(4, 8)), offset: view.getUint32(8), data: bytes.subarray(CHUNK_HEADER_SIZE) };
}

export function buildChunk(tag, offset, data) {
  const out = new Uint8Array(CHUNK_HEADER_SIZE + data.length);
  out.set(MAGIC, 0);
  out.set(tag, 4);
  new DataView(out.buffer).setUint32(8, offset);
  out.set(data, CHUNK_HEADER_SIZE);
  return out;
}

/** Receives one offered transfer. `receive(chunk)` returns what to do next. */
export class TransferReceiver {
  constructor(offer, { maxSize }) {
    this.offer = offer;
    this.tag = toHex(transferTag(offer.transferId));
    this.received = 0;
    this.buffer = null;
    this.done = false;
    if (offer.totalSize > maxSize) {
      this.refusal = { code: "too-large", reason: `${offer.totalSize} bytes, this UE takes at most ${maxSize}` };
    }
  }

  receive(chunk) {
    if (this.done) return { kind: "ignored" };
    const { offer } = this;
    if (chunk.data.length > offer.chunkSize) {
      return this.fail("chunk-too-large", `a chunk of ${chunk.data.length} bytes, chunkSize ${offer.chunkSize}`);
    }
    const end = chunk.offset + chunk.data.length;
    if (end > offer.totalSize) return this.fail("overflow", `a chunk ending at ${end}, totalSize ${offer.totalSize}`);
    if (chunk.offset > this.received) {
      if (this.gapAt === this.received) return { kind: "ignored" }; // already asked once
      this.gapAt = this.received;
      return { kind: "gap", resumeFrom: this.received };
    }
    if (end <= this.received) return { kind: "duplicate" };
    if (this.buffer === null) this.buffer = new Uint8Array(offer.totalSize);
    this.buffer.set(chunk.data.subarray(this.received - chunk.offset), this.received);
    this.received = end;
    this.gapAt = undefined;
    if (this.received < offer.totalSize) return { kind: "stored", received: this.received };
    this.done = true;
    const digest = sha256Hex(this.buffer);
    if (digest !== offer.sha256.toLowerCase()) {
      return { kind: "failed", code: "digest-mismatch", reason: `SHA-256 of the received bytes is ${digest}` };
    }
    return { kind: "complete", payload: this.buffer, sha256: digest };
  }

  fail(code, reason) {
    this.done = true;
    return { kind: "failed", code, reason };
  }
}

/** The chunks of an upload of `payload`, from `resumeFrom`. */
export function* uploadChunks(payload, transferId, chunkSize, resumeFrom = 0) {
  const tag = transferTag(transferId);
  for (let offset = resumeFrom; offset < payload.length; offset += chunkSize) {
    yield buildChunk(tag, offset, payload.subarray(offset, Math.min(payload.length, offset + chunkSize)));
  }
}
