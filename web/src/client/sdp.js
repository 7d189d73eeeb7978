/*
 * The browser's SDP offer made an IMS data channel offer: one `a=dcmap` line per pre-negotiated
 * channel (RFC 8864 section 5.1, TS 26.114 6.2.10) in the `m=application ... UDP/DTLS/SCTP
 * webrtc-datachannel` section, as the MF's test UE offers them (src/avatar_mf/ue/offer.py).
 * The browser writes the transport (ICE, DTLS fingerprint, sctp-port, max-message-size); the
 * MF learns the channels from the dcmap lines, with no DCEP.
 */

/**
 * The a=dcmap value of a channel: `<id> label="...";subprotocol="...";ordered=1`, with
 * `max-retr` or `max-time` for a partially reliable one (RFC 8864 5.1.1).
 */
export function dcmapValue({ id, label, protocol, ordered = true, maxTime, maxRetr }) {
  const parts = [];
  if (label) parts.push(`label="${label}"`);
  if (protocol) parts.push(`subprotocol="${protocol}"`);
  parts.push(`ordered=${ordered ? 1 : 0}`);
  if (maxRetr !== undefined) parts.push(`max-retr=${maxRetr}`);
  if (maxTime !== undefined) parts.push(`max-time=${maxTime}`);
  return `${id} ${parts.join(";")}`;
}

/** `sdp` with a=dcmap lines for `channels` added to its first data channel m-section. */
export function addDcmaps(sdp, channels) {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(eol);
  if (lines[lines.length - 1] === "") lines.pop();
  const start = lines.findIndex((l) => /^m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel/i.test(l));
  if (start < 0) throw new Error("the offer has no data channel m-line");
  let end = lines.findIndex((l, i) => i > start && l.startsWith("m="));
  if (end < 0) end = lines.length;
  const kept = lines.slice(start, end).filter((l) => !l.startsWith("a=dcmap:"));
  const added = channels.map((c) => `a=dcmap:${dcmapValue(c)}`);
  const out = [...lines.slice(0, start), ...kept, ...added, ...lines.slice(end)];
  return out.join(eol) + eol;
}
