// Drives tus-js-client against Ferry for tus/jsclient_test.go: one run
// uploads the file at argv[3] to the endpoint argv[2], resuming a previous
// upload of it (found through the URL storage file argv[4]) when there is
// one, in 8 MiB PATCHes, and aborts once the server has acknowledged argv[5]
// bytes (0: runs to the end).
// It prints one JSON line: {"url", "resumed", "outcome"}.
const fs = require('fs')
const tus = require('tus-js-client')

const [endpoint, path, storage, abortAtArg] = process.argv.slice(2)
const abortAt = Number(abortAtArg)

const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
  metadata: { bucket: 'js', key: 'big.bin', filetype: 'application/octet-stream' },
  urlStorage: new tus.FileUrlStorage(storage),
  removeFingerprintOnSuccess: false,
  chunkSize: 8 * 1024 * 1024,
  retryDelays: [0, 500, 1000, 2000],
  // Between two PATCHes, so where the upload stops is exact: bytes the
  // client merely sent depend on socket buffers.
  onChunkComplete (size, accepted) {
    if (abortAt > 0 && accepted >= abortAt && !upload.aborting) {
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

let resumed = false
function done (outcome) {
  console.log(JSON.stringify({ url: upload.url, resumed, outcome }))
  process.exit(0)
}

upload.findPreviousUploads().then((previous) => {
  if (previous.length > 0) {
    resumed = true
    upload.resumeFromPreviousUpload(previous[0])
  }
  upload.start()
})
