/*
 * The browser avatar client: a web page that places a SIP call over WebSocket (RFC 7118, JsSIP)
 * to a room of the avatar MF, offering the IMS data channels (ICE + DTLS + SCTP, pre-negotiated
 * with a=dcmap, as the MF's test UE offers them), then loads the data channel application the
 * way TS 26.114 6.2.10 says a UE does: over HTTP on the bootstrap channel (stream 0), and runs
 * it in a frame, handing it the avatar channels (GSMA TS.66-style RTCDataChannel objects).
 *
 * Nothing is registered (the MF needs no registrar). Settings come from the form and the
 * page's query: ?room=&user=&transport=&ws=&domain=&voice=dc&call=1 (call=1 dials at once;
 * voice=dc also offers the audio channel, `avatar-mf-audio` on stream 1006, unordered and
 * never retransmitted as the test UE's `--audio-dc`: the application then asks `voice` in its
 * hello and sends the microphone on it, docs/protocol.md section 7). The SIP
 * WebSocket URL is `ws` when given, else built on the page's host from the MF's config.json
 * (its ws and wss ports): `transport` (ws or wss) picks one, else wss for an https page, else
 * ws when the MF listens on it; domain defaults to the page host.
 *
 * window.avatarClient.state() is a JSON summary (for people and tests); .app() the loaded
 * application's avatarApp.
 */

import JsSIP from "jssip";
import { DataChannelHttp } from "./http.js";
import { addDcmaps } from "./sdp.js";

/** The channels offered: the local bootstrap channels and the avatar channels (offer.py). */
const CHANNELS = Object.freeze([
  { id: 0, protocol: "http" },
  { id: 10, protocol: "http" },
  { id: 1000, label: "avatar-meta", protocol: "3gpp-ar-metadata" },
  { id: 1002, label: "avatar-anim-1", protocol: "3gpp-ar-animation" },
]);
/** The audio channel offered with ?voice=dc (src/avatar_mf/ue/dc_audio.py AUDIO_STREAM). */
const AUDIO_CHANNEL = Object.freeze({
  id: 1006, label: "avatar-audio", protocol: "avatar-mf-audio", ordered: false, maxRetr: 0,
});
const BOOTSTRAP_STREAM = 0;
const APP_PROTOCOLS = new Set([
  "3gpp-ar-metadata", "3gpp-ar-animation", "avatar-mf-transfer", "avatar-mf-audio",
]);

const $ = (id) => document.getElementById(id);

const state = {
  status: "idle",
  ws: null,
  sip: "disconnected",
  call: null,
  endCause: null,
  channels: {},
  bootstrap: [],
  app: "not loaded",
  errors: [],
};

let ua = null;
let session = null;
const ports = [];

/**
 * A data channel as the application sees it: the RTCDataChannel's surface, with messages that
 * arrive before the application listens kept until it does (the app is still downloading
 * while the MF may already talk on the metadata channel).
 */
class ChannelPort extends EventTarget {
  constructor(channel) {
    super();
    this.channel = channel;
    this.queue = [];
    this.listening = false;
    channel.addEventListener("message", (event) => {
      if (this.listening) this.dispatchEvent(new MessageEvent("message", { data: event.data }));
      else this.queue.push(event.data);
    });
    for (const name of ["open", "close", "error", "bufferedamountlow"]) {
      channel.addEventListener(name, () => this.dispatchEvent(new Event(name)));
    }
  }

  get id() { return this.channel.id; }
  get label() { return this.channel.label; }
  get protocol() { return this.channel.protocol; }
  get readyState() { return this.channel.readyState; }
  get bufferedAmount() { return this.channel.bufferedAmount; }
  get binaryType() { return this.channel.binaryType; }
  set binaryType(value) { this.channel.binaryType = value; }
  send(data) { this.channel.send(data); }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    if (type === "message" && !this.listening) {
      this.listening = true;
      const queued = this.queue.splice(0);
      setTimeout(() => {
        for (const data of queued) this.dispatchEvent(new MessageEvent("message", { data }));
      }, 0);
    }
  }
}

/** The SIP WebSocket URL: ?ws=, else the MF's ws or wss port (config.json) on this host. */
function socketUrl(query, config) {
  if (query.get("ws")) return query.get("ws");
  const ports = (config && config.sip) || {};
  const host = location.hostname || "127.0.0.1";
  const wanted = query.get("transport") ||
    (location.protocol === "https:" || !ports.ws ? "wss" : "ws");
  const port = ports[wanted];
  if (!port) throw new Error(`the MF has no ${wanted} listener (sip.transports)`);
  return `${wanted}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function settings(config) {
  const query = new URLSearchParams(location.search);
  const host = location.hostname || "127.0.0.1";
  return {
    room: $("room").value || query.get("room") || "lab-room",
    user: $("user").value || query.get("user") || `browser-${Math.floor(Math.random() * 1e4)}`,
    ws: socketUrl(query, config),
    domain: query.get("domain") || host,
    channels: query.get("voice") === "dc" ? [...CHANNELS, AUDIO_CHANNEL] : CHANNELS,
  };
}

function setStatus(text) {
  state.status = text;
  render();
}

function fail(text) {
  state.errors.push(text);
  setStatus(text);
}

function createChannels(pc, specs) {
  for (const spec of specs) {
    const options = { negotiated: true, id: spec.id, protocol: spec.protocol, ordered: spec.ordered !== false };
    if (spec.maxRetr !== undefined) options.maxRetransmits = spec.maxRetr;
    const channel = pc.createDataChannel(spec.label || `bootstrap-${spec.id}`, options);
    channel.binaryType = "arraybuffer";
    const entry = { id: spec.id, protocol: spec.protocol, state: "connecting" };
    state.channels[spec.id] = entry;
    channel.addEventListener("open", () => { entry.state = "open"; render(); });
    channel.addEventListener("close", () => { entry.state = "closed"; render(); });
    if (spec.id === BOOTSTRAP_STREAM) {
      const http = new DataChannelHttp(channel);
      channel.addEventListener("open", () => loadApp(http));
    } else if (APP_PROTOCOLS.has(spec.protocol)) {
      ports.push(new ChannelPort(channel));
    }
  }
}

function call(config) {
  if (session) return;
  let s;
  try {
    s = settings(config);
  } catch (err) {
    fail(err.message);
    return;
  }
  $("room").value = s.room;
  $("user").value = s.user;
  state.ws = s.ws;
  state.endCause = null;
  const socket = new JsSIP.WebSocketInterface(s.ws);
  ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${s.user}@${s.domain}`,
    register: false,
    session_timers: false,
    user_agent: "avatar-mf-browser-client",
  });
  ua.on("connected", () => { state.sip = "connected"; render(); });
  ua.on("disconnected", (event) => {
    state.sip = "disconnected";
    if (event && event.error && session) {
      // The socket failed (refused, Origin not allowed, or for wss a certificate the
      // browser does not trust: docs/browser.md).
      fail(`the SIP WebSocket ${s.ws} failed`);
    }
    render();
  });
  ua.start();
  setStatus(`calling sip:${s.room}@${s.domain} over ${s.ws}`);
  session = ua.call(`sip:${s.room}@${s.domain}`, {
    mediaConstraints: { audio: false, video: false },
    pcConfig: { iceServers: [], bundlePolicy: "balanced", rtcpMuxPolicy: "require" },
    eventHandlers: {
      peerconnection: (event) => createChannels(event.peerconnection, s.channels),
      sdp: (event) => {
        if (event.originator === "local" && event.type === "offer") event.sdp = addDcmaps(event.sdp, s.channels);
      },
      progress: () => { state.call = "ringing"; render(); },
      confirmed: () => { state.call = "confirmed"; setStatus("in the call: loading the application"); },
      ended: (event) => ended(event.cause),
      failed: (event) => ended(event.cause, true),
    },
  });
  state.call = "calling";
  render();
}

function ended(cause, failed = false) {
  state.call = failed ? "failed" : "ended";
  state.endCause = cause;
  setStatus(failed ? `call failed: ${cause}` : `call ended: ${cause}`);
  session = null;
  if (ua) ua.stop();
  ua = null;
}

function hangUp() {
  if (session) session.terminate();
}

// ---------------------------------------------------------------------------- the app

async function loadApp(http) {
  state.app = "downloading";
  render();
  try {
    const index = await http.get("/");
    state.bootstrap = http.log;
    if (index.status !== 200) throw new Error(`GET / answered ${index.status}`);
    const doc = new DOMParser().parseFromString(new TextDecoder().decode(index.body), "text/html");
    const refs = [
      ...[...doc.querySelectorAll("script[src]")].map((el) => [el, "src"]),
      ...[...doc.querySelectorAll("link[href]")].map((el) => [el, "href"]),
    ];
    for (const [el, attribute] of refs) {
      const target = el.getAttribute(attribute);
      if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(target)) continue; // not the app's own file
      const path = new URL(target, "http://mf.invalid/").pathname;
      const reply = await http.get(path);
      if (reply.status !== 200) throw new Error(`GET ${path} answered ${reply.status}`);
      const type = (reply.headers.get("content-type") || "application/octet-stream").split(";")[0];
      el.setAttribute(attribute, URL.createObjectURL(new Blob([reply.body], { type })));
    }
    state.bootstrap = http.log;
    const html = `<!doctype html>\n${doc.documentElement.outerHTML}`;
    const frame = $("app");
    frame.addEventListener("load", () => attachApp(frame), { once: true });
    frame.src = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    state.app = "starting";
  } catch (err) {
    state.app = "failed";
    fail(`the application did not load: ${err.message}`);
  }
  render();
}

function attachApp(frame) {
  const app = frame.contentWindow && frame.contentWindow.avatarApp;
  if (!app) {
    state.app = "failed";
    fail("the application has no avatarApp");
    return;
  }
  for (const port of ports) app.attach(port);
  state.app = "running";
  setStatus("in the call");
}

// ---------------------------------------------------------------------------- view

function render() {
  $("status").textContent = state.status;
  $("call").disabled = session !== null;
  $("hangup").disabled = session === null;
  $("channels").textContent = Object.values(state.channels)
    .map((c) => `${c.id} ${c.protocol} ${c.state}`).join(" · ") || "—";
}

async function loadConfig() {
  try {
    const reply = await fetch("config.json", { cache: "no-cache" });
    if (reply.ok) return await reply.json();
  } catch (err) {
    state.errors.push(`config.json: ${err.message}`);
  }
  return {};
}

async function start() {
  const query = new URLSearchParams(location.search);
  const config = await loadConfig();
  $("room").value = query.get("room") || "";
  $("user").value = query.get("user") || "";
  $("call").addEventListener("click", () => call(config));
  $("hangup").addEventListener("click", hangUp);
  window.avatarClient = Object.freeze({
    state: () => JSON.parse(JSON.stringify(state)),
    app: () => ($("app").contentWindow ? $("app").contentWindow.avatarApp : undefined),
    call: () => call(config),
    hangUp,
  });
  render();
  if (query.get("call") === "1") call(config);
}

start();
