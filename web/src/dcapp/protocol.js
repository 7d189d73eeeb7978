/*
 * The MF's metadata protocol names (docs/protocol.md section 3; TS 26.264 CR 0017 for the
 * subprotocols and the animation:control names, the product's own pattern for the rest). One
 * place to change if 3GPP renames them, as avatar_mf/protocol/names.py on the MF side.
 */

export const METADATA_PROTOCOL = "3gpp-ar-metadata";
export const ANIMATION_PROTOCOL = "3gpp-ar-animation";
export const TRANSFER_PROTOCOL = "avatar-mf-transfer";
export const PROFILE_FACE = "arf-face-v1";
export const ARF_ZIP = "application/vnd.arf+zip";
export const GLB = "model/gltf-binary";

const P = "urn:3gpp:avatar:v1:";
export const T = Object.freeze({
  hello: `${P}session:hello`,
  capabilities: `${P}session:capabilities`,
  select: `${P}avatar:select`,
  generate: `${P}avatar:generate`,
  selected: `${P}avatar:selected`,
  refused: `${P}avatar:refused`,
  offer: `${P}avatar:transfer:offer`,
  accept: `${P}avatar:transfer:accept`,
  complete: `${P}avatar:transfer:complete`,
  failed: `${P}avatar:transfer:failed`,
  start: `${P}animation:control:start`,
  stop: `${P}animation:control:stop`,
  stopped: `${P}animation:control:stopped`,
  resumed: `${P}animation:control:resumed`,
  text: `${P}animation:text`,
  sceneGet: `${P}scene:get`,
  scene: `${P}scene:description`,
  sceneUpdate: `${P}scene:update`,
  sceneUpdated: `${P}scene:updated`,
  joined: `${P}participant:joined`,
  left: `${P}participant:left`,
  error: `${P}error`,
});

export function shortType(type) {
  return typeof type === "string" && type.startsWith(P) ? type.slice(P.length) : String(type);
}
