//! Fingerprints: what decides that an app must be deployed (SPEC §1.3).
//!
//! Over the raw bytes of the deploy-relevant files (ECS: svcdef, taskdef, input; Lambda: lambdadef,
//! eventsourcedef, lambdainput) plus the values of referenced IaC outputs that the templates read.
//! Depdef-only edits do not change it; any byte edit (whitespace too) of the others does.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Builds a fingerprint incrementally.
pub struct Fingerprinter {
    hasher: Sha256,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    /// A hasher seeded with the fingerprint version.
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"gitmoxi-fingerprint-v1\0");
        Fingerprinter { hasher }
    }

    /// Adds one file's raw bytes under a role name ("svcdef", …); absent files count as absent.
    pub fn file(&mut self, role: &str, bytes: Option<&[u8]>) {
        self.hasher.update(role.as_bytes());
        match bytes {
            Some(b) => {
                self.hasher.update([1u8]);
                self.hasher.update((b.len() as u64).to_le_bytes());
                self.hasher.update(b);
            }
            None => self.hasher.update([0u8]),
        }
    }

    /// Adds the values of the ref variables that the templates read (`used` holds dotted paths).
    pub fn ref_values(&mut self, from_refs: &Map<String, Value>, used: &BTreeSet<String>) {
        for path in used {
            let mut segments = path.split('.');
            let Some(first) = segments.next() else { continue };
            let Some(mut value) = from_refs.get(first) else { continue };
            for segment in segments {
                match value.get(segment) {
                    Some(v) => value = v,
                    None => break,
                }
            }
            self.hasher.update(b"ref\0");
            self.hasher.update(path.as_bytes());
            self.hasher.update([0u8]);
            self.hasher.update(value.to_string().as_bytes());
            self.hasher.update([0u8]);
        }
    }

    /// The fingerprint, as lowercase hex.
    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// The short form shown to people.
pub fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

/// Lambda's `CodeSha256` of a base64 `ZipFile`: the base64 of the SHA-256 of the zip bytes.
pub fn lambda_code_sha256(zip_base64: &str) -> Option<String> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let bytes = base64::engine::general_purpose::STANDARD.decode(zip_base64.trim()).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes)))
}
