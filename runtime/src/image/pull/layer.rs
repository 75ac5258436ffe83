//! One layer: download it and unpack it while it arrives, verifying the
//! compressed digest and the diff_id, into a temporary snapshot that is
//! committed under its chain id only when everything matched.

use std::io::Read;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

use super::manifest::Descriptor;
use super::Error;
use crate::image::Digest;
use crate::snapshot::{unpack_layer, Compression, Snapshotter};

/// How often a running download reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Chunks buffered between the download and the unpacker.
const PIPE_DEPTH: usize = 32;

/// What a layer needs to be fetched.
pub struct LayerJob<'a> {
    pub client: &'a oci_client::Client,
    pub reference: &'a oci_client::Reference,
    pub descriptor: &'a Descriptor,
    pub digest: &'a Digest,
    pub diff_id: &'a Digest,
    pub chain_id: &'a Digest,
}

/// Downloads, verifies, unpacks and commits one layer.
pub async fn fetch(job: LayerJob<'_>, snapshots: &Snapshotter) -> Result<u64, crate::Error> {
    let desc = job.descriptor;
    let compression =
        Compression::from_media_type(&desc.media_type).ok_or_else(|| Error::UnsupportedLayer {
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        })?;
    let tmp = snapshots.prepare()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PIPE_DEPTH);
    // The temporary snapshot travels with the unpacker and comes back with
    // its result: if this future is dropped mid-way (another layer failed),
    // the unpacker sees the end of the stream, finishes, and only then is
    // the temporary directory removed, by its drop on that thread.
    // Its disk usage is measured there too, once its files are complete
    // and still in the cache (ImageFsInfo adds up these measurements).
    let unpacker = tokio::task::spawn_blocking(move || {
        let mut tmp = tmp;
        let result = unpack_layer(ChannelReader::new(rx), compression, tmp.path())
            .and_then(|unpacked| tmp.measure().map(|_| unpacked));
        (tmp, result)
    });

    let downloaded = download(&job, tx).await;
    // The sender is gone now, so the unpacker reaches the end of its input.
    let (tmp, unpacked) = unpacker.await.map_err(|source| Error::Task {
        what: format!("unpacking layer {}", job.digest),
        source,
    })?;
    let (size, actual, cut_short) = downloaded?;
    let unpacked = unpacked.map_err(|source| Error::Unpack {
        layer: job.digest.to_string(),
        source,
    });
    // When the unpacker stopped first (a full disk, a hostile entry), its
    // error is the cause: the digest of a cut stream means nothing.
    let unpacked = match unpacked {
        Err(e) if cut_short => return Err(e.into()),
        other => other,
    };
    if actual != *job.digest {
        return Err(Error::DigestMismatch {
            what: format!("layer {}", desc.digest),
            expected: job.digest.to_string(),
            actual: actual.to_string(),
        }
        .into());
    }
    let unpacked = unpacked?;
    if unpacked.diff_id != *job.diff_id {
        return Err(Error::DiffIdMismatch {
            layer: job.digest.to_string(),
            expected: job.diff_id.to_string(),
            actual: unpacked.diff_id.to_string(),
        }
        .into());
    }
    snapshots.commit(tmp, job.chain_id)?;
    Ok(size)
}

/// Streams the blob into `tx`, hashing it; returns its size, its digest,
/// and whether the unpacker stopped taking it before its end.
async fn download(
    job: &LayerJob<'_>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> Result<(u64, Digest, bool), Error> {
    let failed = |source: super::error::Cause| Error::Download {
        layer: job.digest.to_string(),
        source,
    };
    let mut blob = job
        .client
        .pull_blob_stream(job.reference, job.digest.to_string().as_str())
        .await
        .map_err(|e| failed(e.into()))?;
    let total = blob
        .content_length
        .unwrap_or(job.descriptor.size.max(0) as u64);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let started = Instant::now();
    let mut last_report = started;
    while let Some(chunk) = blob.stream.next().await {
        let chunk = chunk.map_err(|e| failed(e.into()))?;
        hasher.update(&chunk);
        received += chunk.len() as u64;
        crate::crash::point("image.pull.during_unpack");
        if tx.send(chunk).await.is_err() {
            // The unpacker stopped early; its error says why.
            let digest = Digest::from_sha256(hasher.finalize().into());
            return Ok((received, digest, true));
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            tracing::info!(layer = %job.digest, received, total, "pulling layer");
        }
    }
    tracing::debug!(layer = %job.digest, bytes = received, ms = started.elapsed().as_millis() as u64, "layer downloaded");
    Ok((
        received,
        Digest::from_sha256(hasher.finalize().into()),
        false,
    ))
}

/// A blocking reader over the chunks the download sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_reassembles_chunks() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let writer = std::thread::spawn(move || {
            for part in [&b"hello "[..], b"", b"chunked ", b"world"] {
                tx.blocking_send(Bytes::copy_from_slice(part))
                    .expect("send");
            }
        });
        let mut out = String::new();
        ChannelReader::new(rx)
            .read_to_string(&mut out)
            .expect("read");
        writer.join().expect("join");
        assert_eq!(out, "hello chunked world");
    }
}
