/*
 * HTTP/1.1 over a bootstrap data channel (TS 26.114 6.2.10; RFC 9112 message syntax): the UE
 * side of avatar_mf.bootstrap. Requests are written as one message; a response may span
 * several messages (the MF splits them at the peer's max-message-size) and is reassembled by
 * its Content-Length. Requests are answered in order, one at a time here.
 */

const CRLF2 = [13, 10, 13, 10];

function indexOfHeadEnd(bytes) {
  for (let i = 0; i + 3 < bytes.length; i += 1) {
    if (bytes[i] === CRLF2[0] && bytes[i + 1] === CRLF2[1] && bytes[i + 2] === CRLF2[2] && bytes[i + 3] === CRLF2[3]) return i;
  }
  return -1;
}

export class DataChannelHttp {
  constructor(channel, host = "mf.invalid") {
    this.channel = channel;
    this.host = host;
    this.buffer = new Uint8Array(0);
    this.waiting = [];
    this.log = [];
    channel.binaryType = "arraybuffer";
    channel.addEventListener("message", (event) => this.onData(event.data));
  }

  onData(data) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer);
    joined.set(bytes, this.buffer.length);
    this.buffer = joined;
    this.parse();
  }

  parse() {
    while (this.waiting.length) {
      const end = indexOfHeadEnd(this.buffer);
      if (end < 0) return;
      const head = new TextDecoder().decode(this.buffer.subarray(0, end)).split("\r\n");
      const [, code, ...reason] = head[0].split(" ");
      const headers = new Map();
      for (const line of head.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const request = this.waiting[0];
      const status = Number(code);
      const noBody = request.method === "HEAD" || status === 204 || status === 304 || status < 200;
      const length = noBody ? 0 : Number(headers.get("content-length") || 0);
      if (this.buffer.length < end + 4 + length) return;
      const body = this.buffer.slice(end + 4, end + 4 + length);
      this.buffer = this.buffer.slice(end + 4 + length);
      this.waiting.shift();
      this.log.push({ path: request.path, status, bytes: body.length });
      request.resolve({ status, reason: reason.join(" "), headers, body });
    }
  }

  /** GET `path`: resolves to {status, reason, headers (Map, lower-case names), body}. */
  get(path) {
    return new Promise((resolve, reject) => {
      if (this.channel.readyState !== "open") {
        reject(new Error(`bootstrap channel ${this.channel.id} is ${this.channel.readyState}`));
        return;
      }
      this.waiting.push({ method: "GET", path, resolve });
      this.channel.send(`GET ${path} HTTP/1.1\r\nHost: ${this.host}\r\nAccept: */*\r\n\r\n`);
    });
  }
}
