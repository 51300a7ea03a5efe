//! Downloads with SHA-256 checks: each file is fetched from its mirrors in turn into a
//! temporary file beside its destination, hashed while it streams, size-capped, and renamed
//! into place only when the hash matches, so the cache never holds a partial or wrong file.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A published file: its name, where to get it and what it must hash to.
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    /// File name in the cache (the published name).
    pub file_name: &'static str,
    /// Full URLs to try, in order.
    pub urls: &'static [&'static str],
    /// Lower-case hex SHA-256 of the file.
    pub sha256: &'static str,
    /// Published size in bytes: sizes the progress bar; anything over twice this is refused.
    pub size: u64,
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes sure `dir/remote.file_name` exists with the right hash, downloading it if needed.
/// Tries every mirror; fails naming the file once and each mirror's address once, with its
/// reason (`download of F failed: URL1: why; URL2: why`).
pub fn fetch(remote: &Remote, dir: &Path, progress: bool) -> Result<PathBuf> {
    let dest = dir.join(remote.file_name);
    // A stale or damaged copy is fetched again over it.
    if dest.is_file() && sha256_file(&dest)? == remote.sha256 {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut reasons = Vec::new();
    for url in remote.urls {
        match download(url, &dest, remote.sha256, remote.size, progress) {
            Ok(()) => return Ok(dest),
            // The error names its address already; the reason alone follows it here.
            Err(Error::Download { url, message }) => reasons.push(format!("{url}: {message}")),
            Err(e) => reasons.push(format!("{url}: {e}")),
        }
    }
    Err(Error::Download { url: remote.file_name.to_string(), message: reasons.join("; ") })
}

/// Downloads `url` to `dest` through a temporary file, checking size and SHA-256.
pub fn download(url: &str, dest: &Path, sha256: &str, size: u64, progress: bool) -> Result<()> {
    let fail = |m: String| Error::Download { url: url.to_string(), message: m };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = resp.body().content_length().unwrap_or(size);
    let cap = size.saturating_mul(2);
    if size > 0 && total > cap {
        return Err(fail(format!("the server announces {total} bytes, expected {size}")));
    }
    let tmp = dest.with_extension(format!(
        "{}part",
        dest.extension().map(|e| format!("{}.", e.to_string_lossy())).unwrap_or_default()
    ));
    let result = (|| -> Result<()> {
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let bar = progress.then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:30.green/white} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_message(format!("Downloading {}", dest.file_name().unwrap_or_default().to_string_lossy()));
            b
        });
        let mut reader = resp.body_mut().as_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut got: u64 = 0;
        loop {
            let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            got += n as u64;
            if size > 0 && got > cap {
                return Err(fail(format!("more than twice the expected {size} bytes")));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(|e| Error::io(&tmp, e))?;
            if let Some(b) = &bar {
                b.set_position(got);
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        let digest = hex(&hasher.finalize());
        if digest != sha256 {
            return Err(fail(format!("SHA-256 mismatch: got {digest}, expected {sha256}")));
        }
        std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves `body` to `requests` HTTP requests on a loopback port; returns the base URL.
    fn serve(body: Vec<u8>, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut s = stream.unwrap();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(&body).unwrap();
            }
        });
        format!("http://{addr}/file.bin")
    }

    fn digest(b: &[u8]) -> String {
        hex(&Sha256::digest(b))
    }

    #[test]
    fn downloads_and_verifies() {
        let body = b"hello dataset".to_vec();
        let url = serve(body.clone(), 1);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let dest = dir.join("file.bin");
        download(&url, &dest, &digest(&body), body.len() as u64, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), body);
    }

    #[test]
    fn wrong_hash_leaves_nothing_behind_and_keeps_the_old_file() {
        let body = b"tampered".to_vec();
        let url = serve(body.clone(), 1);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let dest = dir.join("file.bin");
        std::fs::write(&dest, b"old good copy").unwrap();
        let err = download(&url, &dest, &digest(b"expected"), 100, false).unwrap_err();
        assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old good copy");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
    }

    #[test]
    fn oversized_body_is_refused() {
        let body = vec![1u8; 5000];
        let url = serve(body.clone(), 1);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let err = download(&url, &dir.join("f"), &digest(&body), 100, false).unwrap_err();
        assert!(err.to_string().contains("expected 100"), "{err}");
    }

    #[test]
    fn fetch_falls_back_to_the_next_mirror() {
        let body = b"mirror two".to_vec();
        let good = serve(body.clone(), 1);
        let urls: &'static [&'static str] =
            Box::leak(Box::new(["http://127.0.0.1:9/nothing", Box::leak(good.into_boxed_str())]));
        let sha: &'static str = Box::leak(digest(&body).into_boxed_str());
        let remote = Remote { file_name: "f.bin", urls, sha256: sha, size: body.len() as u64 };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let p = fetch(&remote, &dir, false).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), body);
        // Second call finds the verified file without any network.
        let p = fetch(&remote, &dir, false).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), body);
    }

    /// When every mirror fails, the error names the file once and each address once.
    #[test]
    fn a_failed_fetch_names_each_address_once() {
        let urls: &'static [&'static str] = &["http://127.0.0.1:9/a/f.bin", "http://127.0.0.1:9/b/f.bin"];
        let remote = Remote { file_name: "f.bin", urls, sha256: "00", size: 10 };
        let tmp = tempfile::tempdir().unwrap();
        let err = fetch(&remote, tmp.path(), false).unwrap_err().to_string();
        assert!(err.starts_with("download of f.bin failed: http://127.0.0.1:9/a/f.bin: "), "{err}");
        for u in urls {
            assert_eq!(err.matches(u).count(), 1, "{err}");
        }
        assert_eq!(err.matches("download of").count(), 1, "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
