//! The multipart APIs end to end: happy path with a byte check, and every error OSS answers with.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use common::{Client, complete_xml, data, server};
use http::Method;
use ossup_proto::checksum::{crc64, md5};
use ossup_proto::etag::{multipart_etag, part_etag};
use ossup_proto::xml::{CompleteMultipartUploadResult, ListMultipartUploadsResult, from_xml};

const PART: usize = 100 * 1024;

#[tokio::test]
async fn multipart_upload_round_trips_bytes_etag_and_crc() {
    let server = server().await;
    let client = Client::new(&server);
    let key = "dir/big object.bin";
    let upload_id = client
        .req(Method::POST, key)
        .query("uploads", "")
        .header("content-type", "video/mp4")
        .header("x-oss-meta-author", "alice")
        .header("x-oss-storage-class", "IA")
        .header("x-oss-object-acl", "private")
        .send()
        .await
        .ok();
    let upload_id: ossup_proto::xml::InitiateMultipartUploadResult =
        from_xml("InitiateMultipartUploadResult", &upload_id.text()).unwrap();
    let upload_id = upload_id.upload_id;
    let bodies = [data(1, PART), data(2, PART + 7), data(3, 1000)];
    let mut listed = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let r = client
            .upload_part(key, &upload_id, i as u32 + 1, body)
            .await
            .ok();
        assert_eq!(r.header("etag"), Some(part_etag(&md5(body)).as_str()));
        assert_eq!(
            r.header("x-oss-hash-crc64ecma"),
            Some(crc64(body).to_string().as_str())
        );
        listed.push((i as u32 + 1, r.header("etag").unwrap().to_owned()));
    }
    let r = client.complete(key, &upload_id, &listed).await.ok();
    let whole: Vec<u8> = bodies.concat();
    let expected_etag = multipart_etag(&bodies.iter().map(|b| md5(b)).collect::<Vec<_>>());
    assert_eq!(r.header("etag"), Some(expected_etag.as_str()));
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc64(&whole).to_string().as_str())
    );
    let doc: CompleteMultipartUploadResult =
        from_xml("CompleteMultipartUploadResult", &r.text()).unwrap();
    assert_eq!(doc.key, key);
    assert_eq!(doc.etag, expected_etag);

    let got = client.get(key).await.ok();
    assert_eq!(got.body.as_ref(), whole.as_slice());
    assert_eq!(got.header("content-type"), Some("video/mp4"));
    assert_eq!(got.header("x-oss-meta-author"), Some("alice"));
    assert_eq!(got.header("x-oss-object-type"), Some("Multipart"));
    assert_eq!(got.header("x-oss-storage-class"), Some("IA"));
    assert_eq!(got.header("accept-ranges"), Some("bytes"));
    assert!(got.header("last-modified").is_some());

    let head = client.req(Method::HEAD, key).send().await.ok();
    assert_eq!(
        head.header("content-length"),
        Some(whole.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(expected_etag.as_str()));
}

#[tokio::test]
async fn reuploading_a_part_replaces_it() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    client.upload_part("k", &id, 1, b"first").await.ok();
    let second = client.upload_part("k", &id, 1, b"second!").await.ok();
    let page = client.list_parts("k", &id, &[]).await;
    assert_eq!(page.parts.len(), 1);
    assert_eq!(page.parts[0].etag, second.header("etag").unwrap());
    assert_eq!(page.parts[0].size, 7);
    client
        .complete("k", &id, &[(1, second.header("etag").unwrap().to_owned())])
        .await
        .ok();
    assert_eq!(client.get("k").await.ok().body.as_ref(), b"second!");
}

#[tokio::test]
async fn part_numbers_outside_1_to_10000_are_invalid_arguments() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    for bad in ["0", "10001", "-1", "abc", "", "4294967296"] {
        let r = client
            .req(Method::PUT, "k")
            .query("partNumber", bad)
            .query("uploadId", &id)
            .body("x")
            .send()
            .await;
        let err = r.expect_error(400, "InvalidArgument");
        assert_eq!(err.field("ArgumentName"), Some("partNumber"));
        assert_eq!(err.field("ArgumentValue"), Some(bad));
    }
    client.upload_part("k", &id, 10000, b"x").await.ok();
}

#[tokio::test]
async fn content_md5_mismatch_is_invalid_digest_and_stores_nothing() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let wrong = ossup_proto::checksum::content_md5(&md5(b"other"));
    let r = client
        .req(Method::PUT, "k")
        .query("partNumber", "1")
        .query("uploadId", &id)
        .header("content-md5", &wrong)
        .body("payload")
        .send()
        .await;
    r.expect_error(400, "InvalidDigest");
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
    let right = ossup_proto::checksum::content_md5(&md5(b"payload"));
    client
        .req(Method::PUT, "k")
        .query("partNumber", "1")
        .query("uploadId", &id)
        .header("content-md5", &right)
        .body("payload")
        .send()
        .await
        .ok();
    let garbage = client
        .req(Method::PUT, "k")
        .query("partNumber", "2")
        .query("uploadId", &id)
        .header("content-md5", "not-base64!")
        .body("payload")
        .send()
        .await;
    garbage.expect_error(400, "InvalidDigest");
}

#[tokio::test]
async fn upload_to_unknown_upload_is_no_such_upload_with_its_id() {
    let server = server().await;
    let client = Client::new(&server);
    let r = client.upload_part("k", "NOPE", 1, b"x").await;
    let err = r.expect_error(404, "NoSuchUpload");
    assert_eq!(err.field("UploadId"), Some("NOPE"));
    // An upload id of another key is no upload of this key.
    let id = client.initiate("a").await;
    client
        .upload_part("b", &id, 1, b"x")
        .await
        .expect_error(404, "NoSuchUpload");
}

#[tokio::test]
async fn complete_checks_order_parts_etags_and_sizes() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let big = data(7, PART);
    let e1 = client.upload_part("k", &id, 1, &big).await.ok();
    let e1 = e1.header("etag").unwrap().to_owned();
    let e2 = client.upload_part("k", &id, 2, b"small").await.ok();
    let e2 = e2.header("etag").unwrap().to_owned();
    let e3 = client.upload_part("k", &id, 3, b"tail").await.ok();
    let e3 = e3.header("etag").unwrap().to_owned();

    client
        .complete("k", &id, &[(2, e2.clone()), (1, e1.clone())])
        .await
        .expect_error(400, "InvalidPartOrder");
    client
        .complete("k", &id, &[(1, e1.clone()), (1, e1.clone())])
        .await
        .expect_error(400, "InvalidPartOrder");
    let err = client
        .complete("k", &id, &[(1, e1.clone()), (4, e3.clone())])
        .await
        .expect_error(400, "InvalidPart");
    assert_eq!(err.field("PartNumber"), Some("4"));
    let err = client
        .complete("k", &id, &[(1, e1.clone()), (2, e3.clone())])
        .await
        .expect_error(400, "InvalidPart");
    assert_eq!(err.field("PartNumber"), Some("2"));
    assert_eq!(err.field("ETag"), Some(e3.as_str()));
    let err = client
        .complete(
            "k",
            &id,
            &[(1, e1.clone()), (2, e2.clone()), (3, e3.clone())],
        )
        .await
        .expect_error(400, "EntityTooSmall");
    assert_eq!(err.field("PartNumber"), Some("2"));
    // Every failed Complete leaves the upload as it was.
    assert_eq!(client.list_parts("k", &id, &[]).await.parts.len(), 3);
    // A subset with only the last part small succeeds; the parts left out are dropped.
    client.complete("k", &id, &[(1, e1), (3, e3)]).await.ok();
    let got = client.get("k").await.ok();
    assert_eq!(got.body.as_ref(), [big.as_slice(), b"tail"].concat());
}

#[tokio::test]
async fn complete_accepts_etags_quoted_every_way_clients_quote_them() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let r = client.upload_part("k", &id, 1, b"x").await.ok();
    let quoted = r.header("etag").unwrap().to_owned();
    let bare = quoted.trim_matches('"').to_owned();
    for etag in [
        quoted.clone(),
        bare.clone(),
        bare.to_lowercase(),
        format!("&quot;{bare}&quot;"),
        format!("&#34;{bare}&#34;"),
    ] {
        // Each attempt runs on a fresh upload with the same part.
        let id = client.initiate("q").await;
        client.upload_part("q", &id, 1, b"x").await.ok();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload>\n  <Part>\n    <PartNumber>1</PartNumber>\n    <ETag>{etag}</ETag>\n  </Part>\n</CompleteMultipartUpload>\n"
        );
        client
            .req(Method::POST, "q")
            .query("uploadId", &id)
            .body(xml)
            .send()
            .await
            .ok();
    }
}

#[tokio::test]
async fn complete_all_takes_every_part_and_requires_an_empty_body() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let first = data(9, PART);
    client.upload_part("k", &id, 1, &first).await.ok();
    client.upload_part("k", &id, 5, b"end").await.ok();
    let r = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .header("x-oss-complete-all", "yes")
        .body(complete_xml(&[(1, "\"X\"".into())]))
        .send()
        .await;
    let err = r.expect_error(400, "InvalidArgument");
    assert_eq!(err.field("ArgumentName"), Some("x-oss-complete-all"));
    let r = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .header("x-oss-complete-all", "yes")
        .send()
        .await
        .ok();
    assert!(r.header("etag").unwrap().ends_with("-2\""));
    let got = client.get("k").await.ok();
    assert_eq!(got.body.as_ref(), [first.as_slice(), b"end"].concat());
}

#[tokio::test]
async fn complete_and_abort_end_the_upload() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let e = client.upload_part("k", &id, 1, b"x").await.ok();
    let parts = [(1, e.header("etag").unwrap().to_owned())];
    client.complete("k", &id, &parts).await.ok();
    let err = client
        .complete("k", &id, &parts)
        .await
        .expect_error(404, "NoSuchUpload");
    assert_eq!(err.field("UploadId"), Some(id.as_str()));
    client
        .upload_part("k", &id, 2, b"x")
        .await
        .expect_error(404, "NoSuchUpload");

    let id = client.initiate("k2").await;
    client.upload_part("k2", &id, 1, b"x").await.ok();
    let r = client
        .req(Method::DELETE, "k2")
        .query("uploadId", &id)
        .send()
        .await;
    assert_eq!(r.status, 204);
    client
        .req(Method::DELETE, "k2")
        .query("uploadId", &id)
        .send()
        .await
        .expect_error(404, "NoSuchUpload");
    client
        .req(Method::GET, "k2")
        .query("uploadId", &id)
        .send()
        .await
        .expect_error(404, "NoSuchUpload");
    client
        .complete("k2", &id, &parts)
        .await
        .expect_error(404, "NoSuchUpload");
    client.get("k2").await.expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn forbid_overwrite_refuses_an_existing_object_on_put_initiate_and_complete() {
    let server = server().await;
    let client = Client::new(&server);
    // Initiated before the object exists; completed after.
    let id = client.initiate("k").await;
    let e = client.upload_part("k", &id, 1, b"x").await.ok();
    client.req(Method::PUT, "k").body("v1").send().await.ok();
    client
        .req(Method::PUT, "k")
        .header("x-oss-forbid-overwrite", "true")
        .body("v2")
        .send()
        .await
        .expect_error(409, "FileAlreadyExists");
    client
        .req(Method::POST, "k")
        .query("uploads", "")
        .header("x-oss-forbid-overwrite", "true")
        .send()
        .await
        .expect_error(409, "FileAlreadyExists");
    client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .header("x-oss-forbid-overwrite", "true")
        .body(complete_xml(&[(1, e.header("etag").unwrap().to_owned())]))
        .send()
        .await
        .expect_error(409, "FileAlreadyExists");
    assert_eq!(client.get("k").await.ok().body.as_ref(), b"v1");
    // Without the header the upload still completes over it.
    client
        .complete("k", &id, &[(1, e.header("etag").unwrap().to_owned())])
        .await
        .ok();
    assert_eq!(client.get("k").await.ok().body.as_ref(), b"x");
}

#[tokio::test]
async fn list_parts_paginates_with_part_number_markers() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("dir/a b").await;
    for n in [1, 2, 3, 5, 8] {
        client
            .upload_part("dir/a b", &id, n, &data(n as u64, 10 + n as usize))
            .await
            .ok();
    }
    // oss2 sends an empty marker on the first page.
    let page = client
        .list_parts(
            "dir/a b",
            &id,
            &[("max-parts", "2"), ("part-number-marker", "")],
        )
        .await;
    assert_eq!(page.max_parts, 2);
    assert!(page.is_truncated);
    assert_eq!(page.part_number_marker, 0);
    assert_eq!(page.next_part_number_marker, 2);
    assert_eq!(
        page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(page.storage_class.as_deref(), Some("Standard"));
    assert!(page.parts[0].last_modified.ends_with(".000Z"));
    assert_eq!(page.parts[0].hash_crc64ecma, Some(crc64(&data(1, 11))));
    let page = client
        .list_parts(
            "dir/a b",
            &id,
            &[("max-parts", "2"), ("part-number-marker", "2")],
        )
        .await;
    assert_eq!(
        page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        [3, 5]
    );
    assert!(page.is_truncated);
    let page = client
        .list_parts(
            "dir/a b",
            &id,
            &[("max-parts", "2"), ("part-number-marker", "5")],
        )
        .await;
    assert_eq!(
        page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        [8]
    );
    assert!(!page.is_truncated);
    assert_eq!(page.next_part_number_marker, 8);
    let page = client.list_parts("dir/a b", &id, &[]).await;
    assert_eq!(page.max_parts, 1000);
    assert_eq!(page.parts.len(), 5);
    assert_eq!(page.key, "dir/a b");

    let encoded = client
        .req(Method::GET, "dir/a b")
        .query("uploadId", &id)
        .query("encoding-type", "url")
        .send()
        .await
        .ok();
    assert!(encoded.text().contains("<Key>dir%2Fa%20b</Key>"));
    assert!(encoded.text().contains("<EncodingType>url</EncodingType>"));

    for (name, value) in [
        ("max-parts", "1001"),
        ("max-parts", "0"),
        ("max-parts", "x"),
        ("part-number-marker", "x"),
    ] {
        let err = client
            .req(Method::GET, "dir/a b")
            .query("uploadId", &id)
            .query(name, value)
            .send()
            .await
            .expect_error(400, "InvalidArgument");
        assert_eq!(err.field("ArgumentName"), Some(name));
    }
}

#[tokio::test]
async fn list_multipart_uploads_paginates_by_key_and_upload_id() {
    let server = server().await;
    let client = Client::new(&server);
    let mut expected = Vec::new();
    for key in ["b/1", "a/1", "b/1", "a/2", "c"] {
        expected.push((key.to_owned(), client.initiate(key).await));
    }
    expected.sort();
    let list = |extra: Vec<(&'static str, String)>| {
        let client = client.clone();
        async move {
            let mut req = client.req(Method::GET, "").query("uploads", "");
            for (k, v) in &extra {
                req = req.query(k, v);
            }
            let r = req.send().await.ok();
            from_xml::<ListMultipartUploadsResult>("ListMultipartUploadsResult", &r.text()).unwrap()
        }
    };
    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker) = (String::new(), String::new());
    loop {
        let page = list(vec![
            ("max-uploads", "2".into()),
            ("key-marker", key_marker.clone()),
            ("upload-id-marker", id_marker.clone()),
        ])
        .await;
        assert!(page.uploads.len() <= 2);
        seen.extend(
            page.uploads
                .iter()
                .map(|u| (u.key.clone(), u.upload_id.clone())),
        );
        if !page.is_truncated {
            break;
        }
        key_marker = page.next_key_marker;
        id_marker = page.next_upload_id_marker;
    }
    assert_eq!(seen, expected);

    let page = list(vec![("prefix", "b/".into())]).await;
    assert_eq!(page.uploads.len(), 2);
    assert!(page.uploads.iter().all(|u| u.key == "b/1"));
    assert!(page.uploads[0].upload_id < page.uploads[1].upload_id);
    let page = list(vec![("key-marker", "a/2".into())]).await;
    assert_eq!(page.uploads.len(), 3);
    let err = client
        .req(Method::GET, "")
        .query("uploads", "")
        .query("max-uploads", "1001")
        .send()
        .await
        .expect_error(400, "InvalidArgument");
    assert_eq!(err.field("ArgumentName"), Some("max-uploads"));
}

#[tokio::test]
async fn malformed_empty_and_oversized_complete_bodies_are_malformed_xml() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    client.upload_part("k", &id, 1, b"x").await.ok();
    for body in [
        "".to_owned(),
        "<CompleteMultipartUpload>".to_owned(),
        "<CompleteMultipartUpload></CompleteMultipartUpload>".to_owned(),
        "<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>".to_owned(),
        "not xml at all <<<&&&".to_owned(),
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&bogus;</ETag></Part></CompleteMultipartUpload>".to_owned(),
    ] {
        client
            .req(Method::POST, "k")
            .query("uploadId", &id)
            .body(body)
            .send()
            .await
            .expect_error(400, "MalformedXML");
    }
    let mut huge = String::from("<CompleteMultipartUpload>");
    while huge.len() <= oss_mock::MAX_COMPLETE_BODY {
        huge.push_str("<Part><PartNumber>1</PartNumber><ETag>\"00000000000000000000000000000000\"</ETag></Part>");
    }
    let err = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .body(huge)
        .send()
        .await
        .expect_error(400, "MalformedXML");
    assert!(err.message.contains("limit"), "{}", err.message);
    let invalid_utf8 = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .body(vec![0xff, 0xfe, b'<'])
        .send()
        .await;
    invalid_utf8.expect_error(400, "MalformedXML");
    // The upload is untouched by all of it.
    assert_eq!(client.list_parts("k", &id, &[]).await.parts.len(), 1);
}

#[tokio::test]
async fn oss2_style_initiate_with_uploads_equals_is_accepted() {
    let server = server().await;
    let client = Client::new(&server);
    // `query("uploads", "")` sends a bare `?uploads`; oss2 sends `?uploads=`.
    let r = client
        .req(Method::POST, "k")
        .query("uploads", "")
        .raw_path("/bucket/k?uploads=")
        .send()
        .await
        .ok();
    assert!(r.text().contains("<UploadId>"));
}

#[tokio::test]
async fn deeply_nested_xml_is_refused_without_harm() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    for inner in ["<x>", "<Part>", "<PartNumber>"] {
        let depth = (oss_mock::MAX_COMPLETE_BODY - 100) / inner.len();
        let body = format!("<CompleteMultipartUpload>{}", inner.repeat(depth));
        client
            .req(Method::POST, "k")
            .query("uploadId", &id)
            .body(body)
            .send()
            .await
            .expect_error(400, "MalformedXML");
    }
    // Well-formed but deep: unknown elements inside a part are skipped, however deep.
    let depth = (oss_mock::MAX_COMPLETE_BODY - 200) / 7;
    let body = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"A\"</ETag>{}{}</Part></CompleteMultipartUpload>",
        "<x>".repeat(depth),
        "</x>".repeat(depth)
    );
    let r = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    client.upload_part("k", &id, 1, b"alive").await.ok();
}

#[tokio::test]
async fn headers_given_at_initiate_are_stored_with_the_completed_object() {
    let server = server().await;
    let client = Client::new(&server);
    let initiated = client
        .req(Method::POST, "enc")
        .query("uploads", "")
        .header("cache-control", "no-store")
        .header("content-disposition", "inline")
        .header("content-encoding", "br")
        .header("expires", "Thu, 01 Jan 2037 00:00:00 GMT")
        .header("x-oss-server-side-encryption", "SM4")
        .header("x-oss-tagging", "a=1&b=2&c")
        .send()
        .await
        .ok();
    assert_eq!(
        initiated.header("x-oss-server-side-encryption"),
        Some("SM4")
    );
    let doc: ossup_proto::xml::InitiateMultipartUploadResult =
        from_xml("InitiateMultipartUploadResult", &initiated.text()).unwrap();
    let part = data(5, 1000);
    let etag = client
        .upload_part("enc", &doc.upload_id, 1, &part)
        .await
        .ok()
        .header("etag")
        .unwrap()
        .to_owned();
    let completed = client
        .complete("enc", &doc.upload_id, &[(1, etag)])
        .await
        .ok();
    assert_eq!(
        completed.header("x-oss-server-side-encryption"),
        Some("SM4")
    );
    let head = client.req(Method::HEAD, "enc").send().await.ok();
    let got = client.get("enc").await.ok();
    assert_eq!(got.body.as_ref(), part.as_slice());
    for answer in [&head, &got] {
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(answer.header("content-disposition"), Some("inline"));
        assert_eq!(answer.header("content-encoding"), Some("br"));
        assert_eq!(
            answer.header("expires"),
            Some("Thu, 01 Jan 2037 00:00:00 GMT")
        );
        assert_eq!(answer.header("x-oss-server-side-encryption"), Some("SM4"));
        assert_eq!(answer.header("x-oss-server-side-encryption-key-id"), None);
        assert_eq!(answer.header("x-oss-tagging-count"), Some("3"));
    }
}
