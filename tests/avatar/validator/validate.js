#!/usr/bin/env node
// Validates glTF/GLB files with the Khronos glTF validator (npm gltf-validator).
// Usage: node validate.js FILE [FILE...]
// Prints one JSON line per file: {file, numErrors, numWarnings, numInfos, numHints, messages}
// (messages holds at most 50 issues: code, severity 0=error 1=warning 2=info 3=hint, pointer,
// message). Exit status: 0 when no file has an error, 1 when one has, 2 when the validator could
// not run (bad arguments, unreadable file, unrecognised format).
'use strict';

const fs = require('fs');
const path = require('path');
const validator = require('gltf-validator');

async function validateFile(file) {
  const bytes = new Uint8Array(fs.readFileSync(file));
  const report = await validator.validateBytes(bytes, {
    uri: path.basename(file),
    maxIssues: 50,
    // A GLB of the product format is self-contained: any external reference is an error.
    externalResourceFunction: (uri) => Promise.reject(new Error(`external resource: ${uri}`)),
  });
  const issues = report.issues;
  return {
    file,
    numErrors: issues.numErrors,
    numWarnings: issues.numWarnings,
    numInfos: issues.numInfos,
    numHints: issues.numHints,
    messages: issues.messages.map((m) => ({
      code: m.code,
      severity: m.severity,
      pointer: m.pointer,
      message: m.message,
    })),
  };
}

async function main(files) {
  if (files.length === 0) {
    console.error('usage: node validate.js FILE [FILE...]');
    return 2;
  }
  let status = 0;
  for (const file of files) {
    let result;
    try {
      result = await validateFile(file);
    } catch (err) {
      console.error(`${file}: validator could not run: ${err}`);
      return 2;
    }
    console.log(JSON.stringify(result));
    if (result.numErrors > 0) status = 1;
  }
  return status;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
