/*
 * Reading one entry out of a ZIP archive (APPNOTE.TXT 6.3: end of central directory, central
 * directory headers, local headers; methods 0 stored and 8 deflate) in the page: the MF
 * delivers base avatars as ARF containers (`application/vnd.arf+zip`, docs/avatar-format.md),
 * a ZIP holding `arf.json` and `data/avatar.glb`. Deflate goes through the browser's
 * DecompressionStream("deflate-raw"). No ZIP64, no encryption: the MF's containers need neither.
 */

export class ZipError extends Error {}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** The entries of `bytes` (Uint8Array): name -> {method, offset, compressedSize, size}. */
export function zipEntries(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 65535); at -= 1) {
    if (view.getUint32(at, true) === EOCD) { eocd = at; break; }
  }
  if (eocd < 0) throw new ZipError("not a ZIP archive (no end of central directory)");
  const count = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  const entries = new Map();
  const decoder = new TextDecoder();
  for (let i = 0; i < count; i += 1) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== CENTRAL) throw new ZipError("bad central directory");
    const method = view.getUint16(at + 10, true);
    const compressedSize = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const offset = view.getUint32(at + 42, true);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    entries.set(name, { method, offset, compressedSize, size });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function inflateRaw(data) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The contents of entry `name` of the archive `bytes` (Uint8Array). */
export async function zipRead(bytes, name) {
  const entry = zipEntries(bytes).get(name);
  if (!entry) throw new ZipError(`no ${name} in the archive`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.offset;
  if (at + 30 > bytes.length || view.getUint32(at, true) !== LOCAL) throw new ZipError(`bad local header of ${name}`);
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  const data = bytes.subarray(start, start + entry.compressedSize);
  let out;
  if (entry.method === 0) out = data.slice();
  else if (entry.method === 8) out = await inflateRaw(data);
  else throw new ZipError(`${name}: compression method ${entry.method} not supported`);
  if (out.length !== entry.size) throw new ZipError(`${name}: ${out.length} bytes, ${entry.size} declared`);
  return out;
}
