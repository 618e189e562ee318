//! Drives a running `oss-mock` with one large multipart upload, for measuring the mock's memory and
//! throughput.
//!
//! ```text
//! cargo run --release -p oss-mock --example multipart_load -- http://127.0.0.1:9000 bucket key \
//!     [--size-mib 1024] [--part-mib 8] [--parallel 4]
//! cargo run --release -p oss-mock --example multipart_load -- http://127.0.0.1:9000 bucket key \
//!     --list UPLOAD_ID
//! ```
//!
//! Part bodies are generated from a seeded PRNG, so no source file is needed; each part's ETag is
//! checked against its MD5 and the object's CRC-64 against the combination of the part CRCs. It
//! prints `upload id: ID` first and `part N acknowledged` as each part is stored, so a script can
//! kill the server mid-upload and then compare with `--list ID` after a restart.

use std::io::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ossup_proto::checksum::{crc64, crc64_of_parts, md5};
use ossup_proto::etag::{part_etag, same};
use ossup_proto::xml::{InitiateMultipartUploadResult, ListPartsResult, from_xml};
use ossup_sign::{Credentials, RequestParts, Signer, V1Signer};
use rand::{RngCore, SeedableRng};
use tokio::sync::Semaphore;

type Http = Client<HttpConnector, Full<Bytes>>;

struct Target {
    http: Http,
    authority: String,
    bucket: String,
    key: String,
    credentials: Credentials,
}

impl Target {
    async fn send(
        &self,
        method: Method,
        query: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(http::response::Parts, Bytes), String> {
        let mut parts = RequestParts::new(method.clone(), Some(&self.bucket), Some(&self.key));
        for (k, v) in query {
            parts = parts.with_query(*k, *v);
        }
        V1Signer
            .sign(&mut parts, &self.credentials, SystemTime::now())
            .map_err(|e| e.to_string())?;
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    (*k).to_owned()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        let uri = format!(
            "http://{}/{}/{}?{}",
            self.authority,
            self.bucket,
            self.key,
            q.join("&")
        );
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in parts.headers.iter() {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        if !head.status.is_success() {
            return Err(format!(
                "{}: {}",
                head.status,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok((head, body))
    }
}

fn part_body(number: u32, len: usize) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(number));
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: multipart_load ENDPOINT BUCKET KEY [--size-mib N] [--part-mib N] [--parallel N] [--list UPLOAD_ID]".into());
    }
    let number = |name: &str, default: u64| -> Result<u64, String> {
        flag(&args, name)
            .map(|v| v.parse().map_err(|e| format!("{name}: {e}")))
            .unwrap_or(Ok(default))
    };
    let target = Arc::new(Target {
        http: Client::builder(TokioExecutor::new()).build_http(),
        authority: args[0]
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        bucket: args[1].clone(),
        key: args[2].clone(),
        credentials: Credentials::new("test-ak", "test-sk"),
    });

    if let Some(upload_id) = flag(&args, "--list") {
        let (_, body) = target
            .send(Method::GET, &[("uploadId", &upload_id)], Bytes::new())
            .await?;
        let page: ListPartsResult = from_xml("ListPartsResult", &String::from_utf8_lossy(&body))
            .map_err(|e| e.to_string())?;
        for part in &page.parts {
            println!(
                "listed part {} size {} etag {}",
                part.part_number, part.size, part.etag
            );
        }
        println!("{} parts listed", page.parts.len());
        return Ok(());
    }

    let size = number("--size-mib", 1024)? * 1024 * 1024;
    let part_size = number("--part-mib", 8)? * 1024 * 1024;
    let parallel = number("--parallel", 4)? as usize;
    let parts = size.div_ceil(part_size) as u32;

    let started = Instant::now();
    let (_, body) = target
        .send(Method::POST, &[("uploads", "")], Bytes::new())
        .await?;
    let init: InitiateMultipartUploadResult = from_xml(
        "InitiateMultipartUploadResult",
        &String::from_utf8_lossy(&body),
    )
    .map_err(|e| e.to_string())?;
    let upload_id = init.upload_id;
    println!("upload id: {upload_id}");
    let _ = std::io::stdout().flush();

    let permits = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for n in 1..=parts {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (target, upload_id) = (Arc::clone(&target), upload_id.clone());
        let len = part_size.min(size - u64::from(n - 1) * part_size) as usize;
        tasks.push(tokio::spawn(async move {
            let body = part_body(n, len);
            let (md5, crc) = (md5(&body), crc64(&body));
            let number = n.to_string();
            let (head, _) = target
                .send(
                    Method::PUT,
                    &[("partNumber", &number), ("uploadId", &upload_id)],
                    Bytes::from(body),
                )
                .await?;
            drop(permit);
            let etag = head
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if !same(&etag, &part_etag(&md5)) {
                return Err(format!("part {n}: ETag {etag} is not the MD5 of the part"));
            }
            println!("part {n} acknowledged");
            let _ = std::io::stdout().flush();
            Ok::<_, String>((n, etag, crc, len as u64))
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.map_err(|e| e.to_string())??);
    }
    let xml: String = std::iter::once("<CompleteMultipartUpload>".to_owned())
        .chain(done.iter().map(|(n, etag, _, _)| {
            format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>")
        }))
        .chain(std::iter::once("</CompleteMultipartUpload>".to_owned()))
        .collect();
    let (head, _) = target
        .send(Method::POST, &[("uploadId", &upload_id)], Bytes::from(xml))
        .await?;
    let expected = crc64_of_parts(done.iter().map(|(_, _, crc, len)| (*crc, *len)));
    let got = head
        .headers
        .get("x-oss-hash-crc64ecma")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if got != expected.to_string() {
        return Err(format!(
            "object CRC {got} differs from the parts' {expected}"
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "completed {parts} parts, {} MiB in {secs:.2} s ({:.0} MiB/s), CRC-64 verified",
        size / (1024 * 1024),
        size as f64 / (1024.0 * 1024.0) / secs
    );
    Ok(())
}
