//! Where attachment bytes live. [`BlobStore`] is the seam (a filesystem store by default; an
//! object store later); [`Upload`] checks an incoming stream against the size limit and the
//! content-type allow-list and hashes it as it arrives.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Content types accepted from the field.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "audio/mpeg",
    "audio/mp4",
    "audio/amr",
    "video/mp4",
];

/// Default size limit: 20 MiB.
pub const DEFAULT_MAX_BYTES: usize = 20 * 1024 * 1024;

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("content_type {0:?} is not accepted; use one of {ALLOWED_TYPES:?}")]
    Type(String),
    #[error("the bytes are not {0}")]
    Mismatch(String),
    #[error("larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("empty upload")]
    Empty,
}

/// An upload in progress.
pub struct Upload {
    content_type: String,
    max: usize,
    bytes: Vec<u8>,
    hasher: Sha256,
}

impl Upload {
    /// Starts an upload of `content_type` (checked against the allow-list).
    pub fn start(content_type: &str, max: usize) -> Result<Upload, UploadError> {
        if !ALLOWED_TYPES.contains(&content_type) {
            return Err(UploadError::Type(content_type.to_owned()));
        }
        Ok(Upload {
            content_type: content_type.to_owned(),
            max,
            bytes: Vec::new(),
            hasher: Sha256::new(),
        })
    }

    /// Appends a chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if self.bytes.len() + chunk.len() > self.max {
            return Err(UploadError::TooLarge(self.max));
        }
        self.hasher.update(chunk);
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// Finishes: checks the bytes look like the declared type; returns (sha256 hex, type, bytes).
    pub fn finish(self) -> Result<(String, String, Vec<u8>), UploadError> {
        if self.bytes.is_empty() {
            return Err(UploadError::Empty);
        }
        let magic_ok = match self.content_type.as_str() {
            "image/jpeg" => self.bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            "image/png" => self.bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "image/webp" => {
                self.bytes.len() >= 12
                    && &self.bytes[..4] == b"RIFF"
                    && &self.bytes[8..12] == b"WEBP"
            }
            _ => true,
        };
        if !magic_ok {
            return Err(UploadError::Mismatch(self.content_type));
        }
        Ok((
            hex::encode(self.hasher.finalize()),
            self.content_type,
            self.bytes,
        ))
    }
}

/// Stores bytes by their SHA-256.
#[tonic::async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `sha256` (a no-op if already there).
    async fn put(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// The bytes stored under `sha256`.
    async fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>>;
}

/// Files under a directory, fanned out by the first two bytes of the hash.
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store under `root` (created on first write).
    pub fn new(root: PathBuf) -> FsStore {
        FsStore { root }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.root
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }
}

#[tonic::async_trait]
impl BlobStore for FsStore {
    async fn put(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Write aside, fsync, then rename: a crash never leaves a partial file under the hash.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut f = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(sha256)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_hashed_and_checked() {
        let mut u = Upload::start("image/png", 100).unwrap();
        u.push(b"\x89PNG\r\n\x1a\n").unwrap();
        u.push(b"rest").unwrap();
        let (sha, ty, bytes) = u.finish().unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest(b"\x89PNG\r\n\x1a\nrest")));
        assert_eq!((ty.as_str(), bytes.len()), ("image/png", 12));
        assert_eq!(
            Upload::start("application/pdf", 100).err(),
            Some(UploadError::Type("application/pdf".into()))
        );
        let mut big = Upload::start("audio/mpeg", 10).unwrap();
        assert_eq!(big.push(&[0; 11]), Err(UploadError::TooLarge(10)));
        let mut fake = Upload::start("image/jpeg", 100).unwrap();
        fake.push(b"GIF89a").unwrap();
        assert_eq!(
            fake.finish().err(),
            Some(UploadError::Mismatch("image/jpeg".into()))
        );
        assert_eq!(
            Upload::start("image/heic", 10).unwrap().finish().err(),
            Some(UploadError::Empty)
        );
    }

    #[tokio::test]
    async fn fs_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().to_path_buf());
        let sha = hex::encode(Sha256::digest(b"x"));
        s.put(&sha, b"x").await.unwrap();
        s.put(&sha, b"x").await.unwrap();
        assert_eq!(s.get(&sha).await.unwrap(), b"x");
    }
}
