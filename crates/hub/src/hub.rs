//! The hub's HTTP API: revision and file listing (`/api/models/{repo}/revision/{rev}`,
//! `/api/models/{repo}/tree/{rev}`) and file downloads (`/{repo}/resolve/{rev}/{file}`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{HubError, Result};

/// Hugging Face itself.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Bytes read per write and per progress report.
const CHUNK_BYTES: usize = 1 << 20;

/// A file of a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path inside the repository.
    pub path: String,
    pub size: u64,
    /// Hex sha256, when the hub knows it (files stored with LFS).
    pub sha256: Option<String>,
}

/// A repository at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryFiles {
    /// The commit the revision resolved to.
    pub revision: String,
    pub files: Vec<RemoteFile>,
}

/// Where a download stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes in the file so far, resumed ones included.
    pub received: u64,
    pub total: u64,
    /// Bytes that were already there when the download started.
    pub resumed_from: u64,
}

/// A client of one hub.
#[derive(Clone, Debug)]
pub struct Hub {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct RevisionInfo {
    sha: String,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    lfs: Option<LfsInfo>,
}

#[derive(Deserialize)]
struct LfsInfo {
    oid: String,
    size: u64,
}

impl Hub {
    /// The hub of `$HF_ENDPOINT` (default huggingface.co), with `$HF_TOKEN` if set.
    pub fn from_env() -> Hub {
        let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty());
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
        Hub::new(endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT), token)
    }

    pub fn new(endpoint: &str, token: Option<String>) -> Hub {
        let builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            // Per read, not per transfer: a slow but moving download never times out.
            .timeout_read(Duration::from_secs(60));
        #[cfg(target_vendor = "apple")]
        let builder = match native_tls::TlsConnector::new() {
            Ok(connector) => builder.tls_connector(std::sync::Arc::new(connector)),
            // Plain-HTTP hubs still work; HTTPS then fails with ureq's own error.
            Err(_) => builder,
        };
        let agent = builder.build();
        Hub { endpoint: endpoint.trim_end_matches('/').to_owned(), token, agent }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn get(&self, url: &str) -> ureq::Request {
        let request =
            self.agent.get(url).set("User-Agent", concat!("uma/", env!("CARGO_PKG_VERSION")));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    fn call(&self, request: ureq::Request, url: &str) -> Result<ureq::Response> {
        request.call().map_err(|error| match error {
            ureq::Error::Status(status, response) => {
                let detail = response.into_string().unwrap_or_default();
                let detail = detail.chars().take(300).collect::<String>().trim().to_owned();
                HubError::Status { url: url.to_owned(), status, detail }
            }
            ureq::Error::Transport(transport) => {
                HubError::Transport { url: url.to_owned(), reason: transport.to_string() }
            }
        })
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T> {
        let response = self.call(self.get(url), url)?;
        response.into_json().map_err(|error| HubError::BadResponse {
            url: url.to_owned(),
            reason: error.to_string(),
        })
    }

    /// The files of `repo` (`OWNER/NAME`) at `revision` (a branch, tag or commit).
    pub fn repository_files(&self, repo: &str, revision: &str) -> Result<RepositoryFiles> {
        let info: RevisionInfo =
            self.json(&format!("{}/api/models/{repo}/revision/{revision}", self.endpoint))?;
        let tree: Vec<TreeEntry> =
            self.json(&format!("{}/api/models/{repo}/tree/{}", self.endpoint, info.sha))?;
        let files = tree
            .into_iter()
            .filter(|entry| entry.kind == "file")
            .map(|entry| RemoteFile {
                size: entry.lfs.as_ref().map_or(entry.size, |lfs| lfs.size),
                sha256: entry.lfs.map(|lfs| lfs.oid.to_ascii_lowercase()),
                path: entry.path,
            })
            .collect();
        Ok(RepositoryFiles { revision: info.sha, files })
    }

    /// Downloads `file` of `repo` at `revision` into `partial`, continuing from what `partial`
    /// already holds (a range request; a hub that ignores it sends the whole file, and the
    /// partial file starts over). Returns the file's hex sha256, checked against the hub's when
    /// it has one: on a mismatch the partial file is deleted, so the next attempt starts clean.
    pub fn download(
        &self,
        repo: &str,
        revision: &str,
        file: &RemoteFile,
        partial: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<String> {
        let url =
            format!("{}/{repo}/resolve/{revision}/{}", self.endpoint, encode_path(&file.path));
        let io = |what: &'static str| {
            let path = partial.display().to_string();
            move |source| HubError::Io { what, path, source }
        };
        let mut hasher = Sha256::new();
        let mut have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if have > file.size {
            have = 0; // Not a prefix of this file: start over.
        }
        if have > 0 {
            // Hash what is there: the checksum covers the whole file.
            let mut existing = File::open(partial).map_err(io("cannot read"))?;
            let mut buffer = vec![0; CHUNK_BYTES];
            let mut left = have;
            while left > 0 {
                let n = existing.read(&mut buffer).map_err(io("cannot read"))?;
                if n == 0 {
                    break;
                }
                let n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
                hasher.update(&buffer[..n]);
                left -= n as u64;
            }
        }
        let mut request = self.get(&url);
        if have > 0 && have < file.size {
            request = request.set("Range", &format!("bytes={have}-"));
        }
        let response =
            if have == file.size && have > 0 { None } else { Some(self.call(request, &url)?) };
        let resumed_from = match &response {
            Some(response) if response.status() == 206 => have,
            Some(_) => 0,
            None => have,
        };
        if resumed_from == 0 && have > 0 {
            hasher = Sha256::new();
        }
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(resumed_from == 0)
            .append(resumed_from > 0)
            .open(partial)
            .map_err(io("cannot write"))?;
        let mut received = resumed_from;
        progress(Progress { received, total: file.size, resumed_from });
        if let Some(response) = response {
            let mut body = response.into_reader();
            let mut buffer = vec![0; CHUNK_BYTES];
            loop {
                let n = match body.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(error) => {
                        out.flush().map_err(io("cannot write"))?;
                        return Err(HubError::Transport { url, reason: error.to_string() });
                    }
                };
                // Never more than the listing said: a hub sending more is refused, not stored.
                if received + n as u64 > file.size {
                    drop(out);
                    let _ = std::fs::remove_file(partial);
                    return Err(HubError::TooLong { file: file.path.clone(), expected: file.size });
                }
                out.write_all(&buffer[..n]).map_err(io("cannot write"))?;
                hasher.update(&buffer[..n]);
                received += n as u64;
                progress(Progress { received, total: file.size, resumed_from });
            }
        }
        out.sync_all().map_err(io("cannot write"))?;
        if received != file.size {
            return Err(HubError::Incomplete {
                file: file.path.clone(),
                received,
                expected: file.size,
            });
        }
        let actual: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
        if let Some(expected) = &file.sha256 {
            if *expected != actual {
                let _ = std::fs::remove_file(partial);
                return Err(HubError::ChecksumMismatch {
                    file: file.path.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(actual)
    }
}

/// `path` with every byte outside URL-safe characters percent-encoded, segment by segment (the
/// `/` between folders kept): a file name from a listing goes into a URL as data, not syntax.
fn encode_path(path: &str) -> String {
    let segments = path.split('/').map(|segment| {
        // `.` and `..` would move along the URL's path: encoded, they are names.
        if segment == "." || segment == ".." {
            return segment.replace('.', "%2E");
        }
        let mut out = String::with_capacity(segment.len());
        for byte in segment.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(byte as char)
                }
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    });
    segments.collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod path_tests {
    use super::encode_path;

    #[test]
    fn file_paths_are_encoded_as_data() {
        assert_eq!(encode_path("qwen-q4_k_m.gguf"), "qwen-q4_k_m.gguf");
        assert_eq!(encode_path("dir/a b.gguf"), "dir/a%20b.gguf");
        assert_eq!(encode_path("x?y#z%.gguf"), "x%3Fy%23z%25.gguf");
        assert_eq!(encode_path("../é.gguf"), "%2E%2E/%C3%A9.gguf");
        assert_eq!(encode_path("a/./b..gguf"), "a/%2E/b..gguf");
    }
}
