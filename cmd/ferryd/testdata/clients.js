// Drives the real llama-stack-client and openai-node packages against one
// ferryd for cmd/ferryd/clients_test.go. argv[2] is ferryd's root URL
// (http://127.0.0.1:PORT), argv[3] a word unique to this run.
//
// Each client runs once per base URL the README documents for it:
// llama-stack-client at the root and at /v1/openai (its routes carry their
// own /v1), openai-node at /v1 and at /v1/openai/v1. A run uploads a file
// (multipart, purpose assistants) and a second one it keeps, lists,
// retrieves and reads the first, attaches it to a new vector store, waits
// for it to be completed, searches for words in it, deletes it and
// retrieves it again (404) and searches again. Every request is recorded as
// "METHOD /path STATUS" from the client's own fetch.
//
// It prints one JSON object, {runs: [...]}, and the Go test checks it; the
// script itself only stops at an unexpected error (stderr, exit 1).
const { LlamaStackClient, toFile: llamaToFile } = require('llama-stack-client')
const { OpenAI, toFile: openaiToFile } = require('openai')

const [root, word] = process.argv.slice(2)

const configs = [
  { client: 'llama-stack-client', base: root, make: (o) => new LlamaStackClient(o), toFile: llamaToFile },
  { client: 'llama-stack-client', base: root + '/v1/openai', make: (o) => new LlamaStackClient(o), toFile: llamaToFile },
  { client: 'openai', base: root + '/v1', make: (o) => new OpenAI(o), toFile: openaiToFile },
  { client: 'openai', base: root + '/v1/openai/v1', make: (o) => new OpenAI(o), toFile: openaiToFile },
]

// record wraps the client's own fetch (node-fetch for llama-stack-client,
// the global fetch for openai-node), so what is sent is unchanged.
// openai-node also fetches "data:," once to probe FormData support: only
// HTTP requests are recorded.
function record (client, calls) {
  const inner = client.fetch
  client.fetch = async (url, init) => {
    const u = new URL(String(url))
    const resp = await inner.call(undefined, url, init)
    if (u.protocol !== 'http:') return resp
    const method = (init && init.method) || 'GET'
    calls.push(`${method.toUpperCase()} ${u.pathname}${u.search} ${resp.status}`)
    return resp
  }
}

function errorOf (err) {
  if (err && typeof err.status === 'number') {
    return { status: err.status, class: err.constructor.name, error: err.error ?? null }
  }
  throw err
}

async function bytesOf (resp) {
  return Buffer.from(await resp.arrayBuffer()).toString('base64')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function hits (page) {
  return page.data.map((h) => ({
    file_id: h.file_id,
    filename: h.filename,
    score: h.score,
    text: (h.content || []).map((c) => c.text).join(''),
  }))
}

async function run (cfg, i) {
  const calls = []
  const c = cfg.make({ baseURL: cfg.base, apiKey: 'x', maxRetries: 0, timeout: 20000 })
  record(c, calls)
  const tag = `${word}${i}`
  const name = `${cfg.client}-${i}.txt`
  const text = `Ferry harbour ${tag} keeps the cargo manifests.\nRefunds take five days. Grüße from ${cfg.client}.\n`
  const keptText = `kept by ${cfg.client} run ${i}\n`
  const out = { client: cfg.client, base: cfg.base, name, text, kept_text: keptText, calls }

  out.kept = await c.files.create({ file: await cfg.toFile(Buffer.from(keptText), `kept-${i}.txt`, { type: 'text/plain' }), purpose: 'assistants' })
  out.file = await c.files.create({ file: await cfg.toFile(Buffer.from(text), name, { type: 'text/plain' }), purpose: 'assistants' })

  out.listed = []
  for await (const f of c.files.list()) out.listed.push({ id: f.id, filename: f.filename, purpose: f.purpose, bytes: f.bytes })
  out.retrieved = await c.files.retrieve(out.file.id)

  if (cfg.client === 'openai') {
    // openai-node answers content with the raw Response.
    out.content_b64 = await bytesOf(await c.files.content(out.file.id))
  } else {
    // llama-stack-client parses it as text; asResponse gives the bytes.
    out.content_text = await c.files.content(out.file.id)
    out.content_b64 = await bytesOf(await c.files.content(out.file.id).asResponse())
  }

  out.store = await c.vectorStores.create({ name: `docs-${i}` })
  out.attached = await c.vectorStores.files.create(out.store.id, { file_id: out.file.id })
  if (cfg.client === 'openai') {
    out.polled = await c.vectorStores.files.poll(out.store.id, out.file.id, { pollIntervalMs: 50 })
  } else {
    // llama-stack-client has no poll helper: retrieve until it settles.
    const deadline = Date.now() + 30000
    for (;;) {
      out.polled = await c.vectorStores.files.retrieve(out.store.id, out.file.id)
      if (out.polled.status !== 'in_progress' || Date.now() > deadline) break
      await sleep(50)
    }
  }
  const found = await c.vectorStores.search(out.store.id, { query: `${tag} cargo manifests`, max_num_results: 5 })
  // openai-node answers with a Page, which keeps the whole answer as body.
  out.search = cfg.client === 'openai' ? found.body : found
  out.hits = hits(found)
  out.miss = hits(await c.vectorStores.search(out.store.id, { query: 'zebra xylophone' }))

  out.deleted = await c.files.delete(out.file.id)
  try {
    out.after_delete = { unexpected: await c.files.retrieve(out.file.id) }
  } catch (err) {
    out.after_delete = errorOf(err)
  }
  out.hits_after_delete = hits(await c.vectorStores.search(out.store.id, { query: `${tag} cargo manifests` }))
  return out
}

async function main () {
  const runs = []
  for (const [i, cfg] of configs.entries()) {
    try {
      runs.push(await run(cfg, i))
    } catch (err) {
      console.error(`${cfg.client} at ${cfg.base}: ${err && err.stack ? err.stack : err}`)
      if (err && err.error) console.error(JSON.stringify(err.error))
      process.exit(1)
    }
  }
  console.log(JSON.stringify({ runs }))
}

main()
