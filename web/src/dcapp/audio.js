/*
 * The page's voice without RTP: raw audio messages on the `avatar-mf-audio` data channel
 * (docs/protocol.md section 7; the MF's codec is avatar_mf/protocol/audio.py).
 *
 * Each message is 16 kHz mono signed 16-bit PCM behind an 8-byte header, header fields
 * big-endian: version (1), format (1: samples little-endian, s16le; 2: big-endian, RFC 3551
 * L16), sequence (uint16, +1 per message), timestamp (uint32, the first sample's time at
 * 16 kHz, + the previous message's samples), as an RTP packet's (RFC 3550 5.1).
 *
 * Pure code, no Web Audio here (app.js captures the microphone): encodeAudio() writes one
 * message, Resampler takes the capture rate (48 kHz, 44.1 kHz...) to 16 kHz with a windowed
 * sinc low-pass (Blackman window, cut off below the new Nyquist frequency) evaluated at each
 * output instant, so nothing above 8 kHz folds back into the band, and AudioPacketizer cuts
 * the 16 kHz samples into 20 ms messages with a sequence number and timestamp starting at
 * random values.
 */

export const AUDIO_PROTOCOL = "avatar-mf-audio";
export const AUDIO_VERSION = 1;
export const FORMAT_S16LE = 1;
export const FORMAT_L16 = 2;
export const AUDIO_RATE = 16000;
export const AUDIO_HEADER_SIZE = 8;
/** 20 ms at 16 kHz: the samples of one message. */
export const FRAME_SAMPLES = 320;
const MIN_SAMPLES = 160;
const MAX_SAMPLES = 960;

/** One message: `samples` (an Int16Array, 160 to 960) behind the header. */
export function encodeAudio(sequence, timestamp, samples, format = FORMAT_S16LE) {
  if (format !== FORMAT_S16LE && format !== FORMAT_L16) throw new RangeError(`format ${format}: 1 or 2`);
  if (samples.length < MIN_SAMPLES || samples.length > MAX_SAMPLES) {
    throw new RangeError(`${samples.length} samples: a message carries 160 to 960 (10-60 ms)`);
  }
  const out = new Uint8Array(AUDIO_HEADER_SIZE + 2 * samples.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, AUDIO_VERSION);
  view.setUint8(1, format);
  view.setUint16(2, ((sequence % 0x10000) + 0x10000) % 0x10000, false);
  view.setUint32(4, ((timestamp % 0x100000000) + 0x100000000) % 0x100000000, false);
  const little = format === FORMAT_S16LE;
  for (let i = 0; i < samples.length; i += 1) view.setInt16(AUDIO_HEADER_SIZE + 2 * i, samples[i], little);
  return out;
}

/** A float sample (-1..1) as a signed 16-bit one, clipped. */
export function toInt16(x) {
  const v = Math.round(x * 32767);
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/**
 * Resamples a stream of float samples from `inRate` to `outRate` (lower or equal).
 *
 * Each output sample at input time t is sum_k x[k] h(t - k), h a sinc low-pass of cut-off
 * `cutoff` x outRate/2 (relative to the input rate) under a Blackman window `zeros` zero
 * crossings wide on each side, looked up in a table of `phases` steps per input sample
 * (linearly interpolated). The input is kept across calls: push() returns the output
 * samples that the input so far fully determines.
 */
export class Resampler {
  constructor(inRate, outRate = AUDIO_RATE, { zeros = 8, cutoff = 0.9, phases = 256 } = {}) {
    if (!(inRate >= outRate && outRate > 0)) throw new RangeError(`cannot resample ${inRate} Hz to ${outRate} Hz`);
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    const fc = (cutoff * outRate) / (2 * inRate); // cycles per input sample
    this.half = Math.ceil(zeros / (2 * fc)); // kernel half width, input samples
    this.phases = phases;
    const size = this.half * phases + 2;
    this.table = new Float64Array(size);
    for (let i = 0; i < size; i += 1) {
      const t = i / phases;
      if (t >= this.half) break;
      const x = 2 * fc * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = t / this.half; // 0..1: the Blackman window from its centre
      const window = 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);
      this.table[i] = 2 * fc * sinc * window;
    }
    // The input still needed (history included), from input index `base`: silence first.
    this.base = -this.half;
    this.buffer = new Float64Array(this.half);
    this.next = 0; // input time of the next output sample
  }

  kernel(t) {
    const a = Math.abs(t) * this.phases;
    const i = Math.floor(a);
    if (i + 1 >= this.table.length) return 0;
    const f = a - i;
    return this.table[i] * (1 - f) + this.table[i + 1] * f;
  }

  /** Push input samples (any array of numbers); returns a Float64Array of output samples. */
  push(input) {
    const joined = new Float64Array(this.buffer.length + input.length);
    joined.set(this.buffer);
    joined.set(input, this.buffer.length);
    const end = this.base + joined.length; // input index after the last sample
    const out = [];
    while (this.next + this.half < end) {
      const t = this.next;
      const first = Math.max(this.base, Math.ceil(t - this.half));
      const last = Math.min(end - 1, Math.floor(t + this.half));
      let sum = 0;
      let gain = 0;
      for (let k = first; k <= last; k += 1) {
        const h = this.kernel(t - k);
        sum += joined[k - this.base] * h;
        gain += h;
      }
      out.push(gain > 0 ? sum / gain : 0);
      this.next += this.step;
    }
    // Keep what the next output samples still need.
    const keepFrom = Math.max(this.base, Math.floor(this.next - this.half) - 1);
    this.buffer = joined.slice(keepFrom - this.base);
    this.base = keepFrom;
    return Float64Array.from(out);
  }
}

/**
 * Cuts 16 kHz samples into messages of `frameSamples` (320: 20 ms). The first sequence number
 * and timestamp are drawn from `random` (a function returning [0, 1), Math.random by default);
 * each message adds 1 to the sequence and its samples to the timestamp, both wrapping.
 */
export class AudioPacketizer {
  constructor({ frameSamples = FRAME_SAMPLES, format = FORMAT_S16LE, random = Math.random } = {}) {
    if (frameSamples < MIN_SAMPLES || frameSamples > MAX_SAMPLES) throw new RangeError(`${frameSamples} samples a message`);
    this.frameSamples = frameSamples;
    this.format = format;
    this.firstSequence = Math.floor(random() * 0x10000) % 0x10000;
    this.firstTimestamp = Math.floor(random() * 0x100000000) % 0x100000000;
    this.sequence = this.firstSequence;
    this.timestamp = this.firstTimestamp;
    this.pending = new Int16Array(frameSamples);
    this.filled = 0;
    this.messages = 0;
  }

  /** Push samples (floats -1..1, or Int16Array); returns the whole messages they complete. */
  push(samples) {
    const out = [];
    const ints = samples instanceof Int16Array;
    for (let i = 0; i < samples.length; i += 1) {
      this.pending[this.filled] = ints ? samples[i] : toInt16(samples[i]);
      this.filled += 1;
      if (this.filled === this.frameSamples) {
        out.push(encodeAudio(this.sequence, this.timestamp, this.pending, this.format));
        this.sequence = (this.sequence + 1) % 0x10000;
        this.timestamp = (this.timestamp + this.frameSamples) % 0x100000000;
        this.filled = 0;
        this.messages += 1;
      }
    }
    return out;
  }
}
