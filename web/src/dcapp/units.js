/*
 * ARF Avatar Animation Units: the decoder of the `3gpp-ar-animation` data channel, in the page.
 *
 * ISO/IEC 23090-39 (MPEG ARF, draft) animation unit syntax as carried by the TS 26.264
 * `3gpp-ar-animation` subprotocol (CR 0017): exactly one unit per binary message, big-endian,
 * floats IEEE 754 binary32. docs/protocol.md section 5 is the layout; the Python codec
 * (src/avatar_mf/arf/units.py) is the reference, and tests/browser/test_units_vectors.py checks
 * that this decoder and that codec agree on vectors the Python side generates.
 *
 * Same strictness as the Python codec: a message holds exactly one unit (`truncated`,
 * `trailing-bytes`), known payloads are exactly as long as their fields (`short-payload`,
 * `extra-payload`), the CONFIG profile is UTF-8 (`bad-profile`) and its timescale finite and
 * > 0 (`bad-timescale`). Unknown unit types (4..127) decode to {type: "UNKNOWN"}: receivers
 * skip them. Float values are not range checked.
 */

export const HEADER_SIZE = 5;
export const UNIT_TYPES = Object.freeze(["CONFIG", "BLENDSHAPE", "JOINT", "LANDMARK"]);
const SET_HEAD_SIZE = 9; // uint32 timestamp, uint16 set id, uint8 flags, uint16 count_minus1
const MATRIX_SIZE = 16;

export class ArfDecodeError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "ArfDecodeError";
    this.code = code;
  }
}

function payloadSizeError(name, need, have) {
  const code = need > have ? "short-payload" : "extra-payload";
  return new ArfDecodeError(code, `${name} unit needs ${need} payload bytes, unit_length is ${have}`);
}

function viewOf(data) {
  if (data instanceof DataView) return data;
  if (ArrayBuffer.isView(data)) return new DataView(data.buffer, data.byteOffset, data.byteLength);
  // An ArrayBuffer, possibly of another realm (a data channel of the embedding page).
  return new DataView(data);
}

/** Decode one `3gpp-ar-animation` message (ArrayBuffer, typed array or DataView). */
export function decodeUnit(data) {
  const view = viewOf(data);
  const size = view.byteLength;
  if (size < HEADER_SIZE) {
    throw new ArfDecodeError("truncated", `${size} bytes, a unit header needs ${HEADER_SIZE}`);
  }
  const unitType = view.getUint8(0) >> 1;
  const length = view.getUint32(1);
  const end = HEADER_SIZE + length;
  if (end > size) {
    throw new ArfDecodeError("truncated", `unit_length ${length} but only ${size - HEADER_SIZE} payload bytes`);
  }
  if (end < size) {
    throw new ArfDecodeError("trailing-bytes", `unit_length ${length} but ${size - HEADER_SIZE} payload bytes`);
  }
  switch (unitType) {
    case 0: return decodeConfig(view, HEADER_SIZE, end);
    case 1: return decodeBlendshape(view, HEADER_SIZE, end);
    case 2: return decodeJoint(view, HEADER_SIZE, end);
    case 3: return decodeLandmark(view, HEADER_SIZE, end);
    default:
      return {
        type: "UNKNOWN",
        unitType,
        payload: new Uint8Array(view.buffer.slice(view.byteOffset + HEADER_SIZE, view.byteOffset + end)),
      };
  }
}

function decodeConfig(view, start, end) {
  const have = end - start;
  if (have < 5) throw payloadSizeError("CONFIG", 9, have);
  const timestamp = view.getUint32(start);
  const profileLength = view.getUint8(start + 4);
  const need = 5 + profileLength + 4;
  if (need !== have) throw payloadSizeError("CONFIG", need, have);
  const bytes = new Uint8Array(view.buffer, view.byteOffset + start + 5, profileLength);
  let profile;
  try {
    profile = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new ArfDecodeError("bad-profile", "profile is not UTF-8");
  }
  const timescale = view.getFloat32(start + 5 + profileLength);
  if (!(Number.isFinite(timescale) && timescale > 0)) {
    throw new ArfDecodeError("bad-timescale", `timescale ${timescale} is not finite and > 0`);
  }
  return { type: "CONFIG", timestamp, profile, timescale };
}

function setHead(name, view, start, end) {
  if (end - start < SET_HEAD_SIZE) throw payloadSizeError(name, SET_HEAD_SIZE + 6, end - start);
  return {
    timestamp: view.getUint32(start),
    setId: view.getUint16(start + 4),
    flags: view.getUint8(start + 6),
    count: view.getUint16(start + 7) + 1,
  };
}

function checkEntries(name, start, end, floats, count) {
  const need = SET_HEAD_SIZE + count * (2 + 4 * floats);
  if (need !== end - start) throw payloadSizeError(name, need, end - start);
  return start + SET_HEAD_SIZE;
}

function floats(view, at, n) {
  const out = new Array(n);
  for (let i = 0; i < n; i += 1) out[i] = view.getFloat32(at + 4 * i);
  return out;
}

function decodeBlendshape(view, start, end) {
  const head = setHead("BLENDSHAPE", view, start, end);
  const confidence = (head.flags & 0x80) !== 0;
  const per = confidence ? 2 : 1;
  let at = checkEntries("BLENDSHAPE", start, end, per, head.count);
  const indices = new Array(head.count);
  const weights = new Array(head.count);
  const confidences = confidence ? new Array(head.count) : null;
  for (let i = 0; i < head.count; i += 1) {
    indices[i] = view.getUint16(at);
    weights[i] = view.getFloat32(at + 2);
    if (confidence) confidences[i] = view.getFloat32(at + 6);
    at += 2 + 4 * per;
  }
  return { type: "BLENDSHAPE", timestamp: head.timestamp, setId: head.setId, indices, weights, confidences };
}

function decodeJoint(view, start, end) {
  const head = setHead("JOINT", view, start, end);
  const velocity = (head.flags & 0x80) !== 0;
  const per = velocity ? 2 * MATRIX_SIZE : MATRIX_SIZE;
  let at = checkEntries("JOINT", start, end, per, head.count);
  const indices = new Array(head.count);
  const matrices = new Array(head.count);
  const velocities = velocity ? new Array(head.count) : null;
  for (let i = 0; i < head.count; i += 1) {
    indices[i] = view.getUint16(at);
    matrices[i] = floats(view, at + 2, MATRIX_SIZE);
    if (velocity) velocities[i] = floats(view, at + 2 + 4 * MATRIX_SIZE, MATRIX_SIZE);
    at += 2 + 4 * per;
  }
  return { type: "JOINT", timestamp: head.timestamp, jointSetId: head.setId, indices, matrices, velocities };
}

function decodeLandmark(view, start, end) {
  const head = setHead("LANDMARK", view, start, end);
  const is3d = (head.flags & 0x20) !== 0;
  const velocity = (head.flags & 0x80) !== 0;
  const confidence = (head.flags & 0x40) !== 0;
  const dims = is3d ? 3 : 2;
  const per = dims * (velocity ? 2 : 1) + (confidence ? 1 : 0);
  let at = checkEntries("LANDMARK", start, end, per, head.count);
  const indices = new Array(head.count);
  const coords = new Array(head.count);
  const velocities = velocity ? new Array(head.count) : null;
  const confidences = confidence ? new Array(head.count) : null;
  for (let i = 0; i < head.count; i += 1) {
    indices[i] = view.getUint16(at);
    coords[i] = floats(view, at + 2, dims);
    if (velocity) velocities[i] = floats(view, at + 2 + 4 * dims, dims);
    if (confidence) confidences[i] = view.getFloat32(at + 2 + 4 * (per - 1));
    at += 2 + 4 * per;
  }
  return {
    type: "LANDMARK", timestamp: head.timestamp, setId: head.setId, is3d, indices, coords, velocities, confidences,
  };
}
