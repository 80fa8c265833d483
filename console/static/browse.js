// Browsing: the buckets, then a bucket's files with its key prefixes as
// folders, paging, search by prefix, details, download, presigned links,
// delete, and the upload target (drag-and-drop or the file picker).

import { $, el, clear, say, fmtBytes, fmtDate, confirmDialog } from './ui.js';
import { api, answer, authHeaders, filePath, getKey, presign } from './api.js';
import { addFiles } from './transfers.js';

const PAGE = 50;

export async function bucketsView(view, go) {
  view.append(el('h1', {}, 'Buckets'));
  const tbody = el('tbody');
  view.append(el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Bucket'), el('th', {}, 'Location'))), tbody));
  const open = el('form', { class: 'toolbar', onsubmit: (ev) => { ev.preventDefault(); go({ bucket: open.elements.b.value.trim() }); } },
    el('label', { for: 'open-bucket' }, 'Open a bucket by name'),
    el('input', { id: 'open-bucket', name: 'b', type: 'text', required: true, pattern: '[A-Za-z0-9_\\-]+' }),
    el('button', { type: 'submit' }, 'Open'));
  view.append(open);
  let after = '', n = 0;
  do {
    const page = await api('GET', '/v1/files?limit=1000' + (after ? '&after=' + encodeURIComponent(after) : ''));
    for (const b of page.data) {
      n++;
      tbody.append(el('tr', { 'data-bucket': b.name },
        el('td', {}, el('a', { href: '?bucket=' + encodeURIComponent(b.name), onclick: nav(go, { bucket: b.name }) }, b.name)),
        el('td', { class: 'muted' }, b.location || 'Ferry storage')));
    }
    after = page.has_more ? page.next : '';
  } while (after);
  if (!n) tbody.append(el('tr', {}, el('td', { colspan: 2, class: 'muted' }, 'No buckets yet: open one by name and upload files into it.')));
}

function here(bucket, prefix) { return '?bucket=' + encodeURIComponent(bucket) + '&prefix=' + encodeURIComponent(prefix); }

function nav(go, state) { return (ev) => { ev.preventDefault(); go(state); }; }

// listDir lists one "folder": files directly under prefix, and each deeper
// prefix once, skipping past its keys ("~" sorts after every key character).
async function listDir(bucket, prefix, after) {
  const items = [];
  for (let calls = 0; calls < PAGE; calls++) {
    const q = `?limit=${PAGE}&prefix=${encodeURIComponent(prefix)}` + (after ? '&after=' + encodeURIComponent(after) : '');
    let page;
    try {
      page = await api('GET', filePath(bucket) + q);
    } catch (e) {
      if (e.body && e.body.code === 'BUCKET_NOT_FOUND') return { items, next: '' }; // the first upload makes it
      throw e;
    }
    let jumped = false;
    for (const f of page.data) {
      if (items.length >= PAGE) return { items, next: after };
      const slash = f.key.slice(prefix.length).indexOf('/');
      if (slash >= 0) {
        const folder = f.key.slice(0, prefix.length + slash + 1);
        items.push({ folder });
        after = folder + '~';
        jumped = true;
        break;
      }
      items.push(f);
      after = f.key;
    }
    if (!jumped && !page.has_more) return { items, next: '' };
  }
  return { items, next: after };
}

export async function filesView(view, go, { bucket, prefix = '', after = '' }) {
  const crumbs = el('nav', { class: 'crumbs', 'aria-label': 'Folders' },
    el('a', { href: './', onclick: nav(go, {}) }, 'Buckets'), ' / ',
    el('a', { href: '?bucket=' + encodeURIComponent(bucket), onclick: nav(go, { bucket }) }, bucket));
  let acc = '';
  for (const seg of prefix.split('/').slice(0, -1)) {
    acc += seg + '/';
    const p = acc;
    crumbs.append(' / ', el('a', { href: here(bucket, p), onclick: nav(go, { bucket, prefix: p }) }, seg));
  }
  view.append(crumbs, el('h1', {}, bucket + (prefix ? ' / ' + prefix : '')));
  view.append(uploadTarget(bucket, prefix));
  const search = el('form', { class: 'toolbar', role: 'search', onsubmit: (ev) => { ev.preventDefault(); go({ bucket, prefix: search.elements.p.value }); } },
    el('label', { for: 'prefix' }, 'Search by prefix'),
    el('input', { id: 'prefix', name: 'p', type: 'search', value: prefix }),
    el('button', { type: 'submit' }, 'Search'));
  view.append(search);
  const { items, next } = await listDir(bucket, prefix, after);
  const tbody = el('tbody');
  view.append(el('table', { 'aria-label': 'Files' }, el('thead', {}, el('tr', {},
    ...['Name', 'Size', 'Type', 'Created', 'Checksums', 'Actions'].map((h) => el('th', {}, h)))), tbody));
  for (const it of items) tbody.append(it.folder ? folderRow(go, bucket, it.folder, prefix) : fileRow(go, it, prefix, view));
  if (!items.length) tbody.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No files here yet: upload some.')));
  const pager = el('div', { class: 'toolbar' });
  if (after) pager.append(el('button', { type: 'button', onclick: () => go({ bucket, prefix }) }, 'First page'));
  if (next) pager.append(el('button', { type: 'button', onclick: () => go({ bucket, prefix, after: next }) }, 'Next page'));
  view.append(pager, el('div', { id: 'details' }));
}

function folderRow(go, bucket, folder, prefix) {
  return el('tr', { class: 'folder' }, el('td', { colspan: 6 },
    el('a', { href: here(bucket, folder), onclick: nav(go, { bucket, prefix: folder }) }, folder.slice(prefix.length))));
}

function checksumText(f) {
  const c = f.checksums || {};
  const parts = Object.entries(c).map(([k, v]) => `${k}: ${v}`);
  return parts.length ? parts.join('\n') : '—';
}

function fileRow(go, f, prefix, view) {
  const tr = el('tr', { 'data-key': f.key },
    el('td', {}, el('button', { type: 'button', class: 'link', onclick: () => details(f) }, f.key.slice(prefix.length))),
    el('td', { class: 'num' }, fmtBytes(f.bytes)),
    el('td', { class: 'type' }, f.mime_type),
    el('td', {}, fmtDate(f.created_at)),
    el('td', { class: 'sum' }, checksumText(f)),
    el('td', { class: 'actions' },
      el('button', { type: 'button', onclick: () => download(f) }, 'Download'),
      el('button', { type: 'button', onclick: () => copyLink(f) }, 'Copy link'),
      el('button', { type: 'button', class: 'danger', onclick: () => remove(f, tr) }, 'Delete')));
  return tr;
}

function uploadTarget(bucket, prefix) {
  const input = el('input', { id: 'upload-files', type: 'file', multiple: true,
    onchange: () => { addFiles([...input.files], bucket, prefix); input.value = ''; } });
  const drop = el('div', { class: 'drop' },
    el('label', { for: 'upload-files' }, 'Upload files'), ' ', input,
    el('p', { class: 'muted' }, `Or drop files here. They go to ${bucket}/${prefix}<file name>, and resume after a reload or a lost network.`));
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    addFiles([...ev.dataTransfer.files], bucket, prefix);
  });
  return drop;
}

// details shows one file: everything the server says about it, the
// download's ETag and digest, and for an OpenAI file its filename.
async function details(f) {
  const box = clear($('#details'));
  const dl = el('dl', { class: 'details' });
  const add = (k, v) => dl.append(el('dt', {}, k), el('dd', {}, v));
  box.append(el('section', { class: 'card', 'aria-label': 'File details' }, el('h2', {}, f.key), dl));
  add('Bucket', f.bucket); add('Size', `${fmtBytes(f.bytes)} (${f.bytes} bytes)`); add('Type', f.mime_type);
  add('Created', fmtDate(f.created_at)); add('File id', f.file_id || '—'); add('Checksums', checksumText(f));
  try {
    const res = await fetch(f.url, { method: 'HEAD', headers: authHeaders(), credentials: 'omit' });
    if (res.ok) { add('ETag', res.headers.get('ETag') || '—'); if (res.headers.get('Repr-Digest')) add('Digest', res.headers.get('Repr-Digest')); }
  } catch { /* the details above stand */ }
  if (f.file_id) {
    try {
      const o = await api('GET', '/v1/openai/v1/files/' + encodeURIComponent(f.file_id));
      add('OpenAI filename', o.filename); add('OpenAI purpose', o.purpose);
    } catch { /* not an OpenAI file */ }
  }
}

// download: a plain link with no key; with a key, a presigned link when
// the server makes them, else the bytes through fetch (held in memory).
async function download(f) {
  const a = el('a', { download: f.key.split('/').pop() });
  try {
    if (!getKey()) { a.href = f.url; a.click(); return; }
    const p = await presign(f.bucket, f.key, 300);
    if (p) { a.href = p.url; a.click(); return; }
    say(`Downloading ${f.key} through this page (presigned links are not available)…`);
    const res = await fetch(f.url, { headers: authHeaders(), credentials: 'omit' });
    if (!res.ok) await answer(res);
    a.href = URL.createObjectURL(await res.blob());
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  } catch (e) { say(`Download of ${f.key} failed: ${e.message}`, true); }
}

async function copyLink(f) {
  try {
    const p = await presign(f.bucket, f.key, 3600);
    if (!p) { say('Presigned links are not available on this server (POST …:presign answered 404): update ferryd to share links.', true); return; }
    const until = new Date(p.expires_at * 1000).toISOString();
    try { await navigator.clipboard.writeText(p.url); say(`Link copied; it works until ${until}.`); } catch {
      say(`Copy this link (it works until ${until}): ${p.url}`);
    }
  } catch (e) { say(`Could not make a link for ${f.key}: ${e.message}`, true); }
}

async function remove(f, tr) {
  if (!(await confirmDialog(`Delete ${f.bucket}/${f.key}? This cannot be undone.`))) return;
  try {
    await api('DELETE', filePath(f.bucket, f.key));
    tr.remove();
    say(`Deleted ${f.key}.`);
  } catch (e) { say(`Delete of ${f.key} failed: ${e.message}`, true); }
}
