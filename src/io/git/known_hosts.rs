//! SSH host keys checked against a known_hosts file (OpenSSH's format), strictly: a host that
//! is not listed, or offers another key, is refused with its name and the fingerprint it offered
//! (`SHA256:…`, as `ssh-keygen -lf` prints it), so an operator can compare before adding it.
//!
//! Read: plain host patterns (`host`, `[host]:port`, comma-separated). Hashed entries (`|1|…`)
//! and `@cert-authority` lines are not used; `@revoked` keys are refused.

use base64::Engine;
use sha2::{Digest, Sha256};

/// One usable line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hosts: Vec<String>,
    key_sha256: [u8; 32],
    revoked: bool,
}

fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let revoked = first == "@revoked";
        if first.starts_with('@') {
            if !revoked {
                continue; // @cert-authority: certificates are not used
            }
            first = fields.next().unwrap_or_default();
        }
        if first.starts_with('|') {
            continue; // hashed host names
        }
        let (Some(_key_type), Some(key)) = (fields.next(), fields.next()) else { continue };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(key) else { continue };
        let hosts = first.split(',').map(|h| h.to_ascii_lowercase()).collect();
        out.push(Entry { hosts, key_sha256: Sha256::digest(&blob).into(), revoked });
    }
    out
}

/// `SHA256:` and the unpadded base64 of a key's SHA-256, as OpenSSH shows fingerprints.
pub fn fingerprint(sha256: &[u8; 32]) -> String {
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha256))
}

/// Whether `host` (on `port`) offering a key with this SHA-256 is known in `text` (a known_hosts
/// file named `file` in messages); the error says what to check and how to add the host.
pub fn check(text: &str, file: &str, host: &str, port: u16, offered: &[u8; 32]) -> Result<(), String> {
    let host = host.to_ascii_lowercase();
    let pattern = if port == 22 { host.clone() } else { format!("[{host}]:{port}") };
    let all = entries(text);
    let listed: Vec<&Entry> = all.iter().filter(|e| e.hosts.contains(&pattern)).collect();
    let shown = fingerprint(offered);
    if listed.iter().any(|e| e.revoked && e.key_sha256 == *offered) {
        return Err(format!("the host key {shown} of {pattern} is marked @revoked in {file}"));
    }
    if listed.iter().any(|e| !e.revoked && e.key_sha256 == *offered) {
        return Ok(());
    }
    if listed.is_empty() {
        let scan = if port == 22 { format!("ssh-keyscan {host}") } else { format!("ssh-keyscan -p {port} {host}") };
        return Err(format!(
            "{pattern} is not in known_hosts {file}; it offered the host key {shown}: check that fingerprint with the server's owner, then add the host (`{scan} >> {file}`)"
        ));
    }
    let known: Vec<String> = listed.iter().map(|e| fingerprint(&e.key_sha256)).collect();
    Err(format!(
        "the host key of {pattern} does not match {file}: it offered {shown}, known is {} — the server's key changed, or someone is in between; fetch nothing until it is explained",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIB7y3S0Xi1q3dKzJ2bDGXJvZ8kH7Qq4m1b2n3v4c5d6e";

    fn sha(key: &str) -> [u8; 32] {
        Sha256::digest(base64::engine::general_purpose::STANDARD.decode(key).unwrap()).into()
    }

    #[test]
    fn only_a_listed_host_with_its_own_key_passes() {
        let file = format!("# comment\n[git.example]:2222,10.0.0.5 ssh-ed25519 {KEY}\n|1|hashed= ssh-ed25519 {OTHER}\nplain.example ssh-ed25519 {OTHER} note\n");
        assert!(check(&file, "kh", "git.example", 2222, &sha(KEY)).is_ok());
        assert!(check(&file, "kh", "GIT.example", 2222, &sha(KEY)).is_ok(), "host names compare without case");
        assert!(check(&file, "kh", "plain.example", 22, &sha(OTHER)).is_ok());
        let err = check(&file, "kh", "git.example", 22, &sha(KEY)).unwrap_err();
        assert!(
            err.contains("git.example is not in known_hosts kh")
                && err.contains(&fingerprint(&sha(KEY)))
                && err.contains("ssh-keyscan git.example"),
            "{err}"
        );
        let err = check(&file, "kh", "git.example", 2222, &sha(OTHER)).unwrap_err();
        assert!(
            err.contains("does not match") && err.contains(&fingerprint(&sha(OTHER))) && err.contains(&fingerprint(&sha(KEY))),
            "{err}"
        );
        let revoked = format!("@revoked [git.example]:2222 ssh-ed25519 {KEY}\n[git.example]:2222 ssh-ed25519 {KEY}\n");
        assert!(check(&revoked, "kh", "git.example", 2222, &sha(KEY)).unwrap_err().contains("@revoked"));
        assert!(fingerprint(&sha(KEY)).starts_with("SHA256:") && !fingerprint(&sha(KEY)).ends_with('='));
    }
}
