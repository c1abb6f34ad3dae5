//! Content-addressed documents: the desired app a deployment record carries (svcdef, taskdef,
//! depdef or lambdadef, rendered) is stored once, under the hash of its app and its bytes, and
//! records refer to it as `{"$doc": "<id>"}`. A reconcile step rewrites the in-flight record on
//! every phase change; with the documents out of it, a step writes a few hundred bytes instead of
//! every rendered document again, which is most of what sled's buffers held at 2,000 apps.
//!
//! Invariants: a document is written before any record that refers to it (a crash never leaves
//! a reference to nothing); records written before this scheme (desired inline) read as they
//! were; a document is removed only when no record or app entry of its app refers to it.

use gitmoxi_deploy::record::DeploymentRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The record fields that hold a document.
const DOCUMENT_FIELDS: [&str; 2] = ["desired", "desired_lambda"];
/// The key of a reference.
const REF: &str = "$doc";

/// A record ready to store: its bytes (documents replaced by references) and the documents.
pub(crate) struct SplitRecord {
    pub bytes: Vec<u8>,
    pub documents: Vec<(String, Vec<u8>)>,
}

/// The id of a document of `app`: the app is part of the hash, so apps never share (and a
/// document's removal concerns one app only).
pub(crate) fn document_id(app: &[u8], bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(app);
    hasher.update([0xff]);
    hasher.update(bytes);
    hex::encode(&hasher.finalize()[..16])
}

/// Takes the documents out of a record.
pub(crate) fn split(record: &DeploymentRecord, app: &[u8]) -> SplitRecord {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    let mut documents = Vec::new();
    if let Value::Object(fields) = &mut value {
        for name in DOCUMENT_FIELDS {
            if let Some(document) = fields.get_mut(name).filter(|d| !d.is_null()) {
                let bytes = serde_json::to_vec(document).unwrap_or_default();
                let id = document_id(app, &bytes);
                *document = serde_json::json!({ REF: id });
                documents.push((id, bytes));
            }
        }
    }
    SplitRecord { bytes: serde_json::to_vec(&value).unwrap_or_default(), documents }
}

/// The ids of the documents a stored record refers to.
pub(crate) fn references(stored: &Value) -> Vec<String> {
    DOCUMENT_FIELDS.iter().filter_map(|name| reference(stored.get(name)?)).map(str::to_string).collect()
}

fn reference(field: &Value) -> Option<&str> {
    let fields = field.as_object().filter(|o| o.len() == 1)?;
    fields.get(REF)?.as_str()
}

/// Puts the documents back into a stored record; `fetch` reads a document by id. A record
/// stored with its documents inline comes back as it is.
pub(crate) fn join<E>(
    mut stored: Value,
    mut fetch: impl FnMut(&str) -> Result<Option<Value>, E>,
    missing: impl Fn(&str) -> E,
) -> Result<Value, E> {
    if let Value::Object(fields) = &mut stored {
        for name in DOCUMENT_FIELDS {
            let Some(field) = fields.get_mut(name) else { continue };
            let Some(id) = reference(field).map(str::to_string) else { continue };
            *field = fetch(&id)?.ok_or_else(|| missing(&id))?;
        }
    }
    Ok(stored)
}
