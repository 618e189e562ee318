#!/usr/bin/env python3
"""Drives the official OSS Python SDK, oss2, unmodified, against an OSS endpoint and checks what it sees.

Made for the ossup mock server (`cargo xtask oss2` starts one and runs this script), but it works
against any endpoint it is given. It checks:

- oss2.resumable_upload of a multi-part file with 4 threads, with a ResumableStore in a temporary
  directory, with the default store (store=None, under $HOME), and interrupted then resumed from its
  store; each time the object is read back and its bytes and CRC-64 compared with the file's;
- init_multipart_upload, upload_part, list_parts (paged), complete_multipart_upload and
  abort_multipart_upload by hand, with part ETags and CRCs;
- get_object with byte ranges;
- the exceptions oss2 raises: NoSuchUpload (list_parts / complete after abort and after complete),
  InvalidDigest (a wrong Content-MD5), SignatureDoesNotMatch (a wrong secret), NoSuchKey;
- keys that test how both sides encode and sign them (CJK, spaces, +, %, ?, #, ../, emoji), V1 and V4;
- the same with V4 signatures (oss2.ProviderAuthV4 and a region).

Every check prints a line; the first mismatch stops the script with exit status 1 and says what
differed. Arguments default to the environment: OSSUP_CONFORMANCE_ENDPOINT, OSSUP_CONFORMANCE_BUCKET,
OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_REGION.
"""

import argparse
import base64
import hashlib
import logging
import os
import random
import sys
import tempfile
import time

import oss2
from oss2.credentials import StaticCredentialsProvider
from oss2.models import PartInfo

KIB = 1024
MIB = 1024 * KIB

# A file of 13 parts of 256 KiB, the last one short.
FILE_SIZE = 3 * MIB + 12345
PART_SIZE = 256 * KIB
PART_COUNT = -(-FILE_SIZE // PART_SIZE)
THREADS = 4
THRESHOLD = 100 * KIB


class CheckFailed(Exception):
    """A check did not hold; the message says what was expected and what came."""


class Interrupted(Exception):
    """Raised from a progress callback to stop an upload part way, as a crash would."""


PASSED = []


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def passed(name):
    PASSED.append(name)
    print(f"ok    {name}", flush=True)


def crc64(data):
    crc = oss2.utils.Crc64()
    crc.update(data)
    return crc.crc


def md5_hex_upper(data):
    return hashlib.md5(data).hexdigest().upper()


def content_md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def expect_error(error_type, call, what, status, code):
    """Runs `call`, which must raise `error_type` with this status and code and a request id."""
    try:
        call()
    except error_type as error:
        check(
            error.status == status and error.code == code,
            f"{what}: expected {status} {code}, got {error.status} {error.code}: {error.message}",
        )
        check(error.request_id, f"{what}: {error.code} without a request id")
        return error
    except oss2.exceptions.OssError as error:
        raise CheckFailed(
            f"{what}: expected {error_type.__name__} ({status} {code}), "
            f"got {type(error).__name__} ({error.status} {error.code}): {error.message}"
        ) from error
    raise CheckFailed(f"{what}: expected {error_type.__name__} ({status} {code}), but it succeeded")


class Peer:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.prefix = f"oss2-peer/{int(time.time())}-{os.getpid()}/"
        self.keys = set()
        auth = oss2.Auth(args.access_key_id, args.access_key_secret)
        self.bucket = oss2.Bucket(auth, args.endpoint, args.bucket)
        self.rng = random.Random(20240611)
        self.data = self.rng.randbytes(FILE_SIZE)
        self.path = os.path.join(workdir, "source.bin")
        with open(self.path, "wb") as f:
            f.write(self.data)

    def key(self, name):
        key = self.prefix + name
        self.keys.add(key)
        return key

    def expect_object(self, bucket, key, data, what, parts=None):
        """Reads `key` back whole: bytes, server CRC (checked by oss2 as it reads, and here), type."""
        result = bucket.get_object(key)
        body = result.read()
        check(
            body == data,
            f"{what}: get_object returned {len(body)} bytes that differ from the {len(data)} uploaded",
        )
        check(result.server_crc is not None, f"{what}: get_object answered without x-oss-hash-crc64ecma")
        check(
            result.server_crc == crc64(data),
            f"{what}: x-oss-hash-crc64ecma {result.server_crc} != CRC-64 of the file {crc64(data)}",
        )
        check(result.client_crc == result.server_crc, f"{what}: oss2's own CRC of the body differs")
        head = bucket.head_object(key)
        check(head.content_length == len(data), f"{what}: head_object length {head.content_length}")
        check(head.server_crc == crc64(data), f"{what}: head_object CRC {head.server_crc}")
        if parts is not None:
            check(head.object_type == "Multipart", f"{what}: object type {head.object_type!r}")
            check(
                head.etag.endswith(f"-{parts}"),
                f"{what}: ETag {head.etag!r} does not end with -{parts}",
            )

    def no_uploads_left(self, bucket, key, what):
        result = bucket.list_multipart_uploads(prefix=key)
        left = [(u.key, u.upload_id) for u in result.upload_list if u.key == key]
        check(not left, f"{what}: uploads still open for {key}: {left}")

    # --- resumable_upload ---

    def resumable_upload_with_a_store_in_a_temporary_directory(self):
        key = self.key("resumable/with-store.bin")
        store_root = os.path.join(self.workdir, "store")
        store = oss2.ResumableStore(root=store_root, dir="records")
        result = oss2.resumable_upload(
            self.bucket, key, self.path, store=store,
            multipart_threshold=THRESHOLD, part_size=PART_SIZE, num_threads=THREADS,
        )
        check(result.crc == crc64(self.data), f"complete CRC {result.crc} != file CRC {crc64(self.data)}")
        self.expect_object(self.bucket, key, self.data, "resumable_upload with a store", PART_COUNT)
        left = os.listdir(os.path.join(store_root, "records"))
        check(not left, f"records left in the store after a finished upload: {left}")
        self.no_uploads_left(self.bucket, key, "resumable_upload with a store")
        passed(f"resumable_upload, ResumableStore in a temporary directory, {PART_COUNT} parts, {THREADS} threads")

    def resumable_upload_with_the_default_store(self):
        key = self.key("resumable/default-store.bin")
        home = os.path.join(self.workdir, "home")
        os.makedirs(home)
        saved_home = os.environ.get("HOME")
        os.environ["HOME"] = home  # the default ResumableStore lives under ~/.py-oss-upload
        try:
            result = oss2.resumable_upload(
                self.bucket, key, self.path, store=None,
                multipart_threshold=THRESHOLD, part_size=PART_SIZE, num_threads=THREADS,
            )
        finally:
            if saved_home is None:
                del os.environ["HOME"]
            else:
                os.environ["HOME"] = saved_home
        check(result.crc == crc64(self.data), f"complete CRC {result.crc} != file CRC {crc64(self.data)}")
        self.expect_object(self.bucket, key, self.data, "resumable_upload without a store", PART_COUNT)
        store_dir = os.path.join(home, ".py-oss-upload")
        check(os.path.isdir(store_dir), "the default store directory was not used")
        check(not os.listdir(store_dir), f"records left in the default store: {os.listdir(store_dir)}")
        passed(f"resumable_upload, store=None (oss2's default store under $HOME), {THREADS} threads")

    def resumable_upload_interrupted_then_resumed(self):
        key = self.key("resumable/interrupted.bin")
        store = oss2.ResumableStore(root=os.path.join(self.workdir, "resume-store"), dir="records")
        stop_after = 3

        def crash_after_three_parts(consumed, total):
            if consumed >= stop_after * PART_SIZE:
                raise Interrupted(f"stopped after {consumed} of {total} bytes")

        try:
            oss2.resumable_upload(
                self.bucket, key, self.path, store=store,
                multipart_threshold=THRESHOLD, part_size=PART_SIZE, num_threads=1,
                progress_callback=crash_after_three_parts,
            )
        except Interrupted:
            pass
        else:
            raise CheckFailed("the interrupted upload finished although its progress callback raised")
        record = store.get(store.make_store_key(self.bucket.bucket_name, key, os.path.abspath(self.path)))
        check(record is not None, "no record in the store after the interrupted upload")
        upload_id = record["upload_id"]
        listed = [p.part_number for p in oss2.PartIterator(self.bucket, key, upload_id)]
        check(
            listed == list(range(1, stop_after + 1)),
            f"parts on the server after the interruption: {listed}, expected 1..{stop_after}",
        )
        result = oss2.resumable_upload(
            self.bucket, key, self.path, store=store,
            multipart_threshold=THRESHOLD, part_size=PART_SIZE, num_threads=THREADS,
        )
        check(result.crc == crc64(self.data), f"complete CRC {result.crc} != file CRC {crc64(self.data)}")
        self.expect_object(self.bucket, key, self.data, "resumed resumable_upload", PART_COUNT)
        expect_error(
            oss2.exceptions.NoSuchUpload,
            lambda: self.bucket.list_parts(key, upload_id),
            "list_parts of the resumed (now completed) upload", 404, "NoSuchUpload",
        )
        self.no_uploads_left(self.bucket, key, "resumed resumable_upload")
        passed(f"resumable_upload interrupted after {stop_after} parts, resumed from its store with the same upload id")

    # --- multipart by hand ---

    def multipart_by_hand_then_abort(self):
        key = self.key("by-hand/aborted.bin")
        upload_id = self.bucket.init_multipart_upload(key).upload_id
        check(upload_id, "init_multipart_upload gave no upload id")
        sizes = [100 * KIB, 100 * KIB, 5000]
        parts = []
        for number, size in enumerate(sizes, start=1):
            body = self.rng.randbytes(size)
            result = self.bucket.upload_part(key, upload_id, number, body)
            check(result.etag == md5_hex_upper(body), f"part {number} ETag {result.etag!r} != uppercase MD5")
            check(result.crc == crc64(body), f"part {number} CRC {result.crc} != {crc64(body)}")
            parts.append((number, result.etag, size, crc64(body)))
        listed = self.bucket.list_parts(key, upload_id)
        got = [(p.part_number, p.etag, p.size) for p in listed.parts]
        check(got == [(n, e, s) for n, e, s, _ in parts], f"list_parts gave {got}")
        check(not listed.is_truncated, "list_parts of 3 parts is truncated")
        paged = [(p.part_number, p.etag) for p in oss2.PartIterator(self.bucket, key, upload_id, max_parts=1)]
        check(paged == [(n, e) for n, e, _, _ in parts], f"list_parts one part a page gave {paged}")
        result = self.bucket.abort_multipart_upload(key, upload_id)
        check(result.status == 204, f"abort_multipart_upload answered {result.status}, expected 204")
        expect_error(
            oss2.exceptions.NoSuchUpload, lambda: self.bucket.list_parts(key, upload_id),
            "list_parts after abort", 404, "NoSuchUpload",
        )
        infos = [PartInfo(n, e, size=s, part_crc=c) for n, e, s, c in parts]
        expect_error(
            oss2.exceptions.NoSuchUpload,
            lambda: self.bucket.complete_multipart_upload(key, upload_id, infos),
            "complete_multipart_upload after abort", 404, "NoSuchUpload",
        )
        self.no_uploads_left(self.bucket, key, "abort")
        passed("init_multipart_upload + upload_part x3 + list_parts (paged) + abort; then NoSuchUpload from list_parts and complete")

    def multipart_by_hand_then_complete(self):
        key = self.key("by-hand/completed.bin")
        upload_id = self.bucket.init_multipart_upload(key).upload_id
        bodies = [self.rng.randbytes(100 * KIB), self.rng.randbytes(777)]
        infos = []
        for number, body in enumerate(bodies, start=1):
            result = self.bucket.upload_part(key, upload_id, number, body)
            infos.append(PartInfo(number, result.etag, size=len(body), part_crc=result.crc))
        # oss2 combines the part CRCs and compares the result with the Complete answer itself.
        result = self.bucket.complete_multipart_upload(key, upload_id, infos)
        whole = b"".join(bodies)
        check(result.crc == crc64(whole), f"complete CRC {result.crc} != {crc64(whole)}")
        self.expect_object(self.bucket, key, whole, "complete by hand", len(bodies))
        expect_error(
            oss2.exceptions.NoSuchUpload, lambda: self.bucket.list_parts(key, upload_id),
            "list_parts after complete", 404, "NoSuchUpload",
        )
        expect_error(
            oss2.exceptions.NoSuchUpload,
            lambda: self.bucket.complete_multipart_upload(key, upload_id, infos),
            "a second complete_multipart_upload", 404, "NoSuchUpload",
        )
        passed("init + upload_part x2 + complete_multipart_upload (combined CRC checked by oss2); then NoSuchUpload")

    # --- reads ---

    def range_reads(self):
        key = self.key("ranges.bin")
        data = self.data[: 300 * KIB]
        self.bucket.put_object(key, data)
        n = len(data)
        for byte_range, expected in [
            ((10, 99), data[10:100]),
            ((0, 0), data[0:1]),
            ((None, 1000), data[n - 1000:]),
            ((n - 500, None), data[n - 500:]),
            ((100 * KIB, 200 * KIB - 1), data[100 * KIB:200 * KIB]),
        ]:
            result = self.bucket.get_object(key, byte_range=byte_range)
            body = result.read()
            check(result.status == 206, f"get_object byte_range={byte_range}: status {result.status}")
            check(
                body == expected,
                f"get_object byte_range={byte_range}: {len(body)} bytes, expected {len(expected)} matching bytes",
            )
        passed("get_object with byte_range: (10, 99), (0, 0), last 1000, from n-500, a 100 KiB middle slice")

    # --- errors ---

    def errors(self):
        key = self.key("errors.bin")
        upload_id = self.bucket.init_multipart_upload(key).upload_id
        body = self.rng.randbytes(2000)
        expect_error(
            oss2.exceptions.InvalidDigest,
            lambda: self.bucket.upload_part(key, upload_id, 1, body, headers={"Content-MD5": content_md5(b"other")}),
            "upload_part with a wrong Content-MD5", 400, "InvalidDigest",
        )
        check(not self.bucket.list_parts(key, upload_id).parts, "a part was stored despite InvalidDigest")
        expect_error(
            oss2.exceptions.InvalidDigest,
            lambda: self.bucket.put_object(key, body, headers={"Content-MD5": content_md5(b"other")}),
            "put_object with a wrong Content-MD5", 400, "InvalidDigest",
        )
        self.bucket.abort_multipart_upload(key, upload_id)
        expect_error(
            oss2.exceptions.NoSuchKey, lambda: self.bucket.get_object(self.key("never-written")),
            "get_object of a missing key", 404, "NoSuchKey",
        )
        wrong = oss2.Bucket(oss2.Auth(self.args.access_key_id, self.args.access_key_secret + "x"),
                            self.args.endpoint, self.args.bucket)
        error = expect_error(
            oss2.exceptions.SignatureDoesNotMatch, lambda: wrong.put_object(key, b"nope"),
            "put_object signed with a wrong secret", 403, "SignatureDoesNotMatch",
        )
        check("StringToSign" in error.details, f"SignatureDoesNotMatch without StringToSign: {error.details}")
        passed("exceptions: InvalidDigest (upload_part, put_object), NoSuchKey, SignatureDoesNotMatch with StringToSign")

    # --- keys that test both sides' encoding ---

    def unusual_keys(self):
        v4 = oss2.Bucket(
            oss2.ProviderAuthV4(StaticCredentialsProvider(self.args.access_key_id, self.args.access_key_secret)),
            self.args.endpoint, self.args.bucket, region=self.args.region,
        ) if self.args.region else None
        names = [
            "keys/文件 名/ünïcødé.bin",
            "keys/plus+percent%20and%2Fslash.bin",
            "keys/query?x=1&y=2#frag;,@$!'()*.bin",
            "keys/../../etc/passwd",
            "keys/a/./b",
            "keys/emoji-😀 ~tilde.bin",
        ]
        for label, bucket in [("V1", self.bucket), ("V4", v4)]:
            if bucket is None:
                continue
            for name in names:
                key = self.key(f"{label}/{name}")
                body = self.rng.randbytes(1500)
                bucket.put_object(key, body)
                self.expect_object(bucket, key, body, f"{label} put_object of {key!r}")
                upload_id = bucket.init_multipart_upload(key).upload_id
                part = bucket.upload_part(key, upload_id, 1, body)
                listed = [p.part_number for p in bucket.list_parts(key, upload_id).parts]
                check(listed == [1], f"{label} list_parts of {key!r}: {listed}")
                uploads = [u.key for u in bucket.list_multipart_uploads(prefix=key).upload_list]
                check(key in uploads, f"{label} list_multipart_uploads(prefix={key!r}) gave {uploads}")
                bucket.complete_multipart_upload(
                    key, upload_id, [PartInfo(1, part.etag, size=len(body), part_crc=part.crc)]
                )
                self.expect_object(bucket, key, body, f"{label} multipart upload of {key!r}", 1)
                bucket.delete_object(key)
                expect_error(
                    oss2.exceptions.NoSuchKey, lambda: bucket.get_object(key),
                    f"{label} get_object of {key!r} after delete_object", 404, "NoSuchKey",
                )
        passed("keys with CJK, spaces, +, %, ?, &, #, ../, ./, emoji: put/get/multipart/list/delete, V1 and V4")

    # --- V4 ---

    def v4(self):
        region = self.args.region
        check(region, "no region for V4: pass --region or set OSS_REGION")
        auth = oss2.ProviderAuthV4(StaticCredentialsProvider(self.args.access_key_id, self.args.access_key_secret))
        bucket = oss2.Bucket(auth, self.args.endpoint, self.args.bucket, region=region)
        key = self.key("v4/put.bin")
        body = self.rng.randbytes(5000)
        result = bucket.put_object(key, body)
        check(result.crc == crc64(body), f"V4 put_object CRC {result.crc} != {crc64(body)}")
        self.expect_object(bucket, key, body, "V4 put_object")
        ranged = bucket.get_object(key, byte_range=(100, 199)).read()
        check(ranged == body[100:200], "V4 ranged get_object returned other bytes")

        key = self.key("v4/resumable.bin")
        data = self.data[: 700 * KIB]
        store = oss2.ResumableStore(root=os.path.join(self.workdir, "v4-store"), dir="records")
        result = oss2.resumable_upload(
            bucket, key, self._write("v4-source.bin", data), store=store,
            multipart_threshold=THRESHOLD, part_size=200 * KIB, num_threads=2,
        )
        check(result.crc == crc64(data), f"V4 resumable_upload CRC {result.crc} != {crc64(data)}")
        self.expect_object(bucket, key, data, "V4 resumable_upload", 4)

        key = self.key("v4/aborted.bin")
        upload_id = bucket.init_multipart_upload(key).upload_id
        bucket.upload_part(key, upload_id, 1, body)
        check([p.part_number for p in bucket.list_parts(key, upload_id).parts] == [1], "V4 list_parts")
        bucket.abort_multipart_upload(key, upload_id)
        expect_error(
            oss2.exceptions.NoSuchUpload, lambda: bucket.list_parts(key, upload_id),
            "V4 list_parts after abort", 404, "NoSuchUpload",
        )
        wrong = oss2.Bucket(
            oss2.ProviderAuthV4(StaticCredentialsProvider(self.args.access_key_id, self.args.access_key_secret + "x")),
            self.args.endpoint, self.args.bucket, region=region,
        )
        expect_error(
            oss2.exceptions.SignatureDoesNotMatch, lambda: wrong.get_object(self.key("v4/put.bin")),
            "V4 get_object signed with a wrong secret", 403, "SignatureDoesNotMatch",
        )
        passed(f"V4 (ProviderAuthV4, region {region}): put/get/range, resumable_upload, list_parts, abort, SignatureDoesNotMatch")

    def _write(self, name, data):
        path = os.path.join(self.workdir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def clean_up(self):
        for key in sorted(self.keys):
            try:
                for upload in self.bucket.list_multipart_uploads(prefix=key).upload_list:
                    if upload.key == key:
                        self.bucket.abort_multipart_upload(key, upload.upload_id)
                self.bucket.delete_object(key)
            except oss2.exceptions.OssError as error:
                print(f"warning: could not clean up {key}: {error.code} {error.message}", file=sys.stderr)


def parse_args():
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default=env("OSSUP_CONFORMANCE_ENDPOINT"), help="e.g. http://127.0.0.1:9000")
    parser.add_argument("--bucket", default=env("OSSUP_CONFORMANCE_BUCKET"))
    parser.add_argument("--access-key-id", default=env("OSS_ACCESS_KEY_ID"))
    parser.add_argument("--access-key-secret", default=env("OSS_ACCESS_KEY_SECRET"))
    parser.add_argument("--region", default=env("OSS_REGION"), help="for V4, e.g. cn-hangzhou")
    args = parser.parse_args()
    missing = [name for name in ("endpoint", "bucket", "access_key_id", "access_key_secret") if not getattr(args, name)]
    if missing:
        parser.error("missing " + ", ".join("--" + m.replace("_", "-") for m in missing)
                     + " (or the environment variables named in --help)")
    return args


def main():
    logging.basicConfig(level=logging.CRITICAL)
    args = parse_args()
    print(f"oss2 {oss2.__version__} against {args.endpoint}, bucket {args.bucket}", flush=True)
    with tempfile.TemporaryDirectory(prefix="oss2-peer-") as workdir:
        peer = Peer(args, workdir)
        steps = [
            peer.resumable_upload_with_a_store_in_a_temporary_directory,
            peer.resumable_upload_with_the_default_store,
            peer.resumable_upload_interrupted_then_resumed,
            peer.multipart_by_hand_then_abort,
            peer.multipart_by_hand_then_complete,
            peer.range_reads,
            peer.errors,
            peer.unusual_keys,
            peer.v4,
        ]
        try:
            for step in steps:
                step()
        except CheckFailed as failure:
            print(f"FAIL  {step.__name__}: {failure}", flush=True)
            print(f"oss2: {len(PASSED)} passed, 1 failed", flush=True)
            return 1
        except oss2.exceptions.OssError as error:
            print(f"FAIL  {step.__name__}: oss2 raised {type(error).__name__} "
                  f"({error.status} {error.code}): {error.message} (request id {error.request_id})", flush=True)
            print(f"oss2: {len(PASSED)} passed, 1 failed", flush=True)
            return 1
        finally:
            peer.clean_up()
    print(f"oss2: {len(PASSED)} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
