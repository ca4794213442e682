// The server's routes as the page uses them. The page keeps the File it opened: a kept video
// lives on one replica for --video_cache_ttl seconds, so a 404 for it (another replica answered,
// or it expired) means "upload it again", done here once per call, out of the user's way.

const BUSY_RETRIES = 5;

export async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || body.detail || JSON.stringify(body);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Server {
  constructor(onStatus, onVideo) {
    this.onStatus = onStatus;
    this.onVideo = onVideo; // called with each new upload's description
    this.file = null;
    this.video = null; // GET /videos/{id}: width, height, fps, frame_count, ...
  }

  // POST /videos with the file as the raw body; XMLHttpRequest for its upload progress.
  upload(file, onProgress) {
    this.file = file;
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/videos');
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onerror = () => reject(new Error('the upload failed (network)'));
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status === 201) {
          this.video = body;
          this.onVideo(body);
          resolve(body);
        } else {
          reject(new Error(body.error || `upload: ${xhr.status} ${xhr.statusText}`));
        }
      };
      xhr.send(file);
    });
  }

  async describe() {
    const r = await this.call((id) => fetch(`/videos/${id}`));
    if (!r.ok) throw new Error(await errorText(r));
    this.video = await r.json();
    return this.video;
  }

  // `request(videoId)` -> fetch promise. Retries a 404 of the video once after uploading again,
  // and a 503 (busy) after its Retry-After, a few times.
  async call(request) {
    let reuploaded = false;
    for (let attempt = 0; ; attempt += 1) {
      const response = await request(this.video.video_id);
      if (response.status === 404 && !reuploaded && this.file) {
        reuploaded = true;
        this.onStatus('The server no longer has this video (expired, or another replica '
                      + 'answered): uploading it again…');
        await this.upload(this.file, () => {});
        continue;
      }
      if (response.status === 503 && attempt < BUSY_RETRIES) {
        const wait = Number(response.headers.get('Retry-After')) || 5;
        this.onStatus(`The server is busy: trying again in ${wait} s (${attempt + 1}/${BUSY_RETRIES})…`);
        await sleep(wait * 1000);
        continue;
      }
      return response;
    }
  }

  // Frame i in decode order, the very frame /track reads as frame_idx i.
  async frame(i) {
    const width = Math.min(this.video.width, 1920);
    const r = await this.call((id) => fetch(`/videos/${id}/frames/${i}?max_width=${width}`));
    if (!r.ok) throw new Error(await errorText(r));
    return createImageBitmap(await r.blob());
  }

  // The prompts' masks on their one frame: Uint8Array of width*height, value = obj_id.
  async segment(entries) {
    const q = encodeURIComponent(JSON.stringify(entries));
    const r = await this.call((id) => fetch(`/videos/${id}/segment?prompts=${q}`, { method: 'POST' }));
    if (!r.ok) throw new Error(await errorText(r));
    const bitmap = await createImageBitmap(await r.blob(), {
      colorSpaceConversion: 'none', premultiplyAlpha: 'none',
    });
    const { width, height } = bitmap;
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const ids = new Uint8Array(width * height);
    for (let i = 0; i < ids.length; i += 1) ids[i] = rgba[i * 4];
    return ids;
  }

  // POST /track on the kept video; the caller reads the streamed body.
  track(params, signal) {
    return this.call((id) => fetch(`/track?video_id=${id}&${params}`, { method: 'POST', signal }));
  }
}
