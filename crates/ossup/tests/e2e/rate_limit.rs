//! A rate limit holds on the wire: parts in parallel share one cap (a floor on the time taken,
//! never a ceiling, so a slow machine cannot fail it).

use crate::common::*;
use ossup::{BytesSource, Parallel, RateLimiter, UploadRequest};

#[tokio::test]
async fn parts_in_parallel_share_one_cap() {
    let server = mock().await;
    let limiter = RateLimiter::new(4 << 20);
    let uploader = builder(&server.endpoint())
        .rate_limit(limiter.clone())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let bytes = data(3 << 20, 41);
    let started = std::time::Instant::now();
    let outcome = uploader
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "capped"),
            BUCKET,
            "capped",
        ))
        .await
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    // 3 MiB at 4 MiB/s, less the burst that may go at once.
    let floor = ((3 << 20) - limiter.burst()) as f64 / (4 << 20) as f64;
    assert!(took >= floor * 0.98, "{took} s, below the cap's {floor} s");
    assert_eq!(outcome.bytes_sent, bytes.len() as u64);
    assert_object_is(&client(&server.endpoint()), "capped", &bytes).await;
}

#[tokio::test]
async fn the_server_side_traffic_limit_is_sent_and_honoured() {
    let server = mock().await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    let bytes = data(1 << 20, 42);
    let started = std::time::Instant::now();
    uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "limited"),
                BUCKET,
                "limited",
            )
            .multipart_threshold(2 << 20)
            .traffic_limit(8 << 20), // 1 MiB/s
        )
        .await
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    assert!(took >= 0.9, "1 MiB at 1 MiB/s took {took} s");
    assert_object_is(&client(&server.endpoint()), "limited", &bytes).await;

    let err = uploader
        .upload(
            UploadRequest::new(BytesSource::new(bytes, "limited"), BUCKET, "refused")
                .traffic_limit(1000),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ossup::ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("819200"), "{err}");
}
