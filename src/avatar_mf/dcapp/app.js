/*
 * Avatar call: the data channel application the avatar MF ships for its bootstrap channels.
 *
 * The UE downloads this page over a bootstrap data channel (3GPP TS 26.114 6.2.10) and runs it
 * in its browser engine. It shows the call, lists the avatar data channels, counts the
 * animation units arriving on `3gpp-ar-animation` channels, and talks the avatar metadata
 * subprotocol on the `3gpp-ar-metadata` channel (UTF-8 JSON text messages).
 *
 * Binding to the UE's data channels. The IMS data channel API (GSMA TS.66) adapts W3C WebRTC:
 * the app gets RTCPeerConnection / RTCDataChannel-shaped objects. The host (or a shim) hands
 * them over with one of:
 *   avatarApp.connect(peerConnection)  // listens for its "datachannel" events
 *   avatarApp.attach(dataChannel)      // one channel: label, protocol, id, readyState, send()
 * A "avatar-app-ready" event is dispatched on window once avatarApp exists.
 *
 * Unsettled (TS 26.264 CR 0017, 2026): subprotocol names, the control URNs and the JSON field
 * carrying them ("type") are kept in the constants below.
 */
"use strict";

(function () {
  const METADATA_PROTOCOL = "3gpp-ar-metadata";
  const ANIMATION_PROTOCOL = "3gpp-ar-animation";
  const CONTROL_STOPPED = "urn:3gpp:avatar:v1:animation:control:stopped";
  const CONTROL_RESUMED = "urn:3gpp:avatar:v1:animation:control:resumed";
  const MESSAGE_TYPE_FIELD = "type";
  const UNIT_TYPES = ["CONFIG", "BLENDSHAPE", "JOINT", "LANDMARK"];
  const LOG_LINES = 30;
  const LOG_TEXT_MAX = 240;

  const $ = (id) => document.getElementById(id);
  const channels = new Map(); // stream id (or a counter) -> entry
  const units = new Map(); // unit type name -> count
  const avatars = new Set();
  let nextKey = 0;
  let metadata = null;
  let startedAt = null;
  let animation = "unknown";
  let profile = "";

  function isAvatarChannel(protocol) {
    return protocol === METADATA_PROTOCOL || protocol === ANIMATION_PROTOCOL;
  }

  function attach(channel) {
    if (!channel || typeof channel.send !== "function") {
      throw new TypeError("avatarApp.attach expects an RTCDataChannel-like object");
    }
    const protocol = String(channel.protocol || "");
    if (!isAvatarChannel(protocol)) return false;
    const entry = { channel, protocol, received: 0, sent: 0 };
    channels.set(channel.id ?? `#${nextKey++}`, entry);
    if (protocol === ANIMATION_PROTOCOL) channel.binaryType = "arraybuffer";
    if (protocol === METADATA_PROTOCOL) metadata = entry;
    channel.addEventListener("open", opened);
    channel.addEventListener("close", () => render());
    channel.addEventListener("message", (event) => received(entry, event.data));
    if (channel.readyState === "open") opened();
    render();
    return true;
  }

  function connect(peerConnection) {
    peerConnection.addEventListener("datachannel", (event) => attach(event.channel));
    peerConnection.addEventListener("connectionstatechange", () => {
      if (["closed", "failed"].includes(peerConnection.connectionState)) ended();
    });
  }

  function opened() {
    if (startedAt === null) startedAt = Date.now();
    setStatus("Avatar call in progress", "live");
    render();
  }

  function ended() {
    setStatus("Call ended", "ended");
    startedAt = null;
    render();
  }

  function received(entry, data) {
    entry.received += 1;
    if (entry.protocol === METADATA_PROTOCOL) {
      onMetadata(typeof data === "string" ? data : new TextDecoder().decode(data));
    } else if (data instanceof ArrayBuffer) {
      countUnits(new DataView(data));
    }
    render();
  }

  function onMetadata(text) {
    log(text, false);
    let message;
    try {
      message = JSON.parse(text);
    } catch (err) {
      return;
    }
    if (!message || typeof message !== "object") return;
    const type = message[MESSAGE_TYPE_FIELD];
    if (type === CONTROL_STOPPED) animation = "stopped";
    if (type === CONTROL_RESUMED) animation = "running";
    for (const id of [message.avatarId, ...(Array.isArray(message.avatars) ? message.avatars : [])]) {
      if (typeof id === "string" && id) avatars.add(id);
    }
  }

  // ARF animation stream (ISO/IEC 23090-39): units of 1 byte (type << 1), uint32 length,
  // payload; big-endian. Unknown unit types are skipped. One or more units per message.
  function countUnits(view) {
    let offset = 0;
    while (offset + 5 <= view.byteLength) {
      const type = view.getUint8(offset) >> 1;
      const length = view.getUint32(offset + 1);
      const payload = offset + 5;
      if (payload + length > view.byteLength) break;
      const name = UNIT_TYPES[type] || "other";
      units.set(name, (units.get(name) || 0) + 1);
      if (type === 0 && length >= 5) {
        const size = view.getUint8(payload + 4);
        if (payload + 5 + size <= view.byteLength) {
          const bytes = new Uint8Array(view.buffer, view.byteOffset + payload + 5, size);
          profile = new TextDecoder().decode(bytes);
        }
      }
      if (animation === "unknown") animation = "running";
      offset = payload + length;
    }
  }

  function sendControl(type) {
    if (!metadata || metadata.channel.readyState !== "open") return;
    const text = JSON.stringify({ [MESSAGE_TYPE_FIELD]: type });
    metadata.channel.send(text);
    metadata.sent += 1;
    animation = type === CONTROL_STOPPED ? "stopped" : "running";
    log(text, true);
    render();
  }

  function log(text, outgoing) {
    const item = document.createElement("li");
    item.className = outgoing ? "out" : "in";
    const shown = text.length > LOG_TEXT_MAX ? `${text.slice(0, LOG_TEXT_MAX)}…` : text;
    item.textContent = `${outgoing ? "→" : "←"} ${shown}`;
    const list = $("log");
    list.prepend(item);
    while (list.children.length > LOG_LINES) list.lastElementChild.remove();
  }

  function setStatus(text, kind) {
    const status = $("call-status");
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  function cell(text, numeric) {
    const td = document.createElement("td");
    td.textContent = String(text);
    if (numeric) td.className = "num";
    return td;
  }

  function render() {
    const body = $("channels");
    body.replaceChildren();
    for (const [key, entry] of channels) {
      const row = document.createElement("tr");
      const ch = entry.channel;
      row.append(
        cell(typeof key === "number" ? key : "—"),
        cell(ch.label || "—"),
        cell(entry.protocol),
        cell(ch.readyState || "—"),
        cell(entry.received, true),
        cell(entry.sent, true),
      );
      body.append(row);
    }
    $("no-channels").hidden = channels.size > 0;
    $("avatar-ids").textContent = avatars.size ? [...avatars].join(", ") : "—";
    $("animation-state").textContent = animation;
    $("animation-profile").textContent = profile || "—";
    $("animation-units").textContent = units.size
      ? [...units].map(([name, count]) => `${name} ${count}`).join(" · ")
      : "—";
    const canSend = metadata !== null && metadata.channel.readyState === "open";
    $("pause").disabled = !canSend || animation === "stopped";
    $("resume").disabled = !canSend || animation !== "stopped";
  }

  function tick() {
    if (startedAt === null) {
      $("call-time").textContent = "";
      return;
    }
    const seconds = Math.floor((Date.now() - startedAt) / 1000);
    const mm = String(Math.floor(seconds / 60)).padStart(2, "0");
    const ss = String(seconds % 60).padStart(2, "0");
    $("call-time").textContent = `${mm}:${ss}`;
  }

  function start() {
    $("pause").addEventListener("click", () => sendControl(CONTROL_STOPPED));
    $("resume").addEventListener("click", () => sendControl(CONTROL_RESUMED));
    setInterval(tick, 1000);
    render();
    window.dispatchEvent(new Event("avatar-app-ready"));
  }

  window.avatarApp = Object.freeze({ attach, connect, METADATA_PROTOCOL, ANIMATION_PROTOCOL });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
