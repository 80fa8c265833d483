// Drives tus-js-client with parallelUploads for tus/jsclient_test.go: one
// run uploads the file argv[3] to the endpoint argv[2] as argv[5] partial
// uploads at once (tus concatenation), resuming a previous run's partials
// (found through the URL storage file argv[4]) when there are any, in
// 4 MiB PATCHes, and aborts once the server has acknowledged argv[6] bytes
// of this run (0: runs to the end).
// It prints one JSON line: {"url", "parts", "resumed", "outcome", "sent"}:
// the final upload's URL once there is one, the partial uploads' URLs,
// and the bytes this run's PATCHes carried that the server acknowledged.
const fs = require('fs')
const tus = require('tus-js-client')

const [endpoint, path, storage, parallel, abortAtArg] = process.argv.slice(2)
const abortAt = Number(abortAtArg)
let sent = 0
let resumed = false

const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
  parallelUploads: Number(parallel),
  metadata: { bucket: 'js', key: 'parallel.bin', filetype: 'application/octet-stream' },
  urlStorage: new tus.FileUrlStorage(storage),
  removeFingerprintOnSuccess: false,
  chunkSize: 4 * 1024 * 1024,
  retryDelays: [0, 500, 1000, 2000],
  // Every partial upload calls it, for its own PATCHes.
  onChunkComplete (size) {
    sent += size
    if (abortAt > 0 && sent >= abortAt && !upload.aborting) {
      upload.aborting = true
      upload.abort().then(() => done('aborted'))
    }
  },
  onSuccess () { done('completed') },
  onError (err) {
    console.error(String(err))
    process.exit(1)
  },
})

function done (outcome) {
  console.log(JSON.stringify({ url: upload.url, parts: upload._parallelUploadUrls, resumed, outcome, sent }))
  process.exit(0)
}

upload.findPreviousUploads().then((previous) => {
  if (previous.length > 0) {
    resumed = true
    upload.resumeFromPreviousUpload(previous[0])
  }
  upload.start()
})
