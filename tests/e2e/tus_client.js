// tus_client.js — the real tus client for test_tus.py: tus-js-client (npm,
// installed in tests/browser/node_modules by scripts/setup.sh test) in Node
// uploads FILE to ENDPOINT with parallelUploads: 3, retrying through a
// server that goes away (kill -9) and comes back. It writes the bytes sent
// so far to PROGRESS as they go, and at the end prints one JSON line:
// {"url": the final upload's URL, "resumed": whether a retry was needed}.
//   node tus_client.js ENDPOINT KEY FILE PROGRESS
'use strict';
const fs = require('fs');
const path = require('path');
const tus = require(path.join(__dirname, '..', 'browser', 'node_modules', 'tus-js-client'));

const [endpoint, key, file, progressPath] = process.argv.slice(2);
let resumed = false;
let lastWrite = 0;

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  headers: { 'X-API-Key': key },
  parallelUploads: 3,
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
