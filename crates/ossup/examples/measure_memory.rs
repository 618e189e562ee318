//! Measures the client's peak memory (VmHWM) and time for one large upload.
//!
//! ```text
//! oss-mock --bucket bucket --listen 127.0.0.1:9000 &      # a separate process, so only the client is measured
//! OSS_ENDPOINT=http://127.0.0.1:9000 cargo run --release -p ossup --example measure_memory -- 1024 8 4
//! ```
//! Arguments: size in MiB (default 1024), part size in MiB (default 8), parallel parts (default 4),
//! and `crc` to use CRC-64-only mode. Without `OSS_ENDPOINT` the mock runs in this process and its
//! memory is counted too.

use std::io::Write;
use std::time::Instant;

use ossup::{ChecksumMode, FileSource, Parallel, UploadRequest, Uploader};
use ossup::{Credentials, V4Signer};

/// A line of `/proc/self/status`, in KiB (Linux only).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let size_mib = number(0, 1024);
    let part_mib = number(1, 8);
    let parallel = number(2, 4) as usize;
    let mode = if args.iter().any(|a| a == "crc") {
        ChecksumMode::Crc64Only
    } else {
        ChecksumMode::Md5
    };

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.bin");
    {
        // Written a MiB at a time from a cheap generator, so the file costs no memory here.
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut chunk = vec![0u8; 1 << 20];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..size_mib {
            for word in chunk.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            file.write_all(&chunk)?;
        }
        file.flush()?;
    }

    let (endpoint, _server) = match std::env::var("OSS_ENDPOINT") {
        Ok(endpoint) => (endpoint, None),
        Err(_) => {
            let server =
                oss_mock::MockServer::start(oss_mock::MockConfig::default().with_bucket("bucket"))
                    .await?;
            (server.endpoint(), Some(server))
        }
    };
    let uploader = Uploader::builder()
        .endpoint(&endpoint)?
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(V4Signer::new("cn-hangzhou"))
        .scheduler(Parallel::new(parallel))
        .part_size(part_mib << 20)
        .checksum_mode(mode)
        .build()?;

    let before = status_kib("VmHWM:").unwrap_or(0);
    let started = Instant::now();
    let outcome = uploader
        .upload(UploadRequest::new(
            FileSource::open(&path)?,
            "bucket",
            "measure/big.bin",
        ))
        .await?;
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:").unwrap_or(0);
    println!(
        "uploaded {} MiB in {} parts of {} MiB, {} at once, {:?} mode: {:.2} s ({:.0} MiB/s); VmHWM {} KiB ({:.1} MiB) before the upload {} KiB; part buffers at peak {}",
        size_mib,
        outcome.parts,
        part_mib,
        parallel,
        mode,
        elapsed.as_secs_f64(),
        size_mib as f64 / elapsed.as_secs_f64(),
        peak,
        peak as f64 / 1024.0,
        before,
        outcome.peak_part_buffers,
    );
    Ok(())
}
