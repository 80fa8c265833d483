// For admin keys: the live sessions of the whole service (GET
// /v1/sessions, polled), registrations, and a health glance from /readyz
// and /metrics.

import { el, clear, say, fmtBytes, fmtRate, fmtDate, progressBar, confirmDialog } from './ui.js';
import { api, filePath, authHeaders } from './api.js';
import { landed } from './upload.js';

const POLL = 2000;

// poll runs fn now and every POLL ms until the view is left.
function poll(view, fn) {
  let timer = 0;
  const tick = async () => {
    if (!view.isConnected || view.dataset.gone) return;
    try { await fn(); } catch (e) { say(e.message, true); }
    if (view.isConnected && !view.dataset.gone) timer = setTimeout(tick, POLL);
  };
  tick();
  return () => clearTimeout(timer);
}

export async function sessionsView(view) {
  view.append(el('h1', {}, 'Live sessions'),
    el('p', { class: 'muted' }, 'Uploads in progress across the service, refreshed every 2 s.'));
  const tbody = el('tbody');
  view.append(el('table', { 'aria-label': 'Live sessions' }, el('thead', {}, el('tr', {},
    ...['File', 'Progress', 'Stored', 'Rate', 'Mode', 'Expires'].map((h) => el('th', {}, h)))), tbody));
  const last = new Map(); // id -> [ms, bytes]
  poll(view, async () => {
    const all = [];
    let after = '';
    do {
      const page = await api('GET', '/v1/sessions?limit=1000' + (after ? '&after=' + encodeURIComponent(after) : ''));
      all.push(...page.data);
      after = page.has_more && all.length < 5000 ? page.next : '';
    } while (after);
    clear(tbody);
    const now = performance.now();
    for (const s of all) {
      const got = landed(s);
      const prev = last.get(s.id);
      const rate = prev && now > prev[0] ? ((got - prev[1]) * 1000) / (now - prev[0]) : 0;
      last.set(s.id, [now, got]);
      const bar = progressBar(`Session progress of ${s.bucket}/${s.key}`);
      bar.set(s.size ? got / s.size : 0);
      tbody.append(el('tr', { 'data-session': s.id },
        el('td', {}, `${s.bucket}/${s.key}`), el('td', {}, bar),
        el('td', { class: 'num' }, `${fmtBytes(got)} of ${fmtBytes(s.size)}`),
        el('td', { class: 'num' }, fmtRate(rate)),
        el('td', {}, s.parallel ? `parts (${(s.parts || []).reduce((n, [a, b]) => n + b - a + 1, 0)} of ${s.part_count})` : 'sequential'),
        el('td', {}, fmtDate(s.expires_at))));
    }
    if (!all.length) tbody.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No uploads in progress.')));
  });
}

export async function adminView(view, go) {
  view.append(el('h1', {}, 'Admin'));
  const stats = el('div', { class: 'grid2', 'aria-label': 'Health' });
  view.append(el('section', { class: 'card' }, el('h2', {}, 'Health'), stats));
  const regs = el('section', { class: 'card' });
  view.append(regs);
  await registrations(regs, go);
  let prev = null;
  poll(view, async () => {
    const [ready, metrics] = await Promise.all([readiness(), fetchMetrics()]);
    const t = performance.now();
    const cur = { t, uploads: sum(metrics, 'ferry_sessions_completed_total'), bytes: sum(metrics, 'ferry_http_received_bytes_total') };
    const dt = prev ? (t - prev.t) / 1000 : 0;
    const stat = (k, v) => el('div', { class: 'stat' }, el('span', { class: 'muted' }, k), el('b', {}, v));
    clear(stats).append(
      stat('Ready', ready),
      stat('Version', version(metrics)),
      stat('Uploads/s', dt ? ((cur.uploads - prev.uploads) / dt).toFixed(2) : '…'),
      stat('Bytes/s', dt ? fmtRate((cur.bytes - prev.bytes) / dt) : '…'),
      stat('Requests in flight', String(sum(metrics, 'ferry_http_requests_in_flight'))),
      stat('Uploads completed', String(cur.uploads)));
    prev = cur;
  });
}

async function readiness() {
  const res = await fetch('/readyz', { credentials: 'omit', cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (res.ok) return 'ready';
  return 'not ready: ' + Object.entries(body.checks || {}).filter(([, v]) => v !== 'ok').map(([k, v]) => `${k}: ${v}`).join('; ');
}

async function fetchMetrics() {
  const res = await fetch('/metrics', { headers: authHeaders(), credentials: 'omit', cache: 'no-store' });
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

// sum adds every sample of a metric family (the Prometheus text format).
function sum(text, name) {
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) n += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return n;
}

function version(text) {
  const m = /^ferry_build_info\{[^}]*version="([^"]*)"/m.exec(text) || /^go_build_info\{[^}]*version="([^"]*)"/m.exec(text);
  const go = /^go_info\{version="([^"]*)"/m.exec(text);
  return (m ? m[1] : 'unknown') + (go ? ` (${go[1]})` : '');
}

async function registrations(box, go) {
  box.append(el('h2', {}, 'Registrations'),
    el('p', { class: 'muted' }, 'Existing data served as a bucket without copying: an s3:// prefix or a file:// directory under an allowed root.'));
  const tbody = el('tbody');
  box.append(el('table', { 'aria-label': 'Registrations' }, el('thead', {}, el('tr', {},
    el('th', {}, 'Bucket'), el('th', {}, 'Location'), el('th', {}, ''))), tbody));
  const refresh = async () => {
    clear(tbody);
    let after = '';
    do {
      const page = await api('GET', '/v1/files?limit=1000' + (after ? '&after=' + encodeURIComponent(after) : ''));
      for (const b of page.data.filter((b) => b.location)) {
        tbody.append(el('tr', { 'data-bucket': b.name }, el('td', {}, el('a', { href: '?bucket=' + encodeURIComponent(b.name),
          onclick: (ev) => { ev.preventDefault(); go({ bucket: b.name }); } }, b.name)), el('td', {}, b.location),
        el('td', {}, el('button', { type: 'button', class: 'danger', onclick: () => unregister(b.name, refresh) }, 'Unregister'))));
      }
      after = page.has_more ? page.next : '';
    } while (after);
  };
  const form = el('form', { class: 'toolbar', onsubmit: async (ev) => {
    ev.preventDefault();
    const name = form.elements.name.value.trim(), location = form.elements.location.value.trim();
    try {
      await api('PUT', filePath(name), { json: { location } });
      say(`Registered ${name} at ${location}.`);
      form.reset();
      await refresh();
    } catch (e) { say(`Register ${name}: ${e.message}`, true); }
  } },
  el('label', { for: 'reg-name' }, 'Bucket name'), el('input', { id: 'reg-name', name: 'name', type: 'text', required: true }),
  el('label', { for: 'reg-location' }, 'Location'),
  el('input', { id: 'reg-location', name: 'location', type: 'text', required: true, placeholder: 's3://bucket/prefix or file:///srv/data', size: 36 }),
  el('button', { type: 'submit', class: 'primary' }, 'Register'));
  box.append(form);
  await refresh();
}

async function unregister(name, refresh) {
  if (!(await confirmDialog(`Unregister ${name}? Its data stays where it is.`, 'Unregister'))) return;
  try { await api('DELETE', filePath(name)); say(`Unregistered ${name}.`); await refresh(); } catch (e) { say(e.message, true); }
}
