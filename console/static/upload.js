// Resumable uploads over the native session API. A file is sent as
// parallel parts (PUT /v1/files/session:<id>/parts/<n>) where the session
// offers them, else as sequential appends at the server's offset. The
// session id is kept in localStorage under the file's fingerprint, so
// after a reload (or a dropped network) picking the same file again asks
// the session what landed and sends only the rest.

import { api, authHeaders, filePath } from './api.js';

const STORE = 'ferry.uploads.v1';
const MiB = 1 << 20;
const MAX_PARTS = 10000; // S3's limit on a multipart upload
const CONCURRENCY = 4;
const CHUNK = 8 << 20; // sequential appends (a server without parts)
const RETRYABLE = new Set([0, 408, 409, 429, 500, 502, 503, 504]);

export function savedUploads() {
  try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch { return {}; }
}
function save(fp, v) { const all = savedUploads(); all[fp] = v; localStorage.setItem(STORE, JSON.stringify(all)); }
export function forget(fp) { const all = savedUploads(); delete all[fp]; localStorage.setItem(STORE, JSON.stringify(all)); }

export function fingerprint(bucket, key, file) {
  return [bucket, key, file.size, file.lastModified].join('|');
}

// landed is how many bytes of a session are stored: the parts that landed
// for a parallel session, else its offset.
export function landed(s) {
  if (!s.parallel) return s.offset;
  let n = 0;
  for (const [first, last] of s.parts || []) {
    n += Math.min(last * s.part_size, s.size) - (first - 1) * s.part_size;
  }
  return n;
}

// partSize: 16 MiB parts for big files (per request, a browser costs
// more than the CLI: on loopback 16 MiB parts ran about 1.4x faster than
// 8 MiB ones), but at least 8 parts down to 8 MiB (the server's default),
// so a medium file still goes 4 at a time and a reload loses little; and
// never more than MAX_PARTS.
export function partSize(size) {
  const eighth = Math.ceil(size / 8 / MiB) * MiB;
  return Math.max(Math.min(16 * MiB, Math.max(8 * MiB, eighth)), Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Upload {
  constructor(file, bucket, key, onChange) {
    Object.assign(this, { file, bucket, key, onChange });
    this.fp = fingerprint(bucket, key, file);
    this.state = 'queued'; // uploading, paused, done, error, cancelled
    this.message = '';
    this.confirmed = 0; // bytes the server acknowledged
    this.inflight = new Map(); // xhr -> bytes sent so far
    this.samples = []; // [ms, bytes] for the rate
    this.resumedAt = -1; // bytes that had landed before this page sent any
    this.session = null;
    this.result = null;
  }

  get sent() { let n = this.confirmed; for (const v of this.inflight.values()) n += v; return Math.min(n, this.file.size); }
  get active() { return this.state === 'uploading' || this.state === 'queued'; }

  // rate is bytes per second over the last few seconds.
  rate() {
    const s = this.samples;
    if (s.length < 2) return 0;
    const [t0, b0] = s[0], [t1, b1] = s[s.length - 1];
    return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
  }
  sample() {
    const now = performance.now();
    this.samples.push([now, this.sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
  }
  changed() { this.sample(); this.onChange(this); }

  async start() {
    if (this.state === 'done' || this.state === 'cancelled') return;
    this.state = 'uploading';
    this.message = '';
    this.samples = [];
    if (!this.began) this.began = performance.now();
    this.changed();
    try {
      await this.open();
      const s = this.session;
      if (this.file.size === 0 || !s.part_count) await this.sequential();
      else if (s.parallel || s.offset === 0) await this.parts();
      else await this.sequential(); // another client began it with appends
      if (this.state !== 'uploading') return;
      if (!this.result) this.result = await this.call('POST', this.sessionPath(), null, { 'Upload-Offset': String(this.file.size) });
      this.state = 'done';
      this.took = performance.now() - this.began; // ms from the pick, paused time included
      this.confirmed = this.file.size;
      forget(this.fp);
    } catch (e) {
      if (this.state === 'uploading') { this.state = 'error'; this.message = e.message; }
    }
    this.changed();
  }

  sessionPath() { return '/v1/files/session:' + this.session.id; }

  // open finds the file's session (a resume) or creates one.
  async open() {
    const saved = savedUploads()[this.fp];
    if (saved && saved.id) {
      try {
        const s = await api('GET', '/v1/files/session:' + saved.id);
        if (s.status === 'uploading' && s.size === this.file.size) this.session = s;
      } catch (e) {
        if (e.status && e.status !== 404 && e.status !== 410) throw e;
      }
      if (!this.session) forget(this.fp);
    }
    if (!this.session) {
      this.session = await api('POST', '/v1/files', { json: {
        bucket: this.bucket, key: this.key, size: this.file.size, part_size: partSize(this.file.size),
        ...(this.file.type ? { mime_type: this.file.type } : {}) } });
      save(this.fp, { id: this.session.id, bucket: this.bucket, key: this.key, name: this.file.name, size: this.file.size });
    }
    this.confirmed = landed(this.session);
    if (this.resumedAt < 0) this.resumedAt = this.confirmed;
  }

  // parts puts every part not yet landed, CONCURRENCY at a time.
  async parts() {
    const s = this.session;
    const have = new Set();
    for (const [a, b] of s.parts || []) for (let n = a; n <= b; n++) have.add(n);
    const todo = [];
    for (let n = 1; n <= s.part_count; n++) if (!have.has(n)) todo.push(n);
    const worker = async () => {
      while (todo.length && this.state === 'uploading') {
        const n = todo.shift();
        const start = (n - 1) * s.part_size, end = Math.min(start + s.part_size, this.file.size);
        const out = await this.send('PUT', this.sessionPath() + '/parts/' + n, this.file.slice(start, end), {},
          { landed: () => this.partLanded(n) });
        if (this.state !== 'uploading') return;
        this.confirmed += end - start;
        if (out && out.key !== undefined && out.part === undefined) this.result = out; // the FileResponse
        this.changed();
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
  }

  // partLanded asks whether part n is in already: after a busy answer
  // (another request, perhaps from before a reload, was still putting it)
  // there is no need to send its bytes again.
  async partLanded(n) {
    const s = await api('GET', this.sessionPath());
    return (s.parts || []).some(([a, b]) => a <= n && n <= b) || s.status === 'completed';
  }

  // sequential appends CHUNK bytes at a time at the server's offset.
  async sequential() {
    let off = this.session.offset;
    while (off < this.file.size && this.state === 'uploading') {
      const end = Math.min(off + CHUNK, this.file.size);
      let out;
      try {
        out = await this.send('POST', this.sessionPath(), this.file.slice(off, end), { 'Upload-Offset': String(off) }, { offsetIsFinal: true });
      } catch (e) {
        if (e.status === 409 && e.body && typeof e.body.offset === 'number') { off = e.body.offset; this.confirmed = off; continue; }
        throw e;
      }
      if (this.state !== 'uploading') return;
      off = end;
      this.confirmed = off;
      if (out && out.key !== undefined && out.status === undefined) this.result = out;
      this.changed();
    }
  }

  // send retries a request through dropped connections and busy answers,
  // with backoff; a paused or cancelled upload stops at once.
  // opts.offsetIsFinal: an OFFSET_MISMATCH is the caller's to handle;
  // opts.landed(): before a retry, whether the bytes are in after all.
  async send(method, path, body, headers, opts = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.xhr(method, path, body, headers);
      } catch (e) {
        if (this.state !== 'uploading') return null;
        if (opts.offsetIsFinal && e.status === 409 && e.body && e.body.code === 'OFFSET_MISMATCH') throw e;
        if (!RETRYABLE.has(e.status)) throw e;
        if (opts.landed && e.status === 409 && (await opts.landed().catch(() => false))) return { landed: true };
        const wait = Math.min(15000, 500 * 2 ** attempt);
        this.message = e.status ? `${e.message}; retrying in ${Math.round(wait / 1000)} s` : `network lost; retrying in ${Math.round(wait / 1000)} s`;
        this.onChange(this);
        await Promise.race([sleep(wait), new Promise((r) => window.addEventListener('online', r, { once: true }))]);
        this.message = '';
      }
    }
  }

  call(method, path, body, headers) { return this.xhr(method, path, body, headers); }

  // xhr sends one request with upload progress (fetch has none).
  xhr(method, path, body, headers) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open(method, path);
      x.withCredentials = false;
      for (const [k, v] of Object.entries(authHeaders({ ...headers }))) x.setRequestHeader(k, v);
      if (body) x.setRequestHeader('Content-Type', 'application/octet-stream');
      x.responseType = 'json';
      this.inflight.set(x, 0);
      x.upload.onprogress = (ev) => { this.inflight.set(x, ev.loaded); this.throttled(); };
      const done = (err, val) => { this.inflight.delete(x); err ? reject(err) : resolve(val); };
      x.onload = () => {
        if (x.status >= 200 && x.status < 300) return done(null, x.response);
        const e = new Error(`${x.status}: ${(x.response && (x.response.detail || x.response.title)) || x.statusText}`);
        e.status = x.status; e.body = x.response;
        done(e);
      };
      x.onerror = () => { const e = new Error('network error'); e.status = 0; done(e); };
      x.onabort = () => { const e = new Error('stopped'); e.status = -1; done(e); };
      this.xhrs = this.xhrs || new Set();
      this.xhrs.add(x);
      x.onloadend = () => this.xhrs.delete(x);
      x.send(body);
    });
  }

  throttled() {
    const now = performance.now();
    if (now - (this.lastPaint || 0) > 150) { this.lastPaint = now; this.changed(); }
  }

  stopRequests() { for (const x of this.xhrs || []) x.abort(); this.inflight.clear(); }

  pause() {
    if (this.state !== 'uploading') return;
    this.state = 'paused';
    this.stopRequests();
    this.changed();
  }

  async resume() {
    if (this.state !== 'paused' && this.state !== 'error') return;
    this.session = null; // asks the server again what landed
    await this.start();
  }

  async cancel() {
    const was = this.state;
    this.state = 'cancelled';
    this.stopRequests();
    forget(this.fp);
    this.changed();
    if (!this.session || was === 'done') return;
    // An append in flight holds the session (409) and an outage answers
    // 503, each for a moment: ask again. A network error has no status.
    for (let attempt = 0; attempt < 6; attempt++) {
      try { await api('DELETE', this.sessionPath()); return; } catch (e) {
        if (e.status !== 409 && e.status !== 503 && e.status !== undefined) return; // gone already, or refused for good
        await sleep(1000);
      }
    }
    this.message = 'the session could not be aborted; it expires by itself';
    this.onChange(this);
  }
}

// keyFor is the key a picked file is stored under: its name, in the folder
// being shown, with characters keys cannot hold replaced by "_".
export function keyFor(prefix, name) {
  const safe = name.replace(/[^A-Za-z0-9_.\-]/g, '_').replace(/^\.+/, '_');
  return (prefix || '') + (safe || 'file');
}

// openSaved is a saved upload's session, or null once it is gone.
export async function openSaved(entry) {
  try {
    const s = await api('GET', '/v1/files/session:' + entry.id);
    return s.status === 'uploading' ? s : null;
  } catch (e) {
    if (e.status === 404 || e.status === 410) return null;
    throw e;
  }
}

export { filePath };
