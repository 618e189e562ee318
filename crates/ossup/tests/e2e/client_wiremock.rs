//! The low-level client against scripted answers: request shapes, pagination and error parsing.

use std::time::Duration;

use ossup::{Client, ErrorKind, ObjectOptions, PartBody, RetryConfig};
use ossup::{Credentials, V1Signer, V4Signer};
use ossup_proto::checksum::{content_md5, crc64, md5};
use ossup_proto::etag::part_etag;
use ossup_proto::xml::CompletePart;
use wiremock::matchers::{body_string_contains, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> Client {
    Client::builder()
        .endpoint(&server.uri())
        .unwrap()
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(V4Signer::new("cn-hangzhou"))
        .retry(
            RetryConfig::default()
                .max_attempts(2)
                .backoff(Duration::from_millis(1), Duration::from_millis(1)),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn initiate_posts_uploads_with_the_object_headers_and_reads_the_upload_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/b/dir/a%20b.txt"))
        .and(query_param("uploads", ""))
        .and(header("content-type", "text/plain"))
        .and(header("x-oss-meta-owner", "alice"))
        .and(header("x-oss-forbid-overwrite", "true"))
        .and(header("x-oss-content-sha256", "UNSIGNED-PAYLOAD"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>dir/a b.txt</Key><UploadId>U-1</UploadId></InitiateMultipartUploadResult>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let options = ObjectOptions::default()
        .content_type("text/plain")
        .meta("owner", "alice")
        .forbid_overwrite(true);
    let id = client(&server)
        .initiate_multipart_upload("b", "dir/a b.txt", &options)
        .await
        .unwrap();
    assert_eq!(id, "U-1");
    let requests = server.received_requests().await.unwrap();
    let auth = requests[0].headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("OSS4-HMAC-SHA256 Credential=test-ak/"),
        "{auth}"
    );
}

#[tokio::test]
async fn upload_part_sends_content_md5_and_checks_the_answer() {
    let server = MockServer::start().await;
    let body = b"part bytes".to_vec();
    Mock::given(method("PUT"))
        .and(path("/b/k"))
        .and(query_param("partNumber", "7"))
        .and(query_param("uploadId", "U+1/="))
        .and(header("content-md5", content_md5(&md5(&body)).as_str()))
        .and(header("content-length", body.len().to_string().as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", part_etag(&md5(&body)).as_str())
                .insert_header("x-oss-hash-crc64ecma", crc64(&body).to_string().as_str())
                .insert_header("x-oss-request-id", "REQ"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let stored = client(&server)
        .upload_part("b", "k", "U+1/=", 7, PartBody::new(body.clone()))
        .await
        .unwrap();
    assert_eq!(stored.crc64, Some(crc64(&body)));
    assert_eq!(stored.request_id, "REQ");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].body, body);
}

#[tokio::test]
async fn list_parts_reads_every_page() {
    let server = MockServer::start().await;
    let part = |n: u32| {
        format!(
            "<Part><PartNumber>{n}</PartNumber><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"E{n}\"</ETag><HashCrc64ecma>{n}</HashCrc64ecma><Size>102400</Size></Part>"
        )
    };
    let page = |marker: u32, next: u32, truncated: bool, parts: String| {
        format!(
            "<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>U</UploadId><PartNumberMarker>{marker}</PartNumberMarker><NextPartNumberMarker>{next}</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>{truncated}</IsTruncated>{parts}</ListPartsResult>"
        )
    };
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(query_param("part-number-marker", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_string(page(2, 3, false, part(3))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(query_param("uploadId", "U"))
        .respond_with(ResponseTemplate::new(200).set_body_string(page(
            0,
            2,
            true,
            part(1) + &part(2),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let parts = client(&server).list_parts("b", "k", "U").await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(parts[2].hash_crc64ecma, Some(3));
}

#[tokio::test]
async fn complete_sends_the_parts_in_order_and_reads_the_object_crc() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/b/k"))
        .and(query_param("uploadId", "U"))
        .and(body_string_contains(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"A\"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"B\"</ETag></Part></CompleteMultipartUpload>",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-oss-hash-crc64ecma", "42")
                .insert_header("etag", "\"ABC-2\"")
                .set_body_string("<CompleteMultipartUploadResult><Location>l</Location><Bucket>b</Bucket><Key>k</Key><ETag>\"ABC-2\"</ETag></CompleteMultipartUploadResult>"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let parts = [
        CompletePart {
            part_number: 1,
            etag: "\"A\"".into(),
        },
        CompletePart {
            part_number: 2,
            etag: "\"B\"".into(),
        },
    ];
    let done = client(&server)
        .complete_multipart_upload("b", "k", "U", &parts, false)
        .await
        .unwrap();
    assert_eq!((done.etag.as_str(), done.crc64), ("\"ABC-2\"", Some(42)));
}

#[tokio::test]
async fn an_error_answer_keeps_code_message_request_id_host_id_and_status() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/b/k"))
        .and(query_param("uploadId", "U"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message><RequestId>R-9</RequestId><HostId>b.oss.example</HostId><UploadId>U</UploadId></Error>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .abort_multipart_upload("b", "k", "U")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(!err.is_retryable());
    let service = err.service_error().unwrap();
    assert_eq!(service.status, 404);
    assert_eq!(service.code, "NoSuchUpload");
    assert_eq!(service.request_id, "R-9");
    assert_eq!(service.host_id, "b.oss.example");
    assert_eq!(err.upload_id(), Some("U"));
    assert_eq!(
        err.to_string(),
        "AbortMultipartUpload of oss://b/k (upload U) failed: HTTP 404 NoSuchUpload: The specified upload does not exist. (RequestId R-9, HostId b.oss.example)"
    );
}

#[tokio::test]
async fn a_503_is_retried_and_a_malformed_document_is_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<NotTheRightDocument/>"))
        .mount(&server)
        .await;
    let err = client(&server)
        .initiate_multipart_upload("b", "k", &ObjectOptions::default())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("InitiateMultipartUploadResult"),
        "{err}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn list_multipart_uploads_follows_both_markers() {
    let server = MockServer::start().await;
    let upload = |k: &str| {
        format!(
            "<Upload><Key>{k}</Key><UploadId>U-{k}</UploadId><Initiated>2024-01-01T00:00:00.000Z</Initiated></Upload>"
        )
    };
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("key-marker", "a"))
        .and(query_param("upload-id-marker", "U-a"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated>{}</ListMultipartUploadsResult>",
            upload("b")
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("uploads", ""))
        .and(query_param("prefix", "p/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            "<ListMultipartUploadsResult><Bucket>b</Bucket><NextKeyMarker>a</NextKeyMarker><NextUploadIdMarker>U-a</NextUploadIdMarker><IsTruncated>true</IsTruncated>{}</ListMultipartUploadsResult>",
            upload("a")
        )))
        .expect(1)
        .mount(&server)
        .await;
    let uploads = client(&server)
        .list_multipart_uploads("b", Some("p/"))
        .await
        .unwrap();
    assert_eq!(
        uploads.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
}

/// A ListMultipartUploads page of one upload of `key`, naming the next markers.
fn uploads_page(key: &str, next: (&str, &str)) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(format!(
        "<ListMultipartUploadsResult><Bucket>b</Bucket><NextKeyMarker>{}</NextKeyMarker><NextUploadIdMarker>{}</NextUploadIdMarker><IsTruncated>true</IsTruncated><Upload><Key>{key}</Key><UploadId>U-{key}</UploadId><Initiated>2024-01-01T00:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>",
        next.0, next.1
    ))
}

#[tokio::test]
async fn list_multipart_uploads_refuses_markers_that_alternate_instead_of_looping() {
    let server = MockServer::start().await;
    // Page after "b" points back to "a", and the page after "a" points to "b" again: a client that
    // only checks for a repeated marker would go round forever.
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("key-marker", "b"))
        .respond_with(uploads_page("b", ("a", "U-a")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("key-marker", "a"))
        .respond_with(uploads_page("a2", ("b", "U-b")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("uploads", ""))
        .respond_with(uploads_page("a", ("b", "U-b")))
        .mount(&server)
        .await;
    let err = client(&server)
        .list_multipart_uploads("b", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
    assert_eq!(err.api(), Some(ossup::Api::ListMultipartUploads));
    assert!(err.to_string().contains("do not come after"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // The same key with a smaller upload id goes back too.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("upload-id-marker", "U-2"))
        .respond_with(uploads_page("a", ("a", "U-1")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("uploads", ""))
        .respond_with(uploads_page("a", ("a", "U-2")))
        .mount(&server)
        .await;
    let err = client(&server)
        .list_multipart_uploads("b", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

/// A ListParts page of parts `numbers`, naming the next marker.
fn parts_page(numbers: std::ops::RangeInclusive<u32>, next: u32) -> ResponseTemplate {
    let parts: String = numbers
        .map(|n| format!("<Part><PartNumber>{n}</PartNumber><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"E{n}\"</ETag><Size>102400</Size></Part>"))
        .collect();
    ResponseTemplate::new(200).set_body_string(format!(
        "<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>U</UploadId><NextPartNumberMarker>{next}</NextPartNumberMarker><IsTruncated>true</IsTruncated>{parts}</ListPartsResult>"
    ))
}

#[tokio::test]
async fn list_parts_refuses_markers_that_go_back_or_past_the_last_part() {
    // 5, then back to 3.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(query_param("part-number-marker", "5"))
        .respond_with(parts_page(6..=6, 3))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(query_param("uploadId", "U"))
        .respond_with(parts_page(1..=5, 5))
        .mount(&server)
        .await;
    let err = client(&server).list_parts("b", "k", "U").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
    assert_eq!(err.api(), Some(ossup::Api::ListParts));
    assert!(err.to_string().contains("does not advance past 5"), "{err}");

    // Truncated after part 10,000: nothing can follow.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .respond_with(parts_page(10_000..=10_000, 10_000))
        .mount(&server)
        .await;
    let err = client(&server).list_parts("b", "k", "U").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
    assert!(err.to_string().contains("no part comes after"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // More parts than an upload can have, in pages whose markers do advance.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(query_param("part-number-marker", "9000"))
        .respond_with(parts_page(1..=1001, 9500))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(query_param("uploadId", "U"))
        .respond_with(parts_page(1..=9000, 9000))
        .mount(&server)
        .await;
    assert_eq!(ossup::Client::MAX_LISTED_PARTS, 10_000);
    let err = client(&server).list_parts("b", "k", "U").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
    assert!(err.to_string().contains("more than 10000 parts"), "{err}");
}

#[tokio::test]
async fn list_objects_refuses_a_marker_that_goes_back() {
    let server = MockServer::start().await;
    let page = |key: &str, next: &str| {
        ResponseTemplate::new(200).set_body_string(format!(
            "<ListBucketResult><Name>b</Name><IsTruncated>true</IsTruncated><NextMarker>{next}</NextMarker><Contents><Key>{key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"E\"</ETag><Type>Normal</Type><Size>1</Size><StorageClass>Standard</StorageClass></Contents></ListBucketResult>"
        ))
    };
    Mock::given(method("GET"))
        .and(path("/b/"))
        .and(query_param("marker", "m"))
        .respond_with(page("n", "c"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/b/"))
        .respond_with(page("a", "m"))
        .mount(&server)
        .await;
    let err = client(&server).list_objects("b", "").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");
    assert_eq!(err.api(), Some(ossup::Api::ListObjects));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn get_object_sends_the_range_and_head_object_reads_404_as_absent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/b/k"))
        .and(header("range", "bytes=10-19"))
        .respond_with(ResponseTemplate::new(206).set_body_bytes(vec![1u8; 10]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/b/missing"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let client = client(&server);
    let object = client.get_object("b", "k", Some(10..20)).await.unwrap();
    assert_eq!(object.body.collect(100).await.unwrap().len(), 10);
    assert!(client.head_object("b", "missing").await.unwrap().is_none());
}

#[tokio::test]
async fn v1_signing_is_selectable() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Client::builder()
        .endpoint(&server.uri())
        .unwrap()
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(V1Signer)
        .build()
        .unwrap()
        .abort_multipart_upload("b", "k", "U")
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let auth = requests[0].headers["authorization"].to_str().unwrap();
    assert!(auth.starts_with("OSS test-ak:"), "{auth}");
    assert!(requests[0].headers.contains_key("date"));
}
