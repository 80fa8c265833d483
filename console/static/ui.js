// DOM helpers. Every string from the server goes in as text (textContent,
// or attributes through setAttribute), never as HTML: names, MIME types,
// filenames and metadata are data, and data never becomes markup.

// el(tag, attrs, ...children): attrs.on* are listeners, attrs.class the
// class; children are nodes or strings (made text nodes).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const $ = (sel) => document.querySelector(sel);

export function clear(node) { node.replaceChildren(); return node; }

let statusTimer = 0;
// say shows a message in the status line (an error stays until replaced).
export function say(msg, isError = false) {
  const s = $('#status');
  clearTimeout(statusTimer);
  s.textContent = msg || '';
  s.classList.toggle('error', !!isError);
  if (msg && !isError) statusTimer = setTimeout(() => { s.textContent = ''; }, 8000);
}

export function fmtBytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
}

export function fmtRate(bps) { return bps > 0 ? fmtBytes(bps) + '/s' : '—'; }

export function fmtDuration(s) {
  if (!Number.isFinite(s) || s < 0) return '—';
  if (s < 10) return s.toFixed(1) + ' s';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

export function fmtDate(unix) {
  if (!unix) return '—';
  return new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

// progressBar is a role="progressbar" whose set(fraction) moves it.
export function progressBar(label) {
  const fill = el('div');
  const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-label': label,
    'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0 }, fill);
  bar.set = (fraction, done = false) => {
    const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
    bar.setAttribute('aria-valuenow', pct);
    fill.style.width = pct + '%'; // CSSOM, which the CSP allows (no style attribute)
    bar.classList.toggle('done', done);
  };
  return bar;
}

// confirmDialog asks before something that cannot be undone.
export function confirmDialog(text, okLabel = 'Delete') {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
  });
}
