//! `ossup upload --callback-url …`: the callback sent, its reply printed; a failed callback says the
//! object is stored and is not offered for a resume.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Harness, Run};

/// A callback server on 127.0.0.1 answering POST /uploaded with `status` and `reply`.
fn callback_server(h: &Harness, status: u16, reply: Value) -> MockServer {
    h.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/uploaded"))
            .respond_with(ResponseTemplate::new(status).set_body_json(reply))
            .mount(&server)
            .await;
        server
    })
}

/// The bodies the callback server got.
fn bodies(h: &Harness, server: &MockServer) -> Vec<String> {
    h.block_on(server.received_requests())
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[test]
fn an_upload_with_a_callback_prints_the_reply() {
    let h = Harness::start();
    let app = callback_server(&h, 200, json!({"stored": "yes"}));
    let file = h.file("report.csv", 350 << 10, 40);
    let url = format!("{}/uploaded", app.uri());
    let run = Run::of(&mut h.upload(
        &file,
        "reports/report.csv",
        &[
            "--callback-url",
            &url,
            "--callback-body",
            "object=${object}&size=${size}&who=${x:user}",
            "--callback-var",
            "user=alice",
            "--progress",
            "none",
        ],
    ))
    .expect_code(0);
    assert!(
        run.stdout.contains(r#"callback replied: {"stored":"yes"}"#),
        "{}",
        run.stdout
    );
    assert_eq!(
        bodies(&h, &app),
        [format!(
            "object=reports%2Freport.csv&size={}&who=alice",
            350 << 10
        )]
    );
    h.assert_object_is("reports/report.csv", &file);

    // A small file goes in one PutObject, with the callback; JSON progress carries the reply.
    let small = h.file("small.txt", 1000, 41);
    let run = Run::of(&mut h.upload(
        &small,
        "small.txt",
        &[
            "--callback-url",
            &url,
            "--callback-body",
            "{\"object\":${object},\"size\":${size}}",
            "--callback-body-type",
            "json",
            "--progress",
            "json",
        ],
    ))
    .expect_code(0);
    assert_eq!(
        run.event("completed")["callback_reply"],
        json!({"stored": "yes"}).to_string()
    );
    let sent: Value = serde_json::from_str(&bodies(&h, &app)[1]).unwrap();
    assert_eq!(sent, json!({"object": "small.txt", "size": 1000}));
}

#[test]
fn a_failed_callback_exits_1_saying_the_object_is_stored() {
    let h = Harness::start();
    let app = callback_server(&h, 500, json!({"error": "down"}));
    let file = h.file("data.bin", 300 << 10, 42);
    let url = format!("{}/uploaded", app.uri());
    let run = Run::of(&mut h.upload(
        &file,
        "data.bin",
        &[
            "--callback-url",
            &url,
            "--callback-body",
            "object=${object}",
            "--progress",
            "none",
        ],
    ))
    .expect_code(1);
    assert!(
        run.stderr
            .contains("oss://bucket/data.bin was uploaded, but its upload callback failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Error status : 500."), "{}", run.stderr);
    assert!(
        run.stderr.contains("do not upload it again"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("resume with"), "{}", run.stderr);
    run.assert_no_dump();
    assert_eq!(bodies(&h, &app).len(), 1);
    h.assert_object_is("data.bin", &file);
    assert!(h.open_uploads().is_empty());
}

#[test]
fn callback_flags_without_their_partner_are_usage_errors() {
    let h = Harness::start();
    let file = h.file("f.bin", 1000, 43);
    Run::of(&mut h.upload(&file, "f.bin", &["--callback-url", "http://127.0.0.1:1/"]))
        .expect_code(2);
    Run::of(&mut h.upload(&file, "f.bin", &["--callback-body", "x"])).expect_code(2);
    let run = Run::of(&mut h.upload(
        &file,
        "f.bin",
        &[
            "--callback-url",
            "http://127.0.0.1:1/a;b",
            "--callback-body",
            "x",
        ],
    ))
    .expect_code(2);
    assert!(run.stderr.contains("';'"), "{}", run.stderr);
    assert!(h.open_uploads().is_empty());
}
