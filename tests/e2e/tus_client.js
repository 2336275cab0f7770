// tus_client.js — the real tus client for test_tus.py: tus-js-client (npm,
// installed in tests/browser/node_modules by scripts/setup.sh test) in Node
// uploads FILE to ENDPOINT with parallelUploads: 3, retrying through a
// server that goes away (kill -9) and comes back. It writes the bytes sent
// so far to PROGRESS as they go, and at the end prints one JSON line:
// {"url": the final upload's URL, "resumed": whether a retry was needed}.
// Each part's PATCHes stop at the part's half: once all three wait, the
// parts' URLs go to PROGRESS.half and the client waits for PROGRESS.go.
// The test kills and restarts the server meanwhile, so the kill always
// lands while every part is half sent (never during the final
// concatenation, whose failure tus-js-client does not retry).
//   node tus_client.js ENDPOINT KEY FILE PROGRESS
'use strict';
const fs = require('fs');
const path = require('path');
const tus = require(path.join(__dirname, '..', 'browser', 'node_modules', 'tus-js-client'));

const [endpoint, key, file, progressPath] = process.argv.slice(2);
let resumed = false;
let lastWrite = 0;
// a PATCH that would start past its part's half is held; once every part
// has one held, the parts' URLs go to PROGRESS.half
const partHalf = Math.floor(fs.statSync(file).size / 3 / 2);
const heldParts = new Set();

function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}

async function gate(req) {
  const go = progressPath + '.go';
  if (req.getMethod() !== 'PATCH' || fs.existsSync(go)) return;
  if (!(Number(req.getHeader('Upload-Offset')) >= partHalf)) return;
  heldParts.add(req.getURL());
  if (heldParts.size === 3 && !fs.existsSync(progressPath + '.half')) {
    fs.writeFileSync(progressPath + '.half.tmp', JSON.stringify(upload._parallelUploadUrls));
    fs.renameSync(progressPath + '.half.tmp', progressPath + '.half');
  }
  while (!fs.existsSync(go)) await sleep(20);
}

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  headers: { 'X-API-Key': key },
  parallelUploads: 3,
  chunkSize: 4 << 20, // several PATCHes a part, so a part cannot finish while held
  onBeforeRequest: gate,
  metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  // the server may be away for a few seconds: retry for up to a minute
  retryDelays: [0, 250, 500, 1000, 1000, 2000, 2000, 3000, 3000, 5000, 5000, 10000, 10000, 10000],
  onShouldRetry(err) {
    resumed = true;
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
    return status === 0 || status >= 500 || status === 409 || status === 423;
  },
  onProgress(sent) {
    const now = Date.now();
    if (now - lastWrite > 20) {
      lastWrite = now;
      fs.writeFileSync(progressPath + '.tmp', String(sent) + '\n');
      fs.renameSync(progressPath + '.tmp', progressPath);
    }
  },
  onError(err) {
    console.error('upload failed: ' + err);
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, resumed }));
  },
});
upload.start();
