//! Objects and buckets: PutObject/GetObject/HeadObject/DeleteObject, ranges, bucket APIs, addressing
//! and hostile keys.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use base64::Engine as _;
use common::{BUCKET, Client, data, server};
use http::Method;
use ossup_proto::checksum::{crc64, md5};
use ossup_proto::etag::part_etag;
use ossup_proto::xml::{
    DeleteResult, GetBucketInfoResult, ListBucketResult, ListBucketV2Result, from_xml,
};

#[tokio::test]
async fn put_get_head_delete_round_trip() {
    let server = server().await;
    let client = Client::new(&server);
    let body = data(1, 300_000);
    let r = client
        .req(Method::PUT, "obj")
        .header("content-type", "text/plain")
        .header("x-oss-meta-color", "blue")
        .header("cache-control", "no-cache")
        .body(body.clone())
        .send()
        .await
        .ok();
    assert_eq!(r.header("etag"), Some(part_etag(&md5(&body)).as_str()));
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc64(&body).to_string().as_str())
    );
    let got = client.get("obj").await.ok();
    assert_eq!(got.body.as_ref(), body.as_slice());
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.header("x-oss-meta-color"), Some("blue"));
    assert_eq!(got.header("cache-control"), Some("no-cache"));
    assert_eq!(got.header("x-oss-object-type"), Some("Normal"));
    assert_eq!(got.header("x-oss-storage-class"), Some("Standard"));
    let head = client.req(Method::HEAD, "obj").send().await.ok();
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());
    let overridden = client
        .req(Method::GET, "obj")
        .query("response-content-type", "application/json")
        .send()
        .await
        .ok();
    assert_eq!(overridden.header("content-type"), Some("application/json"));

    let r = client.req(Method::DELETE, "obj").send().await;
    assert_eq!(r.status, 204);
    client.get("obj").await.expect_error(404, "NoSuchKey");
    // Deleting what is not there is still 204, as in OSS.
    assert_eq!(client.req(Method::DELETE, "obj").send().await.status, 204);
    let head = client.req(Method::HEAD, "obj").send().await;
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty());
    assert!(head.header("x-oss-request-id").is_some());
}

#[tokio::test]
async fn empty_objects_are_objects() {
    let server = server().await;
    let client = Client::new(&server);
    client.req(Method::PUT, "empty").send().await.ok();
    let got = client.get("empty").await.ok();
    assert!(got.body.is_empty());
    assert_eq!(got.header("x-oss-hash-crc64ecma"), Some("0"));
}

#[tokio::test]
async fn range_reads_follow_the_documented_oss_rules() {
    let server = server().await;
    let client = Client::new(&server);
    let body = data(2, 1000);
    client
        .req(Method::PUT, "r")
        .body(body.clone())
        .send()
        .await
        .ok();
    let range = |spec: &'static str, standard: bool| {
        let client = client.clone();
        async move {
            let mut req = client.req(Method::GET, "r").header("range", spec);
            if standard {
                req = req.header("x-oss-range-behavior", "standard");
            }
            req.send().await
        }
    };
    let r = range("bytes=10-19", false).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(r.body.as_ref(), &body[10..20]);
    // The CRC header is the whole object's, as OSS sends it.
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc64(&body).to_string().as_str())
    );
    let r = range("bytes=-100", false).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_ref(), &body[900..]);
    let r = range("bytes=990-", false).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));
    for invalid in [
        "bytes=500-2000",
        "bytes=1000-2000",
        "bytes=9-3",
        "bytes=x-y",
        "bytes=0-1,3-4",
    ] {
        let r = range(invalid, false).await;
        assert_eq!(r.status, 200, "{invalid}");
        assert_eq!(r.body.as_ref(), body.as_slice(), "{invalid}");
        assert!(r.header("content-range").is_none());
    }
    let r = range("bytes=500-2000", true).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_ref(), &body[500..]);
    let r = range("bytes=1000-2000", true).await;
    r.expect_error(416, "InvalidRange");
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
}

#[tokio::test]
async fn ranges_span_the_parts_of_a_multipart_object() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("m").await;
    let (a, b) = (data(3, 102_400), data(4, 5000));
    let ea = client.upload_part("m", &id, 1, &a).await.ok();
    let eb = client.upload_part("m", &id, 2, &b).await.ok();
    client
        .complete(
            "m",
            &id,
            &[
                (1, ea.header("etag").unwrap().to_owned()),
                (2, eb.header("etag").unwrap().to_owned()),
            ],
        )
        .await
        .ok();
    let whole = [a, b].concat();
    let r = client
        .req(Method::GET, "m")
        .header("range", "bytes=102000-103000")
        .send()
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_ref(), &whole[102_000..=103_000]);
}

#[tokio::test]
async fn missing_bucket_and_key_are_404_with_names() {
    let server = server().await;
    let client = Client::new(&server);
    let err = client
        .req_in(Method::GET, "nobucket", "k")
        .send()
        .await
        .expect_error(404, "NoSuchBucket");
    assert_eq!(err.field("BucketName"), Some("nobucket"));
    let err = client.get("nokey").await.expect_error(404, "NoSuchKey");
    assert_eq!(err.field("Key"), Some("nokey"));
    client
        .req_in(Method::POST, "nobucket", "k")
        .query("uploads", "")
        .send()
        .await
        .expect_error(404, "NoSuchBucket");
}

#[tokio::test]
async fn bucket_lifecycle_and_bucket_info() {
    let server = server().await;
    let client = Client::new(&server);
    let r = client
        .req_in(Method::PUT, "fresh-bucket", "")
        .send()
        .await
        .ok();
    assert_eq!(r.status, 200);
    client
        .req_in(Method::PUT, "fresh-bucket", "")
        .send()
        .await
        .expect_error(409, "BucketAlreadyExists");
    let r = client
        .req_in(Method::GET, "fresh-bucket", "")
        .query("bucketInfo", "")
        .send()
        .await
        .ok();
    let info: GetBucketInfoResult = from_xml("BucketInfo", &r.text()).unwrap();
    assert_eq!(info.bucket.name, "fresh-bucket");
    assert_eq!(info.bucket.location, "oss-cn-hangzhou");
    assert_eq!(info.bucket.access_control_list.grant, "private");
    assert!(info.bucket.creation_date.ends_with(".000Z"));
    // The elements oss2's parse_get_bucket_info requires.
    for element in [
        "<Name>",
        "<CreationDate>",
        "<StorageClass>",
        "<ExtranetEndpoint>",
        "<IntranetEndpoint>",
        "<Location>",
        "<Owner><ID>",
        "<DisplayName>",
        "<AccessControlList><Grant>",
    ] {
        assert!(r.text().contains(element), "{element} in {}", r.text());
    }

    client
        .req_in(Method::PUT, "fresh-bucket", "k")
        .body("x")
        .send()
        .await
        .ok();
    client
        .req_in(Method::DELETE, "fresh-bucket", "")
        .send()
        .await
        .expect_error(409, "BucketNotEmpty");
    client
        .req_in(Method::DELETE, "fresh-bucket", "k")
        .send()
        .await
        .ok();
    let upload = client
        .req_in(Method::POST, "fresh-bucket", "u")
        .query("uploads", "")
        .send()
        .await
        .ok();
    let upload_id: ossup_proto::xml::InitiateMultipartUploadResult =
        from_xml("InitiateMultipartUploadResult", &upload.text()).unwrap();
    client
        .req_in(Method::DELETE, "fresh-bucket", "")
        .send()
        .await
        .expect_error(409, "BucketNotEmpty");
    client
        .req_in(Method::DELETE, "fresh-bucket", "u")
        .query("uploadId", &upload_id.upload_id)
        .send()
        .await
        .ok();
    let r = client
        .req_in(Method::DELETE, "fresh-bucket", "")
        .send()
        .await;
    assert_eq!(r.status, 204);
    client
        .req_in(Method::GET, "fresh-bucket", "")
        .query("bucketInfo", "")
        .send()
        .await
        .expect_error(404, "NoSuchBucket");
    client
        .req_in(Method::PUT, "Bad_Bucket", "")
        .send()
        .await
        .expect_error(400, "InvalidBucketName");
}

/// DeleteMultipleObjects (`POST /?delete`) deletes what its body names (a missing key counts as
/// deleted), lists them unless quiet, checks a Content-MD5, and takes 1 to 1,000 objects.
#[tokio::test]
async fn delete_multiple_objects_deletes_what_the_body_names() {
    let server = server().await;
    let client = Client::new(&server);
    for key in ["a", "b c", "d/e", "kept"] {
        client.req(Method::PUT, key).body("1").send().await.ok();
    }
    let delete = |body: String, quiet: bool| {
        let body = format!("<Delete><Quiet>{quiet}</Quiet>{body}</Delete>");
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5(body.as_bytes()));
        client
            .req(Method::POST, "")
            .query("delete", "")
            .header("content-md5", &md5)
            .body(body)
    };
    let objects = |keys: &[&str]| {
        keys.iter()
            .map(|k| format!("<Object><Key>{k}</Key></Object>"))
            .collect::<String>()
    };
    let answer = delete(objects(&["a", "b c", "never-there"]), false)
        .send()
        .await
        .ok();
    let result: DeleteResult = from_xml("DeleteResult", &answer.text()).unwrap();
    let deleted: Vec<&str> = result.deleted.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(deleted, ["a", "b c", "never-there"]);
    let quiet = delete(objects(&["d/e"]), true).send().await.ok();
    let result: DeleteResult = from_xml("DeleteResult", &quiet.text()).unwrap();
    assert!(result.deleted.is_empty());
    for gone in ["a", "b c", "d/e"] {
        client.get(gone).await.expect_error(404, "NoSuchKey");
    }
    client.get("kept").await.ok();

    let wrong_md5 = client
        .req(Method::POST, "")
        .query("delete", "")
        .header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(format!("<Delete>{}</Delete>", objects(&["kept"])));
    wrong_md5.send().await.expect_error(400, "InvalidDigest");
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    delete(objects(&too_many), true)
        .send()
        .await
        .expect_error(400, "MalformedXML");
    delete(String::new(), true)
        .send()
        .await
        .expect_error(400, "MalformedXML");
    client.get("kept").await.ok();
}

#[tokio::test]
async fn get_bucket_location_names_the_region() {
    let server = server().await;
    let answer = Client::new(&server)
        .req(Method::GET, "")
        .query("location", "")
        .send()
        .await
        .ok();
    assert!(
        answer
            .text()
            .contains("<LocationConstraint>oss-cn-hangzhou</LocationConstraint>"),
        "{}",
        answer.text()
    );
}

/// ListObjectsV2 (`list-type=2`) pages by an opaque continuation token, counts keys and rolled-up
/// prefixes in `KeyCount`, starts after `start-after`, and names owners only with `fetch-owner`.
#[tokio::test]
async fn list_objects_v2_pages_by_continuation_token() {
    let server = server().await;
    let client = Client::new(&server);
    for key in ["a", "b", "dir/x", "dir/y", "e"] {
        client.req(Method::PUT, key).body("1").send().await.ok();
    }
    let page = |token: Option<&str>, extra: &[(&str, &str)]| {
        let mut request = client
            .req(Method::GET, "")
            .query("list-type", "2")
            .query("max-keys", "2")
            .query("delimiter", "/");
        if let Some(token) = token {
            request = request.query("continuation-token", token);
        }
        for (name, value) in extra {
            request = request.query(name, value);
        }
        async move {
            let answer = request.send().await.ok();
            from_xml::<ListBucketV2Result>("ListBucketResult", &answer.text()).unwrap()
        }
    };
    let names = |page: &ListBucketV2Result| {
        let mut names: Vec<String> = page.contents.iter().map(|o| o.key.clone()).collect();
        names.extend(page.common_prefixes.iter().map(|p| p.prefix.clone()));
        names
    };
    let first = page(None, &[]).await;
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.key_count, 2);
    assert!(first.is_truncated);
    assert!(first.contents.iter().all(|o| o.owner.is_none()));
    let token = first
        .next_continuation_token
        .clone()
        .expect("a token when truncated");
    let second = page(Some(&token), &[("fetch-owner", "true")]).await;
    assert_eq!(names(&second), ["e", "dir/"]);
    assert_eq!(second.continuation_token.as_deref(), Some(token.as_str()));
    assert!(second.contents.iter().all(|o| o.owner.is_some()));
    assert!(!second.is_truncated);
    assert_eq!(second.next_continuation_token, None);

    let after = page(None, &[("start-after", "b")]).await;
    assert_eq!(names(&after), ["e", "dir/"]);
    assert_eq!(after.start_after.as_deref(), Some("b"));

    client
        .req(Method::GET, "")
        .query("list-type", "2")
        .query("continuation-token", "not a token!")
        .send()
        .await
        .expect_error(400, "InvalidArgument");
    client
        .req(Method::GET, "")
        .query("list-type", "3")
        .send()
        .await
        .expect_error(400, "InvalidArgument");
}

#[tokio::test]
async fn list_objects_pages_with_prefix_marker_and_delimiter() {
    let server = server().await;
    let client = Client::new(&server);
    for key in ["a/1", "a/2", "b", "c/x/1", "c/y", "d"] {
        client.req(Method::PUT, key).body(key).send().await.ok();
    }
    let list = |q: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        async move {
            let mut req = client.req(Method::GET, "");
            for (k, v) in q {
                req = req.query(k, v);
            }
            from_xml::<ListBucketResult>("ListBucketResult", &req.send().await.ok().text()).unwrap()
        }
    };
    let page = list(vec![("delimiter", "/"), ("max-keys", "2")]).await;
    assert_eq!(page.common_prefixes[0].prefix, "a/");
    assert_eq!(page.contents[0].key, "b");
    assert!(page.is_truncated);
    assert_eq!(page.next_marker.as_deref(), Some("b"));
    let page = list(vec![("delimiter", "/"), ("marker", "b")]).await;
    assert_eq!(page.common_prefixes[0].prefix, "c/");
    assert_eq!(page.contents[0].key, "d");
    let page = list(vec![("prefix", "c/")]).await;
    assert_eq!(
        page.contents
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["c/x/1", "c/y"]
    );
    assert_eq!(page.contents[0].size, 5);
    assert_eq!(page.contents[0].object_type, "Normal");
}

#[tokio::test]
async fn virtual_hosted_requests_take_the_bucket_from_the_host() {
    let server = server().await;
    let client = Client::new(&server);
    client
        .req(Method::PUT, "vh/key")
        .virtual_hosted("localhost")
        .body("hello")
        .send()
        .await
        .ok();
    // The same object, path-style.
    assert_eq!(client.get("vh/key").await.ok().body.as_ref(), b"hello");
    let r = client
        .req(Method::GET, "")
        .query("bucketInfo", "")
        .virtual_hosted("localhost")
        .send()
        .await
        .ok();
    assert!(r.text().contains(&format!("<Name>{BUCKET}</Name>")));
    let r = client
        .req_in(Method::GET, "other-bucket", "vh/key")
        .virtual_hosted("localhost")
        .send()
        .await;
    r.expect_error(404, "NoSuchBucket");
}

#[tokio::test]
async fn hostile_keys_are_just_keys() {
    let server = server().await;
    let client = Client::new(&server);
    let keys = [
        "../../etc/passwd",
        "a/./b",
        "a/../b",
        "..",
        "dir/with%2Fpercent",
        "sp ace+plus&amp?q=1#frag",
        "中文/キー/ключ",
        "back\\slash",
        "trailing/",
        "a//b",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = format!("body {i}");
        client
            .req(Method::PUT, key)
            .body(body.clone())
            .send()
            .await
            .ok();
        assert_eq!(client.get(key).await.ok().body, body.as_bytes(), "{key}");
    }
    // Nothing escaped the data directory, and no key became a path inside it.
    let parent = server.data_dir().parent().unwrap();
    assert!(!parent.join("etc").exists());
    let mut names = Vec::new();
    for entry in walk(server.data_dir()) {
        names.push(entry.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        !names
            .iter()
            .any(|n| n == "passwd" || n == "b" || n == "etc")
    );
    // A slash in the key encoded as %2F (as oss2 sends it) is the same key.
    let r = client
        .req(Method::GET, "x/y")
        .raw_path("/bucket/x%2Fy")
        .send()
        .await;
    r.expect_error(404, "NoSuchKey");
    client
        .req(Method::PUT, "x/y")
        .body("slash")
        .send()
        .await
        .ok();
    let r = client
        .req(Method::GET, "x/y")
        .raw_path("/bucket/x%2Fy")
        .send()
        .await
        .ok();
    assert_eq!(r.body.as_ref(), b"slash");

    for (bad, path) in [("/lead", "/bucket//lead"), ("\\lead", "/bucket/%5Clead")] {
        client
            .req(Method::PUT, bad)
            .raw_path(path)
            .body("x")
            .send()
            .await
            .expect_error(400, "InvalidObjectName");
    }
    let long = "k".repeat(1024);
    client
        .req(Method::PUT, &long)
        .body("x")
        .send()
        .await
        .expect_error(400, "InvalidObjectName");
    client
        .req(Method::PUT, &long[..1023])
        .body("x")
        .send()
        .await
        .ok();
    client
        .req(Method::GET, "x")
        .raw_path("/bucket/%C3%28")
        .unsigned()
        .send()
        .await
        .expect_error(400, "InvalidObjectName");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// The headers that set the content headers, encryption and tags of the object.
const OPTION_HEADERS: [(&str, &str); 8] = [
    ("cache-control", "max-age=60"),
    ("content-disposition", "attachment; filename=\"r.json\""),
    ("content-encoding", "gzip"),
    ("expires", "Wed, 21 Oct 2026 07:28:00 GMT"),
    ("x-oss-server-side-encryption", "KMS"),
    ("x-oss-server-side-encryption-key-id", "key-1"),
    ("x-oss-server-side-data-encryption", "SM4"),
    ("x-oss-tagging", "team=data%20eng&tier=1"),
];

#[tokio::test]
async fn put_object_stores_content_encryption_and_tag_headers_and_returns_them_on_head_and_get() {
    let server = server().await;
    let client = Client::new(&server);
    let mut put = client.req(Method::PUT, "opts").body(data(2, 1000));
    for (name, value) in OPTION_HEADERS {
        put = put.header(name, value);
    }
    let r = put.send().await.ok();
    assert_eq!(r.header("x-oss-server-side-encryption"), Some("KMS"));
    let head = client.req(Method::HEAD, "opts").send().await.ok();
    let got = client.get("opts").await.ok();
    for answer in [&head, &got] {
        for (name, value) in &OPTION_HEADERS[..7] {
            assert_eq!(answer.header(name), Some(*value), "{name}");
        }
        // OSS says how many tags an object has, not which.
        assert_eq!(answer.header("x-oss-tagging"), None);
        assert_eq!(answer.header("x-oss-tagging-count"), Some("2"));
    }
}

#[tokio::test]
async fn an_untagged_unencrypted_object_has_no_tag_count_or_encryption_headers() {
    let server = server().await;
    let client = Client::new(&server);
    client
        .req(Method::PUT, "plain")
        .body(data(3, 10))
        .send()
        .await
        .ok();
    let head = client.req(Method::HEAD, "plain").send().await.ok();
    assert_eq!(head.header("x-oss-tagging-count"), None);
    assert_eq!(head.header("x-oss-server-side-encryption"), None);
}

#[tokio::test]
async fn invalid_encryption_and_tagging_headers_are_refused_as_oss_refuses_them() {
    let server = server().await;
    let client = Client::new(&server);
    let cases: [&[(&str, &str)]; 5] = [
        &[("x-oss-server-side-encryption", "DES")],
        &[
            ("x-oss-server-side-encryption", "AES256"),
            ("x-oss-server-side-encryption-key-id", "key-1"),
        ],
        &[("x-oss-server-side-data-encryption", "SM4")],
        &[("x-oss-tagging", "a=b=c")],
        &[("x-oss-tagging", "k0&k1&k2&k3&k4&k5&k6&k7&k8&k9&k10")],
    ];
    for headers in cases {
        let mut put = client.req(Method::PUT, "refused").body(data(4, 10));
        for (name, value) in headers {
            put = put.header(name, value);
        }
        let err = put.send().await.expect_error(400, "InvalidArgument");
        assert!(!err.message.is_empty(), "{headers:?}");
    }
    client.get("refused").await.expect_error(404, "NoSuchKey");
}
