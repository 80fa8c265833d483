// Drives tus-js-client for BenchmarkCappedLink: uploads the file argv[3] to
// the tus endpoint argv[2] as argv[4] partial uploads at once (tus
// concatenation, as Uppy's parallel mode does), each in PATCHes of argv[5]
// bytes (Infinity, tus-js-client's default: one PATCH each), with the
// Upload-Metadata of the final upload given as the JSON argv[6]. It prints one JSON line: {"url", "ms"}, the final upload's URL
// and the upload's own time, node's start-up left out. On a failure it
// prints the error to stderr and exits 1.
const fs = require('fs')
const tus = require('tus-js-client')

const [endpoint, path, parallel, chunk, metadata] = process.argv.slice(2)

const start = process.hrtime.bigint()
const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
  parallelUploads: Number(parallel),
  chunkSize: Number(chunk),
  metadata: JSON.parse(metadata),
  retryDelays: null, // a failure is the row's result; a retry would hide it in the time
  onSuccess () {
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    console.log(JSON.stringify({ url: upload.url, ms }))
    process.exit(0)
  },
  onError (err) {
    console.error(String(err))
    process.exit(1)
  },
})
upload.start()
