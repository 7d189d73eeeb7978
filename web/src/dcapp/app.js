/*
 * Avatar call: the data channel application the avatar MF serves on its bootstrap channels.
 *
 * The UE downloads this page over a bootstrap data channel (HTTP, TS 26.114 6.2.10) and runs
 * it in its browser engine; the browser avatar client of the MF (webclient/) does exactly
 * that. The app speaks the MF's metadata protocol (docs/protocol.md section 3) on the
 * `3gpp-ar-metadata` channel: hello first, then, once capabilities came, scene get, avatar
 * select / generate, animation text, uploads; it answers the MF's transfer offers (accept,
 * chunks checked against the offer's SHA-256, complete or failed) and shows the other
 * participants' base avatars in 3D (stage.js, three.js), animated by the units arriving on
 * `3gpp-ar-animation` channels (units.js decodes them).
 *
 * Binding to the UE's data channels. The IMS data channel API (GSMA TS.66) adapts W3C WebRTC:
 * the app gets RTCDataChannel-shaped objects. The host hands them over with
 *   avatarApp.attach(dataChannel)      // label, protocol, id, readyState, send(), events
 *   avatarApp.connect(peerConnection)  // or: every channel it announces
 * An "avatar-app-ready" event is dispatched on window once avatarApp exists. Channels may come
 * from another realm (the host page): nothing here relies on instanceof for their data.
 *
 * The voice without RTP (docs/protocol.md section 7): when the host hands over an
 * `avatar-mf-audio` channel too (the browser client offers one with ?voice=dc), the hello asks
 * the `voice` animation input; once the capabilities agree it, the app captures the
 * microphone (getUserMedia; an AudioWorklet, else a ScriptProcessor), resamples it to 16 kHz
 * and sends 20 ms raw audio messages on that channel (audio.js). What the MF refuses
 * (`error` bad-audio, unsupported, conflict) is shown in the status and kept in
 * state().voice.refusals; nothing about the voice throws.
 *
 * avatarApp.state() returns a JSON summary (for people and tests); avatarApp.mouthRect(key)
 * says where an avatar's mouth is on the canvas.
 */

import {
  ANIMATION_PROTOCOL,
  ARF_ZIP,
  GLB,
  METADATA_PROTOCOL,
  PROFILE_FACE,
  T,
  TRANSFER_PROTOCOL,
  shortType,
} from "./protocol.js";
import { AvatarStage } from "./stage.js";
import { AUDIO_PROTOCOL, AudioPacketizer, Resampler } from "./audio.js";
import { CHUNK_HEADER_SIZE, TransferReceiver, parseChunk, uploadChunks } from "./transfer.js";
import { decodeUnit } from "./units.js";
import { sha256Hex } from "./sha256.js";
import { zipRead } from "./zip.js";

const USER_AGENT = "avatar-mf-dcapp/0.2";
const MAX_MESSAGE_SIZE = 65536; // what this app accepts per message (hello maxMessageSize)
const MAX_TRANSFER_SIZE = 64 * 1024 * 1024;
const LOG_LINES = 40;
const LOG_TEXT_MAX = 240;
const HIGH_WATER = 1024 * 1024;
/** Audio messages are dropped while this much is still queued on the audio channel. */
const AUDIO_HIGH_WATER = 16 * 1024;
/** The MF's refusals of audio messages (docs/protocol.md section 7). */
const VOICE_REFUSALS = new Set(["bad-audio", "unsupported", "conflict"]);

const $ = (id) => document.getElementById(id);

const state = {
  status: "waiting for the data channels",
  sessionId: null,
  capabilities: null,
  participants: new Map(), // participantId -> {participantId, displayName, avatarId}
  avatars: new Map(), // avatarId -> {avatarId, state, participantId, reason}
  scene: null,
  sceneVersion: null,
  speaker: null, // participantId of the latest animation resumed
  lastShown: null, // avatarId shown most recently
  units: {},
  unitErrors: 0,
  errors: [], // error messages from the MF
  refusals: [],
  sent: [],
  received: [],
  notes: [],
  selected: null,
  voice: {
    state: "off", // off, asked, starting, on, refused, failed, ended
    capture: null, // "audioworklet" or "scriptprocessor"
    inputRate: null,
    sent: 0,
    dropped: 0,
    firstSequence: null,
    firstTimestamp: null,
    refusals: [],
    error: null,
  },
};

const channels = [];
let metadata = null;
let audio = null; // the avatar-mf-audio channel's entry
let capture = null; // {context, stream, node}
let stage = null;
let counter = 0;
const prefix = `web${Math.floor(Math.random() * 1e6).toString(36)}`;
const pending = new Map(); // message id -> callback (replies by inReplyTo)
const receivers = new Map(); // transfer tag -> TransferReceiver
const uploads = new Map(); // transferId -> {payload, chunkSize, stream, channel}

function nextId() {
  counter += 1;
  return `${prefix}-${counter}`;
}

// ---------------------------------------------------------------------------- channels

function attach(channel) {
  if (!channel || typeof channel.send !== "function") {
    throw new TypeError("avatarApp.attach expects an RTCDataChannel-like object");
  }
  const protocol = String(channel.protocol || "");
  if (![METADATA_PROTOCOL, ANIMATION_PROTOCOL, TRANSFER_PROTOCOL, AUDIO_PROTOCOL].includes(protocol)) return false;
  const entry = { channel, protocol, received: 0, sent: 0 };
  channels.push(entry);
  channel.binaryType = "arraybuffer";
  if (protocol === METADATA_PROTOCOL) metadata = entry;
  if (protocol === AUDIO_PROTOCOL && audio === null) audio = entry;
  channel.addEventListener("message", (event) => onChannelMessage(entry, event.data));
  channel.addEventListener("close", () => {
    if (entry === audio) stopVoice("ended");
    render();
  });
  if (channel.readyState === "open") opened(entry);
  else channel.addEventListener("open", () => opened(entry));
  render();
  return true;
}

function connect(peerConnection) {
  peerConnection.addEventListener("datachannel", (event) => attach(event.channel));
  peerConnection.addEventListener("connectionstatechange", () => {
    if (["closed", "failed"].includes(peerConnection.connectionState)) setStatus("call ended");
  });
}

function opened(entry) {
  if (entry === metadata && state.sessionId === null && !state.helloSent) {
    state.helloSent = true;
    // After the channels the host attaches in the same turn: the hello asks voice when an
    // audio channel is among them.
    queueMicrotask(sendHello);
  }
  render();
}

function sendHello() {
  const voice = audio !== null && audio.channel.readyState !== "closed";
  if (voice) state.voice.state = "asked";
  setStatus("hello sent");
  send({
    type: T.hello,
    role: "both",
    animationProfiles: [PROFILE_FACE],
    avatarFormats: [ARF_ZIP, GLB],
    maxMessageSize: MAX_MESSAGE_SIZE,
    animation: "ue",
    animationInputs: voice ? ["text", "voice"] : ["text"],
    userAgent: USER_AGENT,
  }, onCapabilities);
}

function send(message, onReply) {
  if (!metadata || metadata.channel.readyState !== "open") {
    note(`not sent (metadata channel not open): ${shortType(message.type)}`);
    return null;
  }
  const full = { type: message.type, id: nextId(), ...message };
  const text = JSON.stringify(full);
  metadata.channel.send(text);
  metadata.sent += 1;
  state.sent.push(shortType(full.type));
  if (onReply) pending.set(full.id, onReply);
  log(text, true);
  render();
  return full;
}

function onChannelMessage(entry, data) {
  entry.received += 1;
  if (typeof data === "string") {
    if (entry.protocol === METADATA_PROTOCOL) onMetadata(data);
    else note(`a text message on a ${entry.protocol} channel`);
  } else {
    const bytes = new Uint8Array(data);
    if (entry.protocol === ANIMATION_PROTOCOL) onUnit(bytes);
    else onChunk(bytes);
  }
  render();
}

// ---------------------------------------------------------------------------- metadata

function onMetadata(text) {
  log(text, false);
  let message;
  try {
    message = JSON.parse(text);
  } catch (err) {
    note(`unreadable metadata message: ${err}`);
    return;
  }
  if (!message || typeof message !== "object") return;
  state.received.push(shortType(message.type));
  const reply = message.inReplyTo !== undefined ? pending.get(message.inReplyTo) : undefined;
  if (reply) {
    pending.delete(message.inReplyTo);
    reply(message);
  }
  switch (message.type) {
    case T.error:
      state.errors.push({ code: message.code, message: message.message, inReplyTo: message.inReplyTo ?? null });
      if (audio !== null && VOICE_REFUSALS.has(message.code) && message.inReplyTo === undefined) {
        voiceRefused(message);
      }
      break;
    case T.refused:
      state.refusals.push({ avatarId: message.avatarId, code: message.code, reason: message.reason ?? null });
      break;
    case T.offer:
      onOffer(message);
      break;
    case T.accept:
      onUploadAccept(message);
      break;
    case T.complete:
    case T.failed:
      onTransferResult(message);
      break;
    case T.joined: {
      const known = state.participants.get(message.participantId) || {};
      state.participants.set(message.participantId, {
        participantId: message.participantId,
        displayName: message.displayName ?? known.displayName ?? null,
        avatarId: message.avatarId ?? known.avatarId ?? null,
      });
      break;
    }
    case T.left:
      forgetParticipant(message.participantId);
      break;
    case T.scene:
      state.scene = message.document;
      state.sceneVersion = message.version;
      readScene();
      break;
    case T.sceneUpdated:
      // Simplest correct reading of section 3: refetch (the update's operations are not
      // replayed here).
      send({ type: T.sceneGet });
      break;
    case T.resumed:
      if (message.participantId) state.speaker = message.participantId;
      break;
    default:
      break;
  }
}

function onCapabilities(message) {
  if (message.type !== T.capabilities) {
    setStatus(`hello answered with ${shortType(message.type)}`);
    return;
  }
  state.capabilities = message;
  state.sessionId = message.sessionId ?? null;
  setStatus("in the call");
  send({ type: T.sceneGet });
  if (state.voice.state === "asked") {
    const agreed = Array.isArray(message.animationInputs) && message.animationInputs.includes("voice");
    if (agreed) startVoice();
    else {
      state.voice.state = "refused";
      setStatus("in the call (the MF did not agree the voice input: no microphone sent)");
    }
  }
}

// ---------------------------------------------------------------------------- voice

/** The AudioWorklet that hands the microphone's samples to the page, ~10 ms at a time. */
const CAPTURE_WORKLET = `
class AvatarMfCapture extends AudioWorkletProcessor {
  constructor() { super(); this.block = new Float32Array(512); this.filled = 0; }
  process(inputs) {
    const samples = inputs[0] && inputs[0][0];
    if (samples) {
      for (let i = 0; i < samples.length; i += 1) {
        this.block[this.filled++] = samples[i];
        if (this.filled === this.block.length) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(512);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("avatar-mf-capture", AvatarMfCapture);
`;

async function startVoice() {
  const voice = state.voice;
  voice.state = "starting";
  render();
  try {
    if (!navigator.mediaDevices) throw new Error("no media devices here (the page needs https or localhost)");
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
    const context = new AudioContext();
    capture = { context, stream, node: null };
    voice.inputRate = context.sampleRate;
    const resampler = new Resampler(context.sampleRate);
    const packetizer = new AudioPacketizer();
    voice.firstSequence = packetizer.firstSequence;
    voice.firstTimestamp = packetizer.firstTimestamp;
    const feed = (samples) => {
      if (capture === null || audio === null) return;
      for (const message of packetizer.push(resampler.push(samples))) sendAudio(message);
    };
    const source = context.createMediaStreamSource(stream);
    const mute = context.createGain();
    mute.gain.value = 0;
    mute.connect(context.destination);
    if (context.audioWorklet && typeof AudioWorkletNode === "function") {
      const url = URL.createObjectURL(new Blob([CAPTURE_WORKLET], { type: "text/javascript" }));
      await context.audioWorklet.addModule(url);
      URL.revokeObjectURL(url);
      const node = new AudioWorkletNode(context, "avatar-mf-capture", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1 });
      node.port.onmessage = (event) => feed(event.data);
      source.connect(node).connect(mute);
      capture.node = node;
      voice.capture = "audioworklet";
    } else {
      const node = context.createScriptProcessor(1024, 1, 1);
      node.onaudioprocess = (event) => feed(event.inputBuffer.getChannelData(0));
      source.connect(node).connect(mute);
      capture.node = node;
      voice.capture = "scriptprocessor";
    }
    if (capture === null) return; // the channel closed meanwhile
    voice.state = "on";
    if (context.state === "running") {
      setStatus("in the call: sending the microphone");
    } else {
      // A browser may hold audio until the person interacts with the page (autoplay policy).
      context.resume().catch(() => {});
      document.addEventListener("click", () => context.resume().catch(() => {}), { once: true });
      setStatus("in the call: click the page to start sending the microphone");
    }
  } catch (err) {
    stopVoice("failed");
    voice.error = String(err && err.message ? err.message : err);
    setStatus(`in the call (no microphone: ${voice.error})`);
  }
}

function sendAudio(message) {
  const voice = state.voice;
  const channel = audio.channel;
  if (channel.readyState !== "open" || channel.bufferedAmount > AUDIO_HIGH_WATER) {
    voice.dropped += 1;
    return;
  }
  try {
    channel.send(message);
    voice.sent += 1;
    audio.sent += 1;
  } catch (err) {
    voice.dropped += 1;
  }
}

function stopVoice(why) {
  const current = capture;
  capture = null;
  if (current) {
    for (const track of current.stream.getTracks()) track.stop();
    if (current.node) current.node.disconnect();
    current.context.close().catch(() => {});
  }
  if (state.voice.state !== "off") state.voice.state = why;
}

function voiceRefused(message) {
  const refusal = { code: message.code, message: message.message ?? null };
  state.voice.refusals.push(refusal);
  // unsupported (the hello did not agree voice) and conflict (the voice comes from RTP) hold
  // for the session: stop capturing. bad-audio concerns one message: go on.
  if (refusal.code !== "bad-audio") stopVoice("refused");
  setStatus(`voice refused by the MF: ${refusal.code}${refusal.message ? ` (${refusal.message})` : ""}`);
}

function readScene() {
  const nodes = state.scene && Array.isArray(state.scene.nodes) ? state.scene.nodes : [];
  for (const node of nodes) {
    const extras = node && typeof node.extras === "object" && node.extras ? node.extras : null;
    if (!extras || typeof extras.participant !== "string" || extras.participant === state.sessionId) continue;
    const known = state.participants.get(extras.participant) || {
      participantId: extras.participant, displayName: node.name ?? null, avatarId: null,
    };
    if (typeof extras.avatarId === "string") known.avatarId = extras.avatarId;
    if (!known.displayName && node.name) known.displayName = node.name;
    state.participants.set(extras.participant, known);
    if (known.avatarId && state.avatars.has(known.avatarId)) state.avatars.get(known.avatarId).participantId = extras.participant;
  }
}

function forgetParticipant(participantId) {
  const known = state.participants.get(participantId);
  state.participants.delete(participantId);
  if (!known || !known.avatarId) return;
  const stillUsed = [...state.participants.values()].some((p) => p.avatarId === known.avatarId);
  if (!stillUsed && stage) {
    stage.remove(known.avatarId);
    state.avatars.delete(known.avatarId);
  }
}

// ---------------------------------------------------------------------------- transfers in

function onOffer(offer) {
  const receiver = new TransferReceiver(offer, { maxSize: MAX_TRANSFER_SIZE });
  const avatar = { avatarId: offer.avatarId, state: "receiving", participantId: ownerOf(offer.avatarId), reason: null };
  state.avatars.set(offer.avatarId, avatar);
  if (receiver.refusal) {
    avatar.state = "refused";
    send({ type: T.failed, transferId: offer.transferId, ...receiver.refusal });
    return;
  }
  receivers.set(receiver.tag, receiver);
  send({ type: T.accept, inReplyTo: offer.id, transferId: offer.transferId, resumeFrom: 0 });
}

function ownerOf(avatarId) {
  for (const p of state.participants.values()) if (p.avatarId === avatarId) return p.participantId;
  return null;
}

function onChunk(bytes) {
  const chunk = parseChunk(bytes);
  if (!chunk) {
    note("a binary message that is not a transfer chunk");
    return;
  }
  const receiver = receivers.get(chunk.tag);
  if (!receiver) return; // a chunk of a transfer already finished or never offered
  const { offer } = receiver;
  const event = receiver.receive(chunk);
  const avatar = state.avatars.get(offer.avatarId);
  if (event.kind === "gap") {
    send({ type: T.accept, transferId: offer.transferId, resumeFrom: event.resumeFrom });
  } else if (event.kind === "failed") {
    receivers.delete(receiver.tag);
    if (avatar) { avatar.state = "failed"; avatar.reason = event.code; }
    send({ type: T.failed, transferId: offer.transferId, code: event.code, reason: event.reason });
  } else if (event.kind === "complete") {
    receivers.delete(receiver.tag);
    send({ type: T.complete, transferId: offer.transferId, sha256: event.sha256 });
    if (avatar) avatar.state = "received";
    showAvatar(offer, event.payload);
  }
}

async function glbOf(contentType, payload) {
  if (contentType === GLB) return payload;
  if (contentType !== ARF_ZIP) throw new Error(`cannot show ${contentType}`);
  const document = JSON.parse(new TextDecoder().decode(await zipRead(payload, "arf.json")));
  const data = (document.data || []).find((d) => d && d.type === GLB && typeof d.uri === "string");
  if (!data) throw new Error("the ARF container names no GLB");
  return zipRead(payload, data.uri);
}

async function showAvatar(offer, payload) {
  const avatar = state.avatars.get(offer.avatarId);
  try {
    const glb = await glbOf(offer.contentType, payload);
    await stage.show(offer.avatarId, glb, offer.avatarId);
    if (avatar) avatar.state = "shown";
    state.lastShown = offer.avatarId;
  } catch (err) {
    if (avatar) { avatar.state = "unusable"; avatar.reason = String(err); }
    note(`avatar ${offer.avatarId}: ${err}`);
  }
  render();
}

// ---------------------------------------------------------------------------- transfers out

async function upload(file) {
  const payload = new Uint8Array(await file.arrayBuffer());
  const contentType = /\.glb$/i.test(file.name) ? GLB : ARF_ZIP;
  const limit = Math.min(MAX_MESSAGE_SIZE, (state.capabilities && state.capabilities.maxMessageSize) || MAX_MESSAGE_SIZE);
  const chunkSize = limit - CHUNK_HEADER_SIZE;
  const transferId = `${nextId()}-tx`;
  const avatarId = `upload:${file.name.replace(/[^\x21-\x7e]/g, "_").slice(0, 200) || "avatar"}`;
  uploads.set(transferId, { payload, chunkSize, state: "offered" });
  send({
    type: T.offer,
    transferId,
    avatarId,
    contentType,
    totalSize: payload.length,
    sha256: sha256Hex(payload),
    chunkSize,
    streamId: metadata.channel.id,
  });
}

async function onUploadAccept(accept) {
  const up = uploads.get(accept.transferId);
  if (!up) return;
  up.generation = (up.generation || 0) + 1;
  const generation = up.generation;
  const channel = metadata.channel;
  for (const chunk of uploadChunks(up.payload, accept.transferId, up.chunkSize, accept.resumeFrom || 0)) {
    while (channel.bufferedAmount > HIGH_WATER) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (up.generation !== generation || channel.readyState !== "open") return; // a newer accept restarted it
    channel.send(chunk);
  }
  up.state = "sent";
}

function onTransferResult(message) {
  const up = uploads.get(message.transferId);
  if (up) {
    up.state = message.type === T.complete ? "complete" : `failed: ${message.code}`;
    if (message.type === T.complete) uploads.delete(message.transferId);
    return;
  }
  const avatar = [...state.avatars.values()].find((a) => a.transferId === message.transferId);
  if (avatar && message.type === T.failed) avatar.state = `failed: ${message.code}`;
}

// ---------------------------------------------------------------------------- animation

function onUnit(bytes) {
  let unit;
  try {
    unit = decodeUnit(bytes);
  } catch (err) {
    state.unitErrors += 1;
    note(`undecodable animation unit: ${err.message}`);
    return;
  }
  state.units[unit.type] = (state.units[unit.type] || 0) + 1;
  if (unit.type !== "BLENDSHAPE" && unit.type !== "JOINT") return;
  const key = animatedAvatar();
  if (key && stage) stage.apply(key, unit);
}

/** The avatar the units drive: the speaker's (latest animation resumed), else the newest. */
function animatedAvatar() {
  const speaker = state.speaker && state.participants.get(state.speaker);
  if (speaker && speaker.avatarId && stage.avatars.has(speaker.avatarId)) return speaker.avatarId;
  return state.lastShown;
}

// ---------------------------------------------------------------------------- user actions

function say(text, language = "en-US") {
  if (!text) return null;
  return send({ type: T.text, text, language });
}

function select(avatarId) {
  if (!avatarId) return null;
  return send({ type: T.select, avatarId }, (reply) => {
    state.selected = reply.type === T.selected ? reply.avatarId : null;
  });
}

function generate(name, seed) {
  const message = { type: T.generate };
  if (name) message.name = name;
  if (Number.isInteger(seed)) message.seed = seed;
  return send(message, (reply) => {
    state.selected = reply.type === T.selected ? reply.avatarId : null;
    if (state.selected) $("avatar-id").value = state.selected;
  });
}

// ---------------------------------------------------------------------------- view

function note(text) {
  state.notes.push(text);
  log(`! ${text}`, false);
}

function log(text, outgoing) {
  const list = $("log");
  if (!list) return;
  const item = document.createElement("li");
  item.className = outgoing ? "out" : "in";
  const shown = text.length > LOG_TEXT_MAX ? `${text.slice(0, LOG_TEXT_MAX)}…` : text;
  item.textContent = `${outgoing ? "→" : "←"} ${shown}`;
  list.prepend(item);
  while (list.children.length > LOG_LINES) list.lastElementChild.remove();
}

function setStatus(text) {
  state.status = text;
  render();
}

function render() {
  const status = $("call-status");
  if (!status) return;
  status.textContent = state.status;
  const list = $("participants");
  list.replaceChildren();
  for (const p of state.participants.values()) {
    const item = document.createElement("li");
    const avatar = p.avatarId ? state.avatars.get(p.avatarId) : null;
    item.textContent = `${p.displayName || p.participantId}` +
      (p.avatarId ? ` — ${p.avatarId}${avatar ? ` (${avatar.state})` : ""}` : " — no avatar");
    list.append(item);
  }
  $("no-participants").hidden = state.participants.size > 0;
  $("selected").textContent = state.selected || "—";
  $("units").textContent = Object.keys(state.units).length
    ? Object.entries(state.units).map(([name, count]) => `${name} ${count}`).join(" · ")
    : "—";
  const ready = state.capabilities !== null && metadata && metadata.channel.readyState === "open";
  for (const id of ["say", "select", "generate", "upload"]) $(id).disabled = !ready;
}

function summary() {
  return {
    status: state.status,
    sessionId: state.sessionId,
    capabilities: state.capabilities,
    participants: [...state.participants.values()],
    avatars: [...state.avatars.values()],
    shown: stage ? [...stage.avatars.keys()] : [],
    selected: state.selected,
    voice: { ...state.voice, refusals: [...state.voice.refusals] },
    units: { ...state.units },
    unitsApplied: stage ? stage.unitsApplied : 0,
    unitErrors: state.unitErrors,
    errors: state.errors,
    refusals: state.refusals,
    sent: state.sent,
    received: state.received,
    notes: state.notes,
    channels: channels.map((e) => ({
      id: e.channel.id, label: e.channel.label, protocol: e.protocol,
      state: e.channel.readyState, received: e.received, sent: e.sent,
    })),
  };
}

function start() {
  stage = new AvatarStage($("stage"));
  $("say-form").addEventListener("submit", (event) => {
    event.preventDefault();
    say($("say-text").value.trim());
  });
  $("select-form").addEventListener("submit", (event) => {
    event.preventDefault();
    select($("avatar-id").value.trim());
  });
  $("generate").addEventListener("click", () => generate("browser", undefined));
  $("upload").addEventListener("click", () => $("upload-file").click());
  $("upload-file").addEventListener("change", () => {
    const file = $("upload-file").files[0];
    if (file) upload(file);
  });
  render();
  window.avatarApp = Object.freeze({
    attach, connect, say, select, generate, upload,
    state: summary,
    mouthRect: (key) => stage.mouthRect(key ?? state.lastShown),
    METADATA_PROTOCOL, ANIMATION_PROTOCOL,
  });
  window.dispatchEvent(new Event("avatar-app-ready"));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
