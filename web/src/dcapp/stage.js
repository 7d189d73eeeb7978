/*
 * The 3D stage: the other participants' base avatars (GLB, glTF 2.0 with a skin and morph
 * targets, docs/avatar-format.md) rendered with three.js and animated by ARF animation units
 * (docs/protocol.md section 5):
 *
 * - BLENDSHAPE: entry index i of set 0 is morph target i of the avatar's mesh (the ARF
 *   blendshape set lists the GLB's target names in order); the weight goes to
 *   morphTargetInfluences[i].
 * - JOINT: entry index i is joint i of the skin (skin order = the ARF skeleton's joints); the
 *   row-major local matrix (translation in elements 3, 7, 11) becomes the bone's position,
 *   rotation and scale.
 *
 * Frames are drawn only when something changed (a unit, a new avatar, a resize), so an idle
 * call costs no rendering. The drawing buffer is preserved so that a frame can be read back
 * (screenshots, tests).
 */

import {
  AmbientLight,
  Box3,
  Color,
  DirectionalLight,
  HemisphereLight,
  Matrix4,
  PerspectiveCamera,
  Scene,
  Vector3,
  WebGLRenderer,
} from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

const SPACING = 1.4; // tile width in avatar widths

function parseGlb(bytes) {
  return new Promise((resolve, reject) => {
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    new GLTFLoader().parse(buffer, "", resolve, reject);
  });
}

export class AvatarStage {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(1);
    this.scene = new Scene();
    this.scene.background = new Color(0x1d2430);
    this.camera = new PerspectiveCamera(30, 1, 0.01, 100);
    this.scene.add(new HemisphereLight(0xffffff, 0x445566, 1.6));
    this.scene.add(new AmbientLight(0xffffff, 0.3));
    const key = new DirectionalLight(0xffffff, 2.2);
    key.position.set(0.4, 0.6, 1.2);
    this.scene.add(key);
    this.avatars = new Map(); // key -> {root, mesh, bones, mouth (Box3 in mesh space), label}
    this.dirty = true;
    this.frames = 0;
    this.unitsApplied = 0;
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
    const loop = () => {
      if (this.dirty) {
        this.dirty = false;
        this.renderer.render(this.scene, this.camera);
        this.frames += 1;
      }
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  resize() {
    const width = Math.max(1, this.canvas.clientWidth);
    const height = Math.max(1, this.canvas.clientHeight);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.frame();
  }

  /** Load a GLB (Uint8Array) as the avatar `key` (replacing one of the same key). */
  async show(key, glb, label) {
    const gltf = await parseGlb(glb);
    const root = gltf.scene;
    let mesh = null;
    root.traverse((object) => {
      if (!mesh && object.isMesh && object.morphTargetInfluences) mesh = object;
    });
    if (!mesh) root.traverse((object) => { if (!mesh && object.isMesh) mesh = object; });
    if (!mesh) throw new Error("the avatar has no mesh");
    this.remove(key);
    const entry = {
      root,
      mesh,
      bones: mesh.isSkinnedMesh ? mesh.skeleton.bones : [],
      mouth: mouthBox(mesh),
      label,
    };
    this.avatars.set(key, entry);
    this.scene.add(root);
    this.frame();
    return entry;
  }

  remove(key) {
    const entry = this.avatars.get(key);
    if (!entry) return;
    this.scene.remove(entry.root);
    this.avatars.delete(key);
    this.frame();
  }

  /** Lay the avatars out in a row and aim the camera at all of them. */
  frame() {
    const entries = [...this.avatars.values()];
    if (entries.length === 0) {
      this.dirty = true;
      return;
    }
    const size = new Vector3();
    const boxes = entries.map((e) => {
      e.root.position.set(0, 0, 0);
      e.root.updateMatrixWorld(true);
      return new Box3().setFromObject(e.root);
    });
    const width = Math.max(...boxes.map((b) => b.getSize(size).x)) * SPACING;
    const height = Math.max(...boxes.map((b) => b.getSize(size).y));
    entries.forEach((e, i) => {
      e.root.position.x = (i - (entries.length - 1) / 2) * width;
      e.root.updateMatrixWorld(true);
    });
    const all = new Box3();
    for (const e of entries) all.union(new Box3().setFromObject(e.root));
    const center = all.getCenter(new Vector3());
    const fov = (this.camera.fov * Math.PI) / 180;
    const fitHeight = height / 2 / Math.tan(fov / 2);
    const fitWidth = (width * entries.length) / 2 / Math.tan(fov / 2) / this.camera.aspect;
    const distance = 1.15 * Math.max(fitHeight, fitWidth) + all.max.z - center.z;
    this.camera.position.set(center.x, center.y, center.z + distance);
    this.camera.near = distance / 100;
    this.camera.far = distance * 10;
    this.camera.lookAt(center);
    this.camera.updateProjectionMatrix();
    this.camera.updateMatrixWorld(true);
    this.dirty = true;
  }

  /** Apply a decoded BLENDSHAPE or JOINT unit to the avatar `key`. */
  apply(key, unit) {
    const entry = this.avatars.get(key);
    if (!entry) return false;
    if (unit.type === "BLENDSHAPE") {
      const influences = entry.mesh.morphTargetInfluences;
      if (!influences) return false;
      unit.indices.forEach((index, i) => {
        if (index < influences.length && Number.isFinite(unit.weights[i])) influences[index] = unit.weights[i];
      });
    } else if (unit.type === "JOINT") {
      const matrix = new Matrix4();
      unit.indices.forEach((index, i) => {
        const bone = entry.bones[index];
        if (!bone) return;
        matrix.set(...unit.matrices[i]); // Matrix4.set takes row-major arguments
        matrix.decompose(bone.position, bone.quaternion, bone.scale);
      });
    } else {
      return false;
    }
    this.unitsApplied += 1;
    this.dirty = true;
    return true;
  }

  /** Where the mouth of avatar `key` is on the canvas, in CSS pixels: {x, y, width, height}. */
  mouthRect(key) {
    const entry = this.avatars.get(key);
    if (!entry || !entry.mouth) return null;
    entry.root.updateMatrixWorld(true);
    const { min, max } = entry.mouth;
    const rect = { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity };
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    for (const x of [min.x, max.x]) for (const y of [min.y, max.y]) for (const z of [min.z, max.z]) {
      const p = new Vector3(x, y, z).applyMatrix4(entry.mesh.matrixWorld).project(this.camera);
      const px = ((p.x + 1) / 2) * w;
      const py = ((1 - p.y) / 2) * h;
      rect.left = Math.min(rect.left, px);
      rect.right = Math.max(rect.right, px);
      rect.top = Math.min(rect.top, py);
      rect.bottom = Math.max(rect.bottom, py);
    }
    return { x: rect.left, y: rect.top, width: rect.right - rect.left, height: rect.bottom - rect.top };
  }
}

/** The bind-pose box of the vertices the jawOpen morph target moves (mesh space), or null. */
function mouthBox(mesh) {
  const geometry = mesh.geometry;
  const targets = geometry.morphAttributes.position;
  if (!targets || !mesh.morphTargetDictionary) return null;
  const index = mesh.morphTargetDictionary.jawOpen ?? mesh.morphTargetDictionary.mouthClose;
  if (index === undefined) return null;
  const delta = targets[index];
  const base = geometry.attributes.position;
  const box = new Box3();
  const point = new Vector3();
  let largest = 0;
  for (let i = 0; i < delta.count; i += 1) {
    largest = Math.max(largest, Math.hypot(delta.getX(i), delta.getY(i), delta.getZ(i)));
  }
  for (let i = 0; i < delta.count; i += 1) {
    const moved = Math.hypot(delta.getX(i), delta.getY(i), delta.getZ(i));
    if (moved > 0.25 * largest) box.expandByPoint(point.fromBufferAttribute(base, i));
  }
  return box.isEmpty() ? null : box;
}
