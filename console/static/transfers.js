// The uploads panel: one row per file (progress bar, bytes, rate, time
// left, pause/resume/cancel), a total, and the uploads a reload
// interrupted, which resume when their file is picked again.

import { $, el, clear, fmtBytes, fmtRate, fmtDuration, progressBar, say } from './ui.js';
import { Upload, savedUploads, forget, landed, openSaved, keyFor } from './upload.js';
import { api } from './api.js';

const uploads = [];
const rows = new Map();
let totalBar, totalLine;
let onFinished = () => {};

export function onUploadFinished(fn) { onFinished = fn; }

// addFiles starts an upload of each file into bucket, under prefix.
export function addFiles(files, bucket, prefix) {
  for (const file of files) {
    const u = new Upload(file, bucket, keyFor(prefix, file.name), update);
    uploads.push(u);
    rows.set(u, row(u));
    $('#uploads-list').prepend(rows.get(u).li);
    u.start();
  }
  $('#uploads').hidden = false;
  showInterrupted();
  update();
}

function row(u) {
  const bar = progressBar('Upload progress of ' + u.file.name);
  const line = el('div', { class: 'line muted' });
  const pause = el('button', { type: 'button', onclick: () => (u.state === 'uploading' ? u.pause() : u.resume()) }, 'Pause');
  const cancel = el('button', { type: 'button', class: 'danger', onclick: () => u.cancel() }, 'Cancel');
  const li = el('li', { 'data-key': u.key },
    el('span', { class: 'name' }, u.file.name, el('span', { class: 'muted' }, ' → ', u.bucket, '/', u.key)),
    bar, el('span', {}, pause, ' ', cancel), line);
  return { li, bar, line, pause, cancel };
}

let paintQueued = false;
function update(u) {
  if (u && u.state === 'done' && !u.reported) { u.reported = true; onFinished(u); }
  if (paintQueued) return;
  paintQueued = true;
  requestAnimationFrame(paint);
}

function paint() {
  paintQueued = false;
  let size = 0, sent = 0, rate = 0, active = 0;
  for (const u of uploads) {
    const r = rows.get(u);
    const frac = u.file.size ? u.sent / u.file.size : (u.state === 'done' ? 1 : 0);
    r.bar.set(frac, u.state === 'done');
    const ur = u.state === 'uploading' ? u.rate() : 0;
    const left = ur > 0 ? (u.file.size - u.sent) / ur : NaN;
    let text = `${fmtBytes(u.sent)} of ${fmtBytes(u.file.size)} · ${u.state}`;
    if (u.state === 'uploading') text += ` · ${fmtRate(ur)} · ${fmtDuration(left)} left`;
    if (u.state === 'done' && u.took) {
      text += ` in ${fmtDuration(u.took / 1000)} (${fmtRate((u.file.size - Math.max(0, u.resumedAt)) / (u.took / 1000))})`;
      r.li.dataset.ms = Math.round(u.took);
    }
    if (u.resumedAt > 0) text += ` · resumed at ${fmtBytes(u.resumedAt)}`;
    if (u.message) text += ` · ${u.message}`;
    r.line.textContent = text;
    r.pause.textContent = u.state === 'paused' || u.state === 'error' ? 'Resume' : 'Pause';
    r.pause.disabled = !['uploading', 'paused', 'error'].includes(u.state);
    r.cancel.disabled = u.state === 'done' || u.state === 'cancelled';
    if (u.state === 'cancelled') continue;
    size += u.file.size; sent += u.sent;
    if (u.state === 'uploading') { rate += ur; active++; }
  }
  if (!totalBar) {
    totalBar = progressBar('Total upload progress');
    totalLine = el('div', { class: 'muted' });
    $('#uploads-total').append(totalBar, totalLine);
  }
  totalBar.set(size ? sent / size : 0, active === 0 && sent === size && size > 0);
  totalLine.textContent = `${fmtBytes(sent)} of ${fmtBytes(size)} · ${active} active · ${fmtRate(rate)}` +
    (rate > 0 ? ` · ${fmtDuration((size - sent) / rate)} left` : '');
}

// showInterrupted lists uploads saved by an earlier page that no upload of
// this page has taken over.
export async function showInterrupted() {
  const box = $('#uploads-interrupted');
  const mine = new Set(uploads.map((u) => u.fp));
  const saved = Object.entries(savedUploads()).filter(([fp]) => !mine.has(fp));
  clear(box);
  if (!saved.length) return;
  $('#uploads').hidden = false;
  const list = el('ul');
  box.append(el('p', {}, 'Interrupted uploads: pick the same file again (in its bucket) to resume it.'), list);
  for (const [fp, entry] of saved) {
    const item = el('li', {}, `${entry.name} → ${entry.bucket}/${entry.key} (${fmtBytes(entry.size)})`);
    list.append(item);
    openSaved(entry).then((s) => {
      if (!s) { forget(fp); item.remove(); return; }
      item.append(` · ${fmtBytes(landed(s))} stored · `, el('button', { type: 'button', onclick: async () => {
        try { await api('DELETE', '/v1/files/session:' + entry.id); } catch { /* gone */ }
        forget(fp); item.remove();
      } }, 'Forget'));
    }).catch((e) => say(e.message, true));
  }
}
