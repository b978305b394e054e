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

/// Passes a pulled blob's chunks through, hashing them. When the expected size is reached (or
/// the stream ends) it compares with the expected digest and, on a mismatch, records it in
/// `mismatch` and yields an error instead of the last chunk: the upload it feeds is aborted
/// before the registry has the whole blob, so nothing is committed. (An HTTP client sending a
/// body of known length stops polling once it has that many bytes: the check must come before
/// the last chunk, not after it.) Bytes beyond the expected size are refused too.
pub(crate) struct VerifyingStream<S> {
    inner: S,
    hasher: Option<Sha256>,
    size: u64,
    expected: String,
    expected_size: Option<u64>,
    mismatch: Arc<Mutex<Option<Mismatch>>>,
    bytes: Arc<Mutex<u64>>,
}

impl<S> VerifyingStream<S> {
    /// Wraps `inner`; `mismatch` is set when the bytes do not hash to `expected` (or are more
    /// than `expected_size`), `bytes` counts what went through.
    pub(crate) fn new(
        inner: S,
        expected: &str,
        expected_size: Option<u64>,
        mismatch: Arc<Mutex<Option<Mismatch>>>,
        bytes: Arc<Mutex<u64>>,
    ) -> Self {
        VerifyingStream {
            inner,
            hasher: Some(Sha256::new()),
            size: 0,
            expected: expected.to_string(),
            expected_size,
            mismatch,
            bytes,
        }
    }

    /// Compares what went through with the expected digest and size; `Some(error)` on a
    /// mismatch.
    fn finish(&mut self) -> Option<std::io::Error> {
        let hasher = self.hasher.take()?;
        let actual = format!("sha256:{:x}", hasher.finalize());
        let size_ok = self.expected_size.is_none_or(|n| n == self.size);
        if actual == self.expected && size_ok {
            return None;
        }
        let mismatch = Mismatch {
            actual: actual.clone(),
            size: self.size,
        };
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
                if this.expected_size.is_some_and(|n| this.size >= n) {
                    if let Some(mismatch) = this.finish() {
                        return Poll::Ready(Some(Err(mismatch)));
                    }
                }
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

    fn run(
        chunks: Vec<&'static [u8]>,
        expected: &str,
        size: Option<u64>,
    ) -> (Vec<Result<Bytes, String>>, Option<Mismatch>, u64) {
        let mismatch = Arc::new(Mutex::new(None));
        let bytes = Arc::new(Mutex::new(0));
        let inner = stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let out = block_on(
            VerifyingStream::new(inner, expected, size, mismatch.clone(), bytes.clone())
                .map(|r| r.map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
        );
        let m = mismatch.lock().unwrap().clone();
        let n = *bytes.lock().unwrap();
        (out, m, n)
    }

    #[test]
    fn the_stream_passes_matching_bytes_through_unchanged() {
        for size in [None, Some(5)] {
            let (out, mismatch, n) = run(vec![b"he", b"llo"], HELLO, size);
            assert_eq!(
                out,
                vec![
                    Ok(Bytes::from_static(b"he")),
                    Ok(Bytes::from_static(b"llo"))
                ]
            );
            assert_eq!(mismatch, None);
            assert_eq!(n, 5);
        }
    }

    #[test]
    fn with_a_known_size_the_last_chunk_is_withheld_on_a_mismatch() {
        let (out, mismatch, n) = run(vec![b"he", b"ll0"], HELLO, Some(5));
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], Ok(Bytes::from_static(b"he")));
        assert!(out[1].as_ref().unwrap_err().contains(HELLO), "{out:?}");
        assert_eq!(
            mismatch.expect("mismatch recorded").actual,
            sha256_digest(b"hell0")
        );
        assert_eq!(n, 2, "only the first chunk went through");
        // More bytes than announced: refused at the announced size.
        let (out, mismatch, _) = run(vec![b"hello", b"!"], HELLO, Some(4));
        assert!(out.iter().any(|r| r.is_err()), "{out:?}");
        assert_eq!(
            mismatch.expect("mismatch recorded").actual,
            sha256_digest(b"hello")
        );
    }

    #[test]
    fn the_stream_ends_with_an_error_naming_the_blob_on_a_mismatch() {
        let (out, mismatch, _) = run(vec![b"he", b"ll0"], HELLO, None);
        assert_eq!(out.len(), 3);
        let last = out.last().unwrap().as_ref().unwrap_err();
        assert!(last.contains(HELLO), "{last}");
        let m = mismatch.expect("mismatch recorded");
        assert_eq!(m.actual, sha256_digest(b"hell0"));
        assert_eq!(m.size, 5);
    }
}
