//! Digest checks of what is pulled: a hasher for whole byte strings and a stream adapter that
//! hashes a blob as it passes through to the upload, recording a mismatch for the copier.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

/// `sha256:HEX` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Checks that `bytes` hash to `expected` (`sha256:HEX`): `Err(actual)` when they do not. Other
/// algorithms than sha256 are refused (`Err` with a message), as no registry of kops's images
/// uses them.
pub fn verify_digest(expected: &str, bytes: &[u8]) -> Result<(), String> {
    if !expected.starts_with("sha256:") {
        return Err(format!("unsupported digest algorithm in {expected}"));
    }
    let actual = sha256_digest(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(actual)
    }
}

/// A digest mismatch seen by a [`VerifyingStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// The digest of the bytes that went through.
    pub actual: String,
    /// How many bytes went through.
    pub size: u64,
}

/// Passes a pulled blob's chunks through, hashing them; at the end of the stream it compares
/// with the expected digest and, on a mismatch, records it in `mismatch` and ends the stream
/// with an error instead, so the upload it feeds is aborted before the registry commits it.
pub(crate) struct VerifyingStream<S> {
    inner: S,
    hasher: Option<Sha256>,
    size: u64,
    expected: String,
    mismatch: Arc<Mutex<Option<Mismatch>>>,
    bytes: Arc<Mutex<u64>>,
}

impl<S> VerifyingStream<S> {
    /// Wraps `inner`; `mismatch` is set when the bytes do not hash to `expected`, `bytes` counts
    /// what went through.
    pub(crate) fn new(
        inner: S,
        expected: &str,
        mismatch: Arc<Mutex<Option<Mismatch>>>,
        bytes: Arc<Mutex<u64>>,
    ) -> Self {
        VerifyingStream {
            inner,
            hasher: Some(Sha256::new()),
            size: 0,
            expected: expected.to_string(),
            mismatch,
            bytes,
        }
    }

    /// Compares what went through with the expected digest; `Some(error)` on a mismatch.
    fn finish(&mut self) -> Option<std::io::Error> {
        let hasher = self.hasher.take()?;
        let actual = format!("sha256:{:x}", hasher.finalize());
        if actual == self.expected {
            return None;
        }
        let mismatch = Mismatch { actual: actual.clone(), size: self.size };
        *self.mismatch.lock().unwrap_or_else(|e| e.into_inner()) = Some(mismatch);
        Some(std::io::Error::other(format!(
            "blob {} hashes to {actual} ({} bytes)",
            self.expected, self.size
        )))
    }
}

impl<S, E> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.hasher.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&chunk);
                }
                this.size += chunk.len() as u64;
                *this.bytes.lock().unwrap_or_else(|e| e.into_inner()) += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            // The inner stream may check the digest itself and fail at its end: our own
            // verdict on the same bytes names the blob, so it takes precedence.
            Poll::Ready(Some(Err(e))) => match this.finish() {
                Some(mismatch) => Poll::Ready(Some(Err(mismatch))),
                None => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            },
            Poll::Ready(None) => match this.finish() {
                Some(mismatch) => Poll::Ready(Some(Err(mismatch))),
                None => Poll::Ready(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::{stream, StreamExt};

    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn verify_digest_accepts_the_right_bytes_and_names_the_actual_digest_otherwise() {
        assert_eq!(verify_digest(HELLO, b"hello"), Ok(()));
        let err = verify_digest(HELLO, b"hellO").unwrap_err();
        assert!(err.starts_with("sha256:") && err != HELLO, "{err}");
        assert_eq!(err, sha256_digest(b"hellO"));
        assert!(verify_digest("sha512:00", b"hello").is_err());
    }

    fn run(chunks: Vec<&'static [u8]>, expected: &str) -> (Vec<Result<Bytes, String>>, Option<Mismatch>, u64) {
        let mismatch = Arc::new(Mutex::new(None));
        let bytes = Arc::new(Mutex::new(0));
        let inner = stream::iter(
            chunks.into_iter().map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let out = block_on(
            VerifyingStream::new(inner, expected, mismatch.clone(), bytes.clone())
                .map(|r| r.map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
        );
        let m = mismatch.lock().unwrap().clone();
        let n = *bytes.lock().unwrap();
        (out, m, n)
    }

    #[test]
    fn the_stream_passes_matching_bytes_through_unchanged() {
        let (out, mismatch, n) = run(vec![b"he", b"llo"], HELLO);
        assert_eq!(out, vec![Ok(Bytes::from_static(b"he")), Ok(Bytes::from_static(b"llo"))]);
        assert_eq!(mismatch, None);
        assert_eq!(n, 5);
    }

    #[test]
    fn the_stream_ends_with_an_error_naming_the_blob_on_a_mismatch() {
        let (out, mismatch, _) = run(vec![b"he", b"ll0"], HELLO);
        assert_eq!(out.len(), 3);
        let last = out.last().unwrap().as_ref().unwrap_err();
        assert!(last.contains(HELLO), "{last}");
        let m = mismatch.expect("mismatch recorded");
        assert_eq!(m.actual, sha256_digest(b"hell0"));
        assert_eq!(m.size, 5);
    }
}
