// The page: open a video (kept on the server, POST /videos), move to a frame (GET
// /videos/{id}/frames/{i}, decode order: the frame /track reads as that index), click points and
// draw boxes for several objects (each click: POST /videos/{id}/segment, the mask on that frame),
// Track (POST /track?video_id=...&format=rle: one NDJSON line per frame, drawn as it arrives),
// download the lines or a ZIP with the preview video.
import { paintRle } from './rle.js';
import { Server, errorText } from './server.js';

// Distinct colours (Sasha Trubetskoy's list), object 1 first.
const COLOURS = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
  [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195]];
const MAX_OBJ_ID = 255;
const CACHE_FRAMES = 120; // decoded frame images kept for scrubbing and replay

const $ = (id) => document.getElementById(id);
const frameCtx = $('frame-canvas').getContext('2d');
const maskCtx = $('mask-canvas').getContext('2d');
const marksCtx = $('marks-canvas').getContext('2d');

const state = {
  frame: 0, // the frame asked for
  shown: -1, // the frame on screen: clicks go to this one
  count: 0, // frames known so far
  objects: [], // {id, name, colour}
  active: 0,
  prompts: new Map(), // `${obj}:${frame}` -> {obj_id, frame_idx, points, labels, box}
  history: [], // prompt keys in the order they changed, for Undo
  masks: new Map(), // frame -> {kind: 'ids', ids} (a click's preview) | {kind: 'rle', objects}
  lines: [], // the NDJSON answer of the last Track
  tracking: null, // AbortController of the running Track
  playing: false,
};
const images = new Map();
const server = new Server(setStatus, (video) => {
  $('stage').dataset.videoId = video.video_id;
  $('video-id').textContent = `kept on the server as ${video.video_id} for ${Math.round(video.expires_in_s / 60)} min after its last use`;
});
let segmentSeq = 0;
let rendering = false;
let drag = null;

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

// ---------------------------------------------------------------------------- objects
function colourOf(objId) {
  const obj = state.objects.find((o) => o.id === objId);
  return obj ? obj.colour : COLOURS[(objId - 1) % COLOURS.length];
}

function addObject() {
  let id = 1;
  while (state.objects.some((o) => o.id === id)) id += 1;
  if (id > MAX_OBJ_ID) return;
  state.objects.push({ id, name: `object ${id}`, colour: COLOURS[(id - 1) % COLOURS.length] });
  state.active = id;
  renderObjects();
}

function removeObject(id) {
  const frames = new Set();
  for (const [key, p] of state.prompts) {
    if (p.obj_id === id) {
      state.prompts.delete(key);
      frames.add(p.frame_idx);
    }
  }
  state.objects = state.objects.filter((o) => o.id !== id);
  if (!state.objects.length) addObject();
  if (state.active === id) state.active = state.objects[0].id;
  renderObjects();
  frames.forEach((f) => promptsChanged(f));
}

function renderObjects() {
  const list = $('objects');
  list.replaceChildren();
  for (const obj of state.objects) {
    const li = document.createElement('li');
    li.dataset.objId = obj.id;
    li.dataset.colour = obj.colour.join(',');
    li.classList.toggle('active', obj.id === state.active);
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = `rgb(${obj.colour.join(',')})`;
    const name = document.createElement('input');
    name.value = obj.name;
    name.title = 'name (goes into the manifest)';
    name.addEventListener('change', () => { obj.name = name.value.trim() || `object ${obj.id}`; showPrompts(); });
    const count = document.createElement('span');
    count.className = 'count';
    const n = [...state.prompts.values()].filter((p) => p.obj_id === obj.id)
      .reduce((sum, p) => sum + p.points.length + (p.box ? 1 : 0), 0);
    count.textContent = n ? `${n}` : '';
    const remove = document.createElement('button');
    remove.className = 'remove';
    remove.textContent = '×';
    remove.title = 'remove this object and its prompts';
    remove.addEventListener('click', (e) => { e.stopPropagation(); removeObject(obj.id); });
    li.append(swatch, name, count, remove);
    li.addEventListener('click', () => { state.active = obj.id; renderObjects(); });
    list.append(li);
  }
}

// ---------------------------------------------------------------------------- prompts
function promptAt(objId, frame, create) {
  const key = `${objId}:${frame}`;
  if (!state.prompts.has(key) && create) {
    state.prompts.set(key, { obj_id: objId, frame_idx: frame, points: [], labels: [], box: null });
  }
  return state.prompts.get(key);
}

// The long form /track and /segment take: entries sorted by object then frame; an object's
// name on its first entry.
function entries(frame = null) {
  const named = new Set();
  return [...state.prompts.values()]
    .filter((p) => (p.points.length || p.box) && (frame === null || p.frame_idx === frame))
    .sort((a, b) => a.obj_id - b.obj_id || a.frame_idx - b.frame_idx)
    .map((p) => {
      const e = { obj_id: p.obj_id, frame_idx: p.frame_idx };
      if (p.points.length) {
        e.points = p.points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
        e.labels = [...p.labels];
      }
      if (p.box) e.box = p.box.map((v) => Math.round(v * 10) / 10);
      const obj = state.objects.find((o) => o.id === p.obj_id);
      if (obj && !named.has(obj.id) && frame === null) {
        e.name = obj.name;
        named.add(obj.id);
      }
      return e;
    });
}

function showPrompts() {
  $('prompts-json').textContent = JSON.stringify(entries(), null, 1);
  $('track').disabled = !entries().length || !!state.tracking;
}

function addPoint(x, y, label) {
  const p = promptAt(state.active, state.shown, true);
  p.points.push([x, y]);
  p.labels.push(label);
  state.history.push({ key: `${p.obj_id}:${p.frame_idx}`, kind: 'point' });
  promptsChanged(state.shown);
}

function setBox(box) {
  const p = promptAt(state.active, state.shown, true);
  state.history.push({ key: `${p.obj_id}:${p.frame_idx}`, kind: 'box', before: p.box });
  p.box = box;
  promptsChanged(state.shown);
}

function undo() {
  const last = state.history.pop();
  const p = last && state.prompts.get(last.key);
  if (!p) return;
  if (last.kind === 'point') {
    p.points.pop();
    p.labels.pop();
  } else {
    p.box = last.before;
  }
  promptsChanged(p.frame_idx);
}

function clearFrame() {
  const frame = state.shown;
  for (const [key, p] of state.prompts) if (p.frame_idx === frame) state.prompts.delete(key);
  promptsChanged(frame);
}

function promptsChanged(frame) {
  showPrompts();
  renderObjects();
  drawMarks();
  segment(frame);
}

// The mask of each object prompted on `frame`, on that frame, within seconds of the click.
async function segment(frame) {
  const seq = ++segmentSeq;
  const onFrame = entries(frame);
  if (!onFrame.length) {
    state.masks.delete(frame);
    drawMasks();
    return;
  }
  setStatus(`Segmenting frame ${frame}…`);
  const started = performance.now();
  try {
    const ids = await server.segment(onFrame);
    if (seq !== segmentSeq) return; // a newer click is on its way
    state.masks.set(frame, { kind: 'ids', ids });
    drawMasks();
    setStatus(`Mask on frame ${frame} in ${((performance.now() - started) / 1000).toFixed(1)} s. `
              + 'Add clicks, another object, or press Track.');
  } catch (err) {
    if (seq === segmentSeq) setStatus(err.message, true);
  }
}

// ---------------------------------------------------------------------------- drawing
function drawMasks() {
  const { width, height } = $('mask-canvas');
  maskCtx.clearRect(0, 0, width, height);
  const masks = state.masks.get(state.shown);
  $('stage').dataset.masks = masks ? masks.kind : '';
  if (!masks || !width) return;
  const image = maskCtx.createImageData(width, height);
  const data = image.data;
  if (masks.kind === 'ids') {
    for (let i = 0; i < masks.ids.length; i += 1) {
      const id = masks.ids[i];
      if (id) {
        const c = colourOf(id);
        data[i * 4] = c[0];
        data[i * 4 + 1] = c[1];
        data[i * 4 + 2] = c[2];
        data[i * 4 + 3] = 255;
      }
    }
  } else { // the smallest obj_id on top, as in the server's palette and id PNGs
    const objects = [...masks.objects].sort((a, b) => b.obj_id - a.obj_id);
    for (const o of objects) paintRle(o.rle, data, width, colourOf(o.obj_id));
  }
  maskCtx.putImageData(image, 0, 0);
}

function drawMarks() {
  const { width, height } = $('marks-canvas');
  marksCtx.clearRect(0, 0, width, height);
  const r = Math.max(4, width / 110);
  marksCtx.lineWidth = Math.max(2, width / 400);
  for (const p of state.prompts.values()) {
    if (p.frame_idx !== state.shown) continue;
    const colour = `rgb(${colourOf(p.obj_id).join(',')})`;
    if (p.box) {
      marksCtx.strokeStyle = colour;
      marksCtx.strokeRect(p.box[0], p.box[1], p.box[2] - p.box[0], p.box[3] - p.box[1]);
    }
    p.points.forEach(([x, y], i) => {
      marksCtx.beginPath();
      marksCtx.arc(x, y, r, 0, 2 * Math.PI);
      marksCtx.fillStyle = p.labels[i] ? '#22c55e' : '#ef4444';
      marksCtx.fill();
      marksCtx.strokeStyle = colour;
      marksCtx.stroke();
    });
  }
  if (drag && drag.moved) {
    marksCtx.setLineDash([6, 4]);
    marksCtx.strokeStyle = `rgb(${colourOf(state.active).join(',')})`;
    marksCtx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0);
    marksCtx.setLineDash([]);
  }
}

async function frameImage(i) {
  if (images.has(i)) return images.get(i);
  const bitmap = await server.frame(i);
  images.set(i, bitmap);
  if (images.size > CACHE_FRAMES) images.delete(images.keys().next().value);
  return bitmap;
}

// Shows state.frame; one frame request at a time, always towards the latest frame asked for.
async function render() {
  if (rendering) return;
  rendering = true;
  try {
    while (state.shown !== state.frame) {
      const i = state.frame;
      const bitmap = await frameImage(i);
      const { width, height } = $('frame-canvas');
      frameCtx.drawImage(bitmap, 0, 0, width, height);
      state.shown = i;
      $('stage').dataset.frame = i;
      drawMasks();
      drawMarks();
    }
  } catch (err) {
    setStatus(err.message, true);
    state.frame = state.shown;
  } finally {
    rendering = false;
    syncFrameControls();
  }
}

function goTo(i) {
  if (!server.video || !state.count) return;
  state.frame = Math.max(0, Math.min(state.count - 1, i));
  syncFrameControls();
  render();
}

function syncFrameControls() {
  $('slider').max = Math.max(0, state.count - 1);
  $('slider').value = state.frame;
  $('frame-number').value = state.frame;
  $('frame-number').max = Math.max(0, state.count - 1);
  const v = server.video;
  const known = v && v.frame_count !== null && v.frame_count !== undefined;
  $('frame-count').textContent = v ? `of ${state.count}${known ? '' : '…'}` : 'of –';
}

async function play() {
  if (state.playing) {
    state.playing = false;
    return;
  }
  state.playing = true;
  $('play').textContent = 'Pause';
  const fps = (server.video && server.video.fps) || 25;
  if (state.frame >= state.count - 1) goTo(0);
  while (state.playing && state.frame < state.count - 1) {
    const started = performance.now();
    goTo(state.frame + 1);
    while (rendering) await new Promise((resolve) => setTimeout(resolve, 5));
    const left = 1000 / fps - (performance.now() - started);
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  }
  state.playing = false;
  $('play').textContent = 'Play';
}

// ---------------------------------------------------------------------------- clicks
function videoPoint(event) {
  const canvas = $('marks-canvas');
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * canvas.width;
  const y = ((event.clientY - rect.top) / rect.height) * canvas.height;
  return [Math.max(0, Math.min(canvas.width, x)), Math.max(0, Math.min(canvas.height, y))];
}

function tool() {
  return document.querySelector('input[name=tool]:checked').value;
}

function onPointerDown(event) {
  if (!server.video || state.shown < 0 || event.button !== 0) return;
  const [x, y] = videoPoint(event);
  drag = { x0: x, y0: y, x1: x, y1: y, moved: false };
  $('marks-canvas').setPointerCapture(event.pointerId);
}

function onPointerMove(event) {
  if (!drag) return;
  [drag.x1, drag.y1] = videoPoint(event);
  const slack = $('marks-canvas').width / 100;
  drag.moved = drag.moved || Math.abs(drag.x1 - drag.x0) > slack || Math.abs(drag.y1 - drag.y0) > slack;
  if (tool() === 'box') drawMarks();
}

function onPointerUp(event) {
  if (!drag) return;
  const d = drag;
  drag = null;
  if (tool() === 'box') {
    if (d.moved) {
      setBox([Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.max(d.x0, d.x1), Math.max(d.y0, d.y1)]);
    } else {
      drawMarks();
    }
    return;
  }
  const negative = tool() === 'negative' || event.shiftKey;
  addPoint(d.x0, d.y0, negative ? 0 : 1);
}

// ---------------------------------------------------------------------------- tracking
function setBusy(busy) {
  $('track').disabled = busy || !entries().length;
  $('stop').disabled = !busy;
  $('download-zip').disabled = busy || !entries().length;
  document.body.dataset.state = busy ? 'tracking' : (state.lines.length ? 'tracked' : 'idle');
}

function trackParams(format, extra = {}) {
  const params = new URLSearchParams({ format, direction: $('direction').value, ...extra });
  params.set('prompts', JSON.stringify(entries()));
  return params;
}

// Reads the NDJSON answer line by line as it streams; returns whether the manifest line came.
async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl = buffer.indexOf('\n');
    while (nl >= 0) {
      onLine(buffer.slice(0, nl + 1));
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
    }
  }
}

async function track() {
  if (!entries().length) return;
  const controller = new AbortController();
  state.tracking = controller;
  state.lines = [];
  for (const [frame, m] of state.masks) if (m.kind === 'rle') state.masks.delete(frame);
  $('download-rle').disabled = true;
  setBusy(true);
  const started = performance.now();
  let done = 0;
  let manifest = null;
  try {
    setStatus('Tracking…');
    const response = await server.track(trackParams('rle'), controller.signal);
    if (!response.ok) throw new Error(await errorText(response));
    const expected = Number(response.headers.get('X-Expected-Frames')) || state.count;
    $('progress').max = expected;
    await readLines(response, (line) => {
      state.lines.push(line);
      const value = JSON.parse(line);
      if (value.manifest) {
        manifest = value.manifest;
        return;
      }
      state.masks.set(value.frame_idx, { kind: 'rle', objects: value.objects });
      done += 1;
      $('progress').value = done;
      $('progress-text').textContent = `${done} / ${expected} frames`;
      if ($('follow').checked && !state.playing) goTo(value.frame_idx);
      else if (value.frame_idx === state.shown) drawMasks();
    });
    const seconds = (performance.now() - started) / 1000;
    if (manifest) {
      setStatus(`Tracked ${done} frames in ${seconds.toFixed(1)} s. Scrub or Play to watch; download below.`);
    } else {
      setStatus(`The answer stopped after ${done} frames (no manifest line): the server cut it; see its log.`, true);
    }
  } catch (err) {
    setStatus(err.name === 'AbortError' ? `Stopped after ${done} frames.` : err.message,
              err.name !== 'AbortError');
  } finally {
    state.tracking = null;
    $('download-rle').disabled = !state.lines.length;
    setBusy(false);
  }
}

function save(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

async function downloadZip() {
  const controller = new AbortController();
  state.tracking = controller;
  setBusy(true);
  try {
    setStatus('Tracking again for the ZIP (PNG masks per object and preview.mp4)…');
    const response = await server.track(trackParams('png', { preview: 'mp4' }), controller.signal);
    if (!response.ok) throw new Error(await errorText(response));
    const reader = response.body.getReader();
    const parts = [];
    let bytes = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      bytes += value.length;
      $('progress-text').textContent = `ZIP: ${(bytes / 2 ** 20).toFixed(1)} MiB`;
    }
    save(new Blob(parts, { type: 'application/zip' }), 'masks.zip');
    setStatus(`masks.zip saved (${(bytes / 2 ** 20).toFixed(1)} MiB).`);
  } catch (err) {
    setStatus(err.name === 'AbortError' ? 'ZIP stopped.' : err.message, err.name !== 'AbortError');
  } finally {
    state.tracking = null;
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------- opening a video
async function open(file) {
  setStatus(`Uploading ${file.name}…`);
  state.prompts.clear();
  state.history = [];
  state.masks.clear();
  state.lines = [];
  images.clear();
  try {
    const video = await server.upload(file, (f) => setStatus(`Uploading ${file.name}: ${Math.round(f * 100)} %`));
    for (const id of ['frame-canvas', 'mask-canvas', 'marks-canvas']) {
      $(id).width = video.width;
      $(id).height = video.height;
    }
    state.count = Math.max(1, video.frames_indexed || 0);
    state.frame = 0;
    state.shown = -1;
    for (const id of ['prev', 'next', 'slider', 'frame-number', 'play', 'undo', 'clear-frame']) $(id).disabled = false;
    showPrompts();
    renderObjects();
    setStatus(`${file.name}: ${video.width}×${video.height}, ${video.codec}. Click on an object.`);
    render();
    watchIndexing();
  } catch (err) {
    setStatus(err.message, true);
  }
}

// The server counts the frames in the background; the slider grows until the count is final.
async function watchIndexing() {
  for (;;) {
    const v = await server.describe();
    state.count = Math.max(1, v.frame_count ?? v.frames_indexed ?? 1);
    syncFrameControls();
    if (v.error) {
      setStatus(`The video decodes only to frame ${state.count}: ${v.error}`, true);
      return;
    }
    if (v.frame_count !== null && v.frame_count !== undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// ---------------------------------------------------------------------------- wiring
function wire() {
  $('file').addEventListener('change', (e) => e.target.files[0] && open(e.target.files[0]));
  $('prev').addEventListener('click', () => goTo(state.frame - 1));
  $('next').addEventListener('click', () => goTo(state.frame + 1));
  $('slider').addEventListener('input', (e) => goTo(Number(e.target.value)));
  $('frame-number').addEventListener('change', (e) => goTo(Number(e.target.value)));
  $('play').addEventListener('click', play);
  $('add-object').addEventListener('click', addObject);
  $('clear-frame').addEventListener('click', clearFrame);
  $('undo').addEventListener('click', undo);
  $('track').addEventListener('click', track);
  $('stop').addEventListener('click', () => state.tracking && state.tracking.abort());
  $('download-rle').addEventListener('click', () => save(new Blob(state.lines, { type: 'application/x-ndjson' }), 'masks.ndjson'));
  $('download-zip').addEventListener('click', downloadZip);
  const marks = $('marks-canvas');
  marks.addEventListener('pointerdown', onPointerDown);
  marks.addEventListener('pointermove', onPointerMove);
  marks.addEventListener('pointerup', onPointerUp);
  document.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'INPUT' && e.target.type !== 'range') return;
    if (e.key === 'ArrowLeft') goTo(state.frame - 1);
    else if (e.key === 'ArrowRight') goTo(state.frame + 1);
    else if ((e.ctrlKey || e.metaKey) && e.key === 'z') undo();
    else return;
    e.preventDefault();
  });
  addObject();
  showPrompts();
  document.body.dataset.state = 'idle';
}

wire();
