// The console's entry: sign-in, navigation and the views. State lives in
// the URL (?bucket=NAME&prefix=P, ?view=sessions, ?view=admin), so links
// and the back button work; the key lives in sessionStorage only.

import { $, clear, el, say } from './ui.js';
import { api, getKey, setKey } from './api.js';
import { bucketsView, filesView } from './browse.js';
import { sessionsView, adminView } from './admin.js';
import { showInterrupted, onUploadFinished } from './transfers.js';

let isAdmin = false;

function state() {
  const q = new URLSearchParams(location.search);
  return { view: q.get('view') || '', bucket: q.get('bucket') || '', prefix: q.get('prefix') || '', after: q.get('after') || '' };
}

// go shows a view and records it in the history.
function go(s) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(s)) if (v) q.set(k, v);
  history.pushState(null, '', q.toString() ? '?' + q : location.pathname);
  render();
}

async function render() {
  const old = $('#view');
  old.dataset.gone = '1'; // stops the old view's polling
  const view = el('section', { id: 'view' });
  old.replaceWith(view);
  const s = state();
  const current = s.bucket ? 'buckets' : (s.view || 'buckets');
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  try {
    if (s.bucket) await filesView(view, go, s);
    else if (s.view === 'sessions') await sessionsView(view);
    else if (s.view === 'admin') await adminView(view, go);
    else await bucketsView(view, go);
  } catch (e) {
    if (e.status === 401) return signIn('The key was refused: ' + e.message);
    view.append(el('p', { class: 'error', role: 'alert' }, e.message));
  }
}

// start checks the key (or the lack of one) against the API: with no keys
// configured the console opens without asking.
async function start() {
  try {
    await api('GET', '/v1/files?limit=1');
  } catch (e) {
    if (e.status === 401) return signIn(getKey() ? 'The key was refused: ' + e.message : '');
    say(`ferryd did not answer: ${e.message}`, true);
    return;
  }
  try { await api('GET', '/v1/sessions?limit=1'); isAdmin = true; } catch { isAdmin = false; }
  $('#signin').hidden = true;
  $('#nav').hidden = false;
  for (const a of document.querySelectorAll('#nav [data-admin]')) a.hidden = !isAdmin;
  $('#who').textContent = getKey() ? (isAdmin ? 'signed in (admin)' : 'signed in') : 'open access (no API keys)';
  $('#signout').hidden = !getKey();
  render();
  showInterrupted();
}

function signIn(error) {
  setKey('');
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#who').textContent = '';
  clear($('#view'));
  $('#uploads').hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = error || '';
  $('#api-key').focus();
}

$('#signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  setKey($('#api-key').value.trim());
  $('#api-key').value = '';
  start();
});
$('#signout').addEventListener('click', () => signIn(''));
for (const a of document.querySelectorAll('#nav a')) {
  a.addEventListener('click', (ev) => {
    ev.preventDefault();
    go(a.dataset.view === 'buckets' ? {} : { view: a.dataset.view });
  });
}
window.addEventListener('popstate', render);
let refresh = 0;
onUploadFinished((u) => {
  say(`Uploaded ${u.file.name} to ${u.bucket}/${u.key}.`);
  const s = state();
  if (s.bucket !== u.bucket || s.after) return;
  clearTimeout(refresh); // many files finishing together redraw the list once
  refresh = setTimeout(() => { if (state().bucket === u.bucket) render(); }, 300);
});
start();
