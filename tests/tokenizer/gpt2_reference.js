// Runs the reference GPT-2 encoder of the npm package gpt-3-encoder (a port of openai/gpt-2's
// encoder.py) over a JSON array of strings and prints a JSON array of id arrays.
// Usage: node gpt2_reference.js PACKAGE_DIR INPUT.json
//        node gpt2_reference.js PACKAGE_DIR --bench PARTS.json  (prints MB/s, cold and warm)
'use strict';
const fs = require('fs');
const path = require('path');
const {encode} = require(path.join(path.resolve(process.argv[2]), 'Encoder.js'));

if (process.argv[3] === '--bench') {
  // Encodes the parts in turn: encode() concatenates arrays piece by piece, so one call on a
  // whole megabyte takes quadratic time and would measure that rather than BPE.
  const parts = JSON.parse(fs.readFileSync(process.argv[4], 'utf8'));
  const megabytes = parts.reduce((sum, text) => sum + Buffer.byteLength(text, 'utf8'), 0) / 1e6;
  const results = [];
  for (const run of ['cold', 'warm']) {  // the encoder's piece cache is empty, then full
    const start = process.hrtime.bigint();
    let tokens = 0;
    for (const text of parts) tokens += encode(text).length;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    results.push({run, seconds, megabytes_per_s: megabytes / seconds, tokens});
  }
  process.stdout.write(JSON.stringify(results) + '\n');
} else {
  const documents = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  process.stdout.write(JSON.stringify(documents.map((text) => encode(text))) + '\n');
}
