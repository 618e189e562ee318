#!/usr/bin/env node
// Drives the official OSS Node.js SDK, ali-oss, unmodified, against an OSS endpoint and checks what
// it sees. Made for the ossup mock server (`cargo xtask oss2` installs ali-oss from package.json and
// runs this script), but it works against any endpoint it is given.
//
// With V1 and V4 signatures, with a permanent key and with temporary credentials, it checks: put,
// get (bytes), head, head of a missing key (NoSuchKey), copy, list and listV2 (paged), deleteMulti,
// getBucketLocation, a multipart upload
// by hand, multipartUpload (ali-oss checks the CRC-64 of each part and of the object) and its resume
// from a checkpoint after cancel(), putStream, and signatureUrl GET and PUT used with fetch.
//
// The endpoint must name a host, not an IP address (signatureUrl refuses IP endpoints), and the
// bucket goes in the path (`sldEnable`): `http://localhost:PORT` for a mock on loopback.
//
// Every check prints a line; the first mismatch stops the script with exit status 1.

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const OSS = require('ali-oss');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) {
      throw new Error(`expected --name value pairs, got ${argv.slice(i).join(' ')}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const required of ['endpoint', 'bucket', 'access-key-id', 'access-key-secret', 'region']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const md5 = (bytes) => crypto.createHash('md5').update(bytes).digest('hex');

async function expectError(promise, status, code, what) {
  try {
    await promise;
  } catch (error) {
    check(error.status === status && error.code === code,
      `${what}: ${error.status} ${error.code} (${error.message}), not ${status} ${code}`);
    return;
  }
  throw new Error(`${what} succeeded; expected ${status} ${code}`);
}

async function suite(args, label, options, source) {
  const client = new OSS({
    endpoint: args.endpoint,
    sldEnable: true,
    region: `oss-${args.region}`,
    bucket: args.bucket,
    secure: false,
    timeout: 60000,
    ...options,
  });
  const prefix = `ali-oss-peer/${args.run}/${label}`;
  const ok = (what) => console.log(`ok  ${label}: ${what}`);

  const body = Buffer.from(`put by ali-oss, ${label}\n`.repeat(100));
  await client.put(`${prefix}/hello.txt`, body);
  const got = await client.get(`${prefix}/hello.txt`);
  check(got.content.equals(body), 'get: the bytes differ from those put');
  const head = await client.head(`${prefix}/hello.txt`);
  check(Number(head.res.headers['content-length']) === body.length, 'head: Content-Length');
  await expectError(client.head(`${prefix}/missing.txt`), 404, 'NoSuchKey', 'head of a missing key');
  ok('put, get, head, head of a missing key is NoSuchKey');

  await client.copy(`${prefix}/copied.txt`, `${prefix}/hello.txt`);
  check((await client.get(`${prefix}/copied.txt`)).content.equals(body), 'copy: the bytes differ');
  ok('copy');

  for (let i = 0; i < 5; i += 1) await client.put(`${prefix}/list/${i}`, Buffer.from('x'));
  const listed = await client.list({ prefix: `${prefix}/list/`, 'max-keys': 10 });
  check(listed.objects.length === 5, `list: ${listed.objects.length} objects, not 5`);
  const keys = [];
  let token;
  do {
    const page = await client.listV2({
      prefix: `${prefix}/list/`, 'max-keys': 2, 'continuation-token': token,
    });
    keys.push(...(page.objects || []).map((o) => o.name));
    token = page.nextContinuationToken;
  } while (token);
  check(keys.length === 5, `listV2: ${keys.length} keys over its pages, not 5`);
  ok('list, listV2 in pages of 2');

  const multi = await client.deleteMulti(keys.slice(0, 3));
  check(multi.deleted.length === 3, `deleteMulti: ${JSON.stringify(multi.deleted)}`);
  const left = await client.listV2({ prefix: `${prefix}/list/` });
  check(left.objects.length === 2, `deleteMulti: ${left.objects.length} objects left, not 2`);
  const location = await client.getBucketLocation(args.bucket);
  check(location.location === `oss-${args.region}`, `getBucketLocation: ${location.location}`);
  ok('deleteMulti of 3 keys, getBucketLocation');

  const parts = [crypto.randomBytes(100 * 1024), crypto.randomBytes(100 * 1024 + 7)];
  const key = `${prefix}/by-hand.bin`;
  const { uploadId } = await client.initMultipartUpload(key);
  const done = [];
  for (const [index, part] of parts.entries()) {
    const answer = await client.uploadPart(key, uploadId, index + 1, part, 0, part.length);
    done.push({ number: index + 1, etag: answer.etag });
  }
  const partList = await client.listParts(key, uploadId);
  check(partList.parts.length === 2, `listParts: ${partList.parts.length} parts`);
  await client.completeMultipartUpload(key, uploadId, done);
  const whole = await client.get(key);
  check(whole.content.equals(Buffer.concat(parts)), 'complete: the object differs from its parts');
  const aborted = await client.initMultipartUpload(`${prefix}/aborted.bin`);
  await client.abortMultipartUpload(`${prefix}/aborted.bin`, aborted.uploadId);
  ok('initMultipartUpload, uploadPart, listParts, completeMultipartUpload, abort');

  const sourceMd5 = md5(fs.readFileSync(source));
  const big = `${prefix}/big.bin`;
  await client.multipartUpload(big, source, { parallel: 3, partSize: 1024 * 1024, crc64: true });
  check(md5((await client.get(big)).content) === sourceMd5, 'multipartUpload: the object differs');
  let checkpoint;
  let progressed = 0;
  const resumed = `${prefix}/resumed.bin`;
  try {
    await client.multipartUpload(resumed, source, {
      parallel: 1,
      partSize: 1024 * 1024,
      progress: (_, cp) => {
        checkpoint = cp;
        progressed += 1;
        if (progressed === 2) client.cancel();
      },
    });
  } catch (error) {
    check(client.isCancel(), `multipartUpload failed rather than cancelled: ${error.message}`);
  }
  const total = Math.ceil(fs.statSync(source).size / (1024 * 1024));
  check(checkpoint && checkpoint.doneParts.length > 0 && checkpoint.doneParts.length < total,
    `cancel() left a checkpoint of ${checkpoint && checkpoint.doneParts.length} of ${total} parts`);
  // ali-oss carries on the checkpoint object itself: count its parts before it does.
  const before = checkpoint.doneParts.length;
  await client.multipartUpload(resumed, source, { checkpoint, parallel: 2, partSize: 1024 * 1024 });
  check(md5((await client.get(resumed)).content) === sourceMd5, 'resumed multipartUpload: the object differs');
  ok(`multipartUpload with CRC-64 checks; resumed from a checkpoint of ${before} of ${total} parts after cancel()`);

  const streamed = `${prefix}/streamed.bin`;
  await client.putStream(streamed, fs.createReadStream(source));
  check(md5((await client.get(streamed)).content) === sourceMd5, 'putStream: the object differs');
  ok('putStream');

  const getUrl = client.signatureUrl(`${prefix}/hello.txt`, { expires: 300 });
  const fetched = await fetch(getUrl);
  const fetchedBody = Buffer.from(await fetched.arrayBuffer());
  check(fetched.status === 200, `signatureUrl GET: ${fetched.status} ${fetchedBody}`);
  check(fetchedBody.equals(body), 'signatureUrl GET: bytes differ');
  const putUrl = client.signatureUrl(`${prefix}/presigned.txt`, { method: 'PUT', expires: 300 });
  // A body of bytes: fetch adds no Content-Type, which the signature would cover.
  const put = await fetch(putUrl, { method: 'PUT', body: new Uint8Array(body) });
  const putAnswer = await put.text();
  check(put.status === 200, `signatureUrl PUT: ${put.status} ${putAnswer}`);
  check((await client.get(`${prefix}/presigned.txt`)).content.equals(body), 'signatureUrl PUT: bytes differ');
  ok('signatureUrl GET and PUT');

  await client.delete(`${prefix}/hello.txt`);
  await expectError(client.get(`${prefix}/hello.txt`), 404, 'NoSuchKey', 'get after delete');
  ok('delete');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  args.run = `${Date.now()}-${process.pid}`;
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'ali-oss-peer-'));
  const source = path.join(workdir, 'source.bin');
  fs.writeFileSync(source, crypto.randomBytes(5 * 1024 * 1024 + 1234));
  console.log(`ali-oss ${require('ali-oss/package.json').version} against ${args.endpoint}`);
  try {
    const permanent = { accessKeyId: args['access-key-id'], accessKeySecret: args['access-key-secret'] };
    await suite(args, 'v1', permanent, source);
    await suite(args, 'v4', { ...permanent, authorizationV4: true }, source);
    if (args['sts-access-key-id']) {
      const temporary = {
        accessKeyId: args['sts-access-key-id'],
        accessKeySecret: args['sts-access-key-secret'],
        stsToken: args['sts-token'],
      };
      await suite(args, 'sts-v1', temporary, source);
      await suite(args, 'sts-v4', { ...temporary, authorizationV4: true }, source);
    }
  } finally {
    fs.rmSync(workdir, { recursive: true, force: true });
  }
  console.log('ali-oss peer: every check passed');
}

main().catch((error) => {
  console.error(`FAILED: ${error.message}`);
  process.exit(1);
});
