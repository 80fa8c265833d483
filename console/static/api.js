// The API client: same origin only, the key as a Bearer header from
// sessionStorage, never a cookie (credentials: 'omit').

const KEY = 'ferry.apiKey';

export function getKey() { return sessionStorage.getItem(KEY) || ''; }
export function setKey(k) { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); }

export function authHeaders(h = {}) {
  const k = getKey();
  if (k) h.Authorization = 'Bearer ' + k;
  return h;
}

export class APIError extends Error {
  constructor(status, body) {
    const detail = body && (body.detail || (body.error && body.error.message) || body.title);
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// api calls a route and answers its JSON (null for 204); a non-2xx
// answer throws APIError.
export async function api(method, path, { json, headers } = {}) {
  const h = authHeaders({ ...(headers || {}) });
  let body;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const res = await fetch(path, { method, headers: h, body, credentials: 'omit', cache: 'no-store' });
  return answer(res);
}

export async function answer(res) {
  if (res.status === 204) return null;
  const ct = res.headers.get('Content-Type') || '';
  const data = ct.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}

// path segments: buckets and keys have only URL-safe characters, but a
// name typed by a user may not, and must not change the route.
export function filePath(bucket, key = '') {
  let p = '/v1/files/' + encodeURIComponent(bucket);
  if (key) p += '/' + key.split('/').map(encodeURIComponent).join('/');
  return p;
}

// presign asks for a presigned download link (POST {file}:presign):
// {url, expires_at}. null when this ferryd has no such route: a 404 that
// is not about the file or bucket, or a 405 (the path is a key's, but no
// POST is served there).
export async function presign(bucket, key, ttlSeconds) {
  try {
    return await api('POST', filePath(bucket, key) + ':presign', { json: { ttl_seconds: ttlSeconds } });
  } catch (e) {
    const code = (e.body && e.body.code) || '';
    if (e.status === 405 || (e.status === 404 && !/FILE_NOT_FOUND|BUCKET_NOT_FOUND/.test(code))) return null;
    throw e;
  }
}
