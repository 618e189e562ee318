#!/usr/bin/env python3
"""Drives the official OSS Python SDK V2, alibabacloud-oss-v2, unmodified, against an OSS endpoint.

Made for the ossup mock server (`cargo xtask oss2` starts one and runs this script after the oss2
peer), but it works against any endpoint it is given. With V4 signatures (the SDK's default) and
with V1, path-style, it checks:

- put_object, get_object (bytes), head_object, copy_object, and head_object of a missing key raising NoSuchKey
  (the code comes from the x-oss-err header: a HEAD answer has no body);
- list_objects_v2 through the SDK's paginator, with a delimiter and small pages;
- delete_multiple_objects, and get_bucket_location;
- a multipart upload by hand (initiate, three upload_part, list_parts, complete), read back;
- the SDK's Uploader with its checkpoint (the SDK checks the object's CRC-64 itself);
- presigned GET and PUT URLs used with urllib, and a presigned URL that has expired refused;
- with temporary credentials (--sts-* arguments): put, get and the Uploader again.

Every check prints a line; the first mismatch stops the script with exit status 1 and says what
differed.
"""

import argparse
import datetime
import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

import alibabacloud_oss_v2 as oss

KIB = 1024
MIB = 1024 * KIB


class CheckFailed(Exception):
    """A check did not hold; the message says what was expected and what came."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def passed(what):
    print(f"ok  {what}", flush=True)


def client_for(args, signature, credentials):
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(*credentials)
    config.region = args.region
    config.endpoint = args.endpoint
    config.signature_version = signature
    config.use_path_style = True
    return oss.Client(config)


def service_code(error):
    """The OSS error code an SDK exception carries, however deep it is wrapped."""
    seen = error
    while seen is not None:
        code = getattr(seen, "code", None)
        if code:
            return code
        seen = seen.__cause__ or seen.__context__
    return None


def read_url(url, method="GET", data=None, headers=None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def objects(client, bucket, key, data, what):
    body = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key)).body.read()
    check(body == data, f"{what}: {key} read back {len(body)} bytes differing from the {len(data)} put")


def basic(client, args, prefix, label):
    bucket = args.bucket
    key = f"{prefix}/hello.bin"
    data = os.urandom(200 * KIB) + b"end"
    client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))
    objects(client, bucket, key, data, "put_object")
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
    check(head.content_length == len(data), f"head_object: Content-Length {head.content_length}")
    passed(f"{label}: put_object, get_object, head_object")

    copy = f"{prefix}/copied.bin"
    client.copy_object(
        oss.CopyObjectRequest(bucket=bucket, key=copy, source_bucket=bucket, source_key=key)
    )
    objects(client, bucket, copy, data, "copy_object")
    passed(f"{label}: copy_object")

    try:
        client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key + ".missing"))
        raise CheckFailed("head_object of a missing key succeeded")
    except oss.exceptions.OperationError as error:
        code = service_code(error)
        check(code == "NoSuchKey", f"head_object of a missing key: code {code!r}, not NoSuchKey")
    passed(f"{label}: head_object of a missing key is NoSuchKey")

    names = [f"{prefix}/list/{i:02d}" for i in range(9)] + [
        f"{prefix}/list/sub{i % 2}/{i}" for i in range(4)
    ]
    for name in names:
        client.put_object(oss.PutObjectRequest(bucket=bucket, key=name, body=b"x"))
    keys, prefixes, pages = [], [], 0
    request = oss.ListObjectsV2Request(
        bucket=bucket, prefix=f"{prefix}/list/", delimiter="/", max_keys=4
    )
    for page in client.list_objects_v2_paginator().iter_page(request):
        pages += 1
        keys += [o.key for o in page.contents or []]
        prefixes += [p.prefix for p in page.common_prefixes or []]
    check(keys == names[:9], f"list_objects_v2: keys {keys}")
    check(
        prefixes == [f"{prefix}/list/sub0/", f"{prefix}/list/sub1/"],
        f"list_objects_v2: common prefixes {prefixes}",
    )
    check(pages == 3, f"list_objects_v2: {pages} pages of at most 4 for 11 entries")
    passed(f"{label}: list_objects_v2 paginator, delimiter and pages of 4")

    result = client.delete_multiple_objects(
        oss.DeleteMultipleObjectsRequest(
            bucket=bucket, objects=[oss.DeleteObject(key=name) for name in names[:5]]
        )
    )
    deleted = sorted(d.key for d in result.deleted_objects or [])
    check(deleted == sorted(names[:5]), f"delete_multiple_objects: deleted {deleted}")
    left = client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix=f"{prefix}/list/"))
    check(left.key_count == len(names) - 5, f"delete_multiple_objects: {left.key_count} keys left")
    location = client.get_bucket_location(oss.GetBucketLocationRequest(bucket=bucket))
    check(
        location.location == f"oss-{args.region}",
        f"get_bucket_location: {location.location!r}",
    )
    passed(f"{label}: delete_multiple_objects of 5 keys, get_bucket_location")


def multipart(client, args, prefix, label):
    bucket = args.bucket
    key = f"{prefix}/multipart.bin"
    parts = [os.urandom(100 * KIB + i) for i in range(3)]
    upload_id = client.initiate_multipart_upload(
        oss.InitiateMultipartUploadRequest(bucket=bucket, key=key)
    ).upload_id
    uploaded = []
    for number, body in enumerate(parts, start=1):
        answer = client.upload_part(
            oss.UploadPartRequest(
                bucket=bucket, key=key, upload_id=upload_id, part_number=number, body=body
            )
        )
        expected = '"' + hashlib.md5(body).hexdigest().upper() + '"'
        check(answer.etag.upper() == expected, f"upload_part {number}: ETag {answer.etag}")
        uploaded.append(oss.UploadPart(part_number=number, etag=answer.etag))
    listed = client.list_parts(oss.ListPartsRequest(bucket=bucket, key=key, upload_id=upload_id))
    check(
        [p.part_number for p in listed.parts] == [1, 2, 3],
        f"list_parts: {[p.part_number for p in listed.parts]}",
    )
    client.complete_multipart_upload(
        oss.CompleteMultipartUploadRequest(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(parts=uploaded),
        )
    )
    objects(client, bucket, key, b"".join(parts), "complete_multipart_upload")
    passed(f"{label}: initiate, upload_part x3, list_parts, complete")


def uploader(client, args, prefix, label, workdir):
    bucket = args.bucket
    source = os.path.join(workdir, "source.bin")
    if not os.path.exists(source):
        with open(source, "wb") as f:
            f.write(os.urandom(3 * MIB + 4321))
    with open(source, "rb") as f:
        data = f.read()
    checkpoints = os.path.join(workdir, f"checkpoints-{label}") + os.sep
    os.makedirs(checkpoints, exist_ok=True)
    key = f"{prefix}/uploaded.bin"
    up = client.uploader(
        part_size=MIB, parallel_num=3, enable_checkpoint=True, checkpoint_dir=checkpoints
    )
    result = up.upload_file(oss.PutObjectRequest(bucket=bucket, key=key), filepath=source)
    check(result.upload_id, "the Uploader did not upload in parts")
    objects(client, bucket, key, data, "Uploader")
    check(not os.listdir(checkpoints), f"the Uploader left checkpoints: {os.listdir(checkpoints)}")
    passed(f"{label}: Uploader with a checkpoint, 4 parts of 1 MiB, CRC-64 checked by the SDK")


def presigned(client, args, prefix, label):
    bucket = args.bucket
    key = f"{prefix}/presigned.bin"
    body = b"given away by a presigned URL " * 50
    five_minutes = datetime.timedelta(minutes=5)
    # The content type is signed: urllib would send its own (a form's) unless given the one signed.
    put = client.presign(
        oss.PutObjectRequest(bucket=bucket, key=key, content_type="application/octet-stream"),
        expires=five_minutes,
    )
    status, answer = read_url(put.url, "PUT", body, dict(put.signed_headers or {}))
    check(status == 200, f"presigned PUT: {status} {answer[:300]!r}")
    get = client.presign(oss.GetObjectRequest(bucket=bucket, key=key), expires=five_minutes)
    status, answer = read_url(get.url)
    check(status == 200 and answer == body, f"presigned GET: {status}, {len(answer)} bytes")
    short = client.presign(
        oss.GetObjectRequest(bucket=bucket, key=key), expires=datetime.timedelta(seconds=1)
    )
    time.sleep(2.1)
    status, answer = read_url(short.url)
    check(
        status == 403 and b"<Code>AccessDenied</Code>" in answer,
        f"an expired presigned GET: {status} {answer[:300]!r}",
    )
    passed(f"{label}: presigned PUT and GET, an expired one refused")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--access-key-secret", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--sts-access-key-id")
    parser.add_argument("--sts-access-key-secret")
    parser.add_argument("--sts-token")
    args = parser.parse_args()
    run = time.strftime("%Y%m%d%H%M%S") + f"-{os.getpid()}"
    permanent = (args.access_key_id, args.access_key_secret, None)
    with tempfile.TemporaryDirectory(prefix="oss-v2-peer-") as workdir:
        try:
            print(f"alibabacloud-oss-v2 {oss.__version__} against {args.endpoint}", flush=True)
            for signature in ["v4", "v1"]:
                client = client_for(args, signature, permanent)
                prefix = f"oss-v2-peer/{run}/{signature}"
                basic(client, args, prefix, signature)
                multipart(client, args, prefix, signature)
                uploader(client, args, prefix, signature, workdir)
                presigned(client, args, prefix, signature)
            if args.sts_access_key_id:
                temporary = (args.sts_access_key_id, args.sts_access_key_secret, args.sts_token)
                for signature in ["v4", "v1"]:
                    client = client_for(args, signature, temporary)
                    prefix = f"oss-v2-peer/{run}/sts-{signature}"
                    label = f"{signature} with temporary credentials"
                    basic(client, args, prefix, label)
                    uploader(client, args, prefix, f"sts-{signature}", workdir)
                    presigned(client, args, prefix, label)
        except CheckFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr, flush=True)
            sys.exit(1)
    print("alibabacloud-oss-v2 peer: every check passed", flush=True)


if __name__ == "__main__":
    main()
