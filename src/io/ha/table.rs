//! The DynamoDB table of high availability: leases, replicas, the mirrored state of each shard,
//! documents and the command inbox. The only module that speaks DynamoDB (rule 6: no SDK type
//! leaves it).
//!
//! Layout (one table, `pk` and `sk` strings; see `packaging/dynamodb-table.json`):
//! - `lease` / `shard#0007`: owner, token (the fencing token), expires_ms, seq, inbox;
//! - `replica` / `<replica>`: expires_ms, url — who is alive;
//! - `shard#0007` / `app#<key>#entry|record|commands`: an app's state (`body`, JSON);
//! - `shard#0007` / `hist#<key>#<at_ms>#<seq>` and `dep#<key>#<id>`: history and finished
//!   deployments, with a `ttl` DynamoDB expires them by;
//! - `doc#<id>` / `part#000…`: content-addressed documents, split below the 400 KB item limit;
//! - `inbox#0007` / `<at_ms>#<n>`: commands given to a replica that does not own the app.
//!
//! Invariants: every write of a shard's state is one transaction that also checks the shard's
//! lease (owner and token): a former owner's write is refused, never merged; documents are
//! written before the state that refers to them.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use gitmoxi_deploy::shards::Lease;
use std::collections::HashMap;

/// At most this many bytes of a document per item (DynamoDB's item limit is 400 KB).
pub const DOCUMENT_PART_BYTES: usize = 300 * 1024;
/// Bodies above this go to a document (an app's item stays small).
pub const INLINE_BODY_BYTES: usize = 64 * 1024;
/// The condition of every write of a lease's holder: it still holds it, with its token.
const HELD: &str = "#owner = :me AND #token = :token";
/// Writes per transaction besides the lease check (DynamoDB allows 100 actions).
const WRITES_PER_TRANSACTION: usize = 99;
/// Bytes of items per transaction (DynamoDB allows 4 MB; every body is at most
/// `INLINE_BODY_BYTES`, so one write always fits).
const TRANSACTION_BYTES: usize = 3 * 1024 * 1024;

/// Why a table operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The lease moved on: this replica no longer owns the shard and must stop acting for it.
    #[error(
        "shard {shard}: the lease belongs to another replica now (fencing token {token} is stale); this replica stops acting for its apps"
    )]
    Fenced { shard: u32, token: u64 },
    #[error("DynamoDB table {table}: {error}")]
    Aws { table: String, error: crate::io::aws::AwsError },
    /// The local store failed while the state was copied to or from the table.
    #[error(transparent)]
    Store(#[from] gitmoxi_state::StoreError),
    #[error("DynamoDB table {table}: item {pk}/{sk} is unreadable: {why}")]
    Corrupt { table: String, pk: String, sk: String, why: String },
}

impl TableError {
    pub fn is_transient(&self) -> bool {
        match self {
            TableError::Aws { error, .. } => error.is_transient() || error.code == "TransactionConflictException",
            TableError::Fenced { .. } | TableError::Corrupt { .. } | TableError::Store(_) => false,
        }
    }
}

/// Which sort keys of a partition a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    All,
    /// Sort keys that begin with this.
    Prefix(String),
    /// Sort keys between the two, both included.
    Between(String, String),
}

/// One write of a shard's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put { sk: String, body: String, app: String, ttl: Option<u64> },
    Delete { sk: String },
}

impl Write {
    fn sk(&self) -> &str {
        match self {
            Write::Put { sk, .. } | Write::Delete { sk } => sk,
        }
    }
}

/// An item of a shard's partition, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct StateItem {
    pub sk: String,
    pub app: String,
    pub body: String,
}

/// A replica that announced itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub name: String,
    pub expires_ms: u64,
    pub url: Option<String>,
}

/// A lease with what the owner publishes on it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseItem {
    pub lease: Lease,
    /// Grows with the owner's writes: a replica that does not own the shard re-reads it when it moved.
    pub seq: u64,
    /// Grows with each command left in the shard's inbox.
    pub inbox: u64,
}

/// A command waiting in a shard's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub sk: String,
    pub body: String,
}

/// The table.
#[derive(Clone)]
pub struct Table {
    client: Client,
    name: String,
    /// Requests by operation and items written (what the table costs; see the README).
    requests: Option<(prometheus::IntCounterVec, prometheus::IntCounter)>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn lease_sk(shard: u32) -> String {
    format!("shard#{shard:04}")
}

pub fn shard_pk(shard: u32) -> String {
    format!("shard#{shard:04}")
}

fn inbox_pk(shard: u32) -> String {
    format!("inbox#{shard:04}")
}

fn shared_pk(kind: &str) -> String {
    format!("shared#{kind}")
}

fn doc_pk(id: &str) -> String {
    format!("doc#{id}")
}

fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

impl Table {
    pub fn new(client: Client, name: String) -> Table {
        Table { client, name, requests: None }
    }

    /// Counts requests into `requests{operation}` and written items into `items`.
    pub fn with_metrics(mut self, requests: prometheus::IntCounterVec, items: prometheus::IntCounter) -> Table {
        self.requests = Some((requests, items));
        self
    }

    fn count(&self, operation: &str, items: u64) {
        if let Some((requests, written)) = &self.requests {
            requests.with_label_values(&[operation]).inc();
            written.inc_by(items);
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn aws<E>(
        &self,
        operation: &'static str,
        e: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ) -> TableError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        TableError::Aws { table: self.name.clone(), error: crate::io::aws::AwsError::from_sdk("dynamodb", operation, e) }
    }

    /// Every item of a partition (consistent reads, all pages).
    async fn query_all(&self, pk: &str) -> Result<Vec<HashMap<String, AttributeValue>>, TableError> {
        self.query(pk, &Range::All, None).await
    }

    /// The items of a partition in a sort-key range (consistent reads), oldest first; with
    /// `newest`, only the newest that many.
    async fn query(&self, pk: &str, range: &Range, newest: Option<usize>) -> Result<Vec<HashMap<String, AttributeValue>>, TableError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        // bounded: a partition of 10,000 pages is not something gitmoxi wrote
        for _ in 0..10_000 {
            self.count("Query", 0);
            let mut query = self
                .client
                .query()
                .table_name(&self.name)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .scan_index_forward(newest.is_none())
                .set_exclusive_start_key(start.take());
            query = match range {
                Range::All => query.key_condition_expression("pk = :pk"),
                Range::Prefix(p) => {
                    query.key_condition_expression("pk = :pk AND begins_with(sk, :p)").expression_attribute_values(":p", s(p))
                }
                Range::Between(a, b) => query
                    .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
                    .expression_attribute_values(":a", s(a))
                    .expression_attribute_values(":b", s(b)),
            };
            if let Some(n) = newest {
                query = query.limit(n.saturating_sub(items.len()).clamp(1, 1000) as i32);
            }
            let out = query.send().await.map_err(|e| self.aws("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            if newest.is_some_and(|n| items.len() >= n) {
                break;
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        if newest.is_some() {
            items.reverse();
        }
        Ok(items)
    }

    /// Announces `me` alive until `expires_ms`.
    pub async fn heartbeat(&self, me: &str, expires_ms: u64, url: Option<&str>) -> Result<(), TableError> {
        let mut put =
            self.client.put_item().table_name(&self.name).item("pk", s("replica")).item("sk", s(me)).item("expires_ms", n(expires_ms));
        if let Some(url) = url {
            put = put.item("url", s(url));
        }
        // DynamoDB removes replicas gone for a day
        put = put.item("ttl", n(expires_ms / 1000 + 86_400));
        self.count("PutItem", 1);
        put.send().await.map_err(|e| self.aws("PutItem", e))?;
        Ok(())
    }

    /// Says `me` is gone (a clean stop).
    pub async fn leave(&self, me: &str) -> Result<(), TableError> {
        self.count("DeleteItem", 1);
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s("replica"))
            .key("sk", s(me))
            .send()
            .await
            .map_err(|e| self.aws("DeleteItem", e))?;
        Ok(())
    }

    pub async fn replicas(&self) -> Result<Vec<Replica>, TableError> {
        Ok(self
            .query_all("replica")
            .await?
            .into_iter()
            .filter_map(|item| {
                Some(Replica { name: get_s(&item, "sk")?, expires_ms: get_n(&item, "expires_ms")?, url: get_s(&item, "url") })
            })
            .collect())
    }

    pub async fn leases(&self) -> Result<Vec<LeaseItem>, TableError> {
        Ok(self
            .query_all("lease")
            .await?
            .into_iter()
            .filter_map(|item| {
                let shard = get_s(&item, "sk")?.strip_prefix("shard#")?.parse().ok()?;
                Some(LeaseItem {
                    lease: Lease {
                        shard,
                        owner: get_s(&item, "owner").unwrap_or_default(),
                        token: get_n(&item, "token").unwrap_or(0),
                        expires_ms: get_n(&item, "expires_ms").unwrap_or(0),
                    },
                    seq: get_n(&item, "seq").unwrap_or(0),
                    inbox: get_n(&item, "inbox").unwrap_or(0),
                })
            })
            .collect())
    }

    /// An UpdateItem of a shard's lease, with the names its expressions use.
    fn lease_update(&self, shard: u32) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.count("UpdateItem", 1);
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s("lease"))
            .key("sk", s(lease_sk(shard)))
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#token", "token")
    }

    /// The same, on condition that `me` still holds the lease with `token`.
    fn lease_held(&self, shard: u32, me: &str, token: u64) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.lease_update(shard)
            .condition_expression(HELD)
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":token", n(token))
    }

    /// Takes a free or expired lease (or `me`'s own from before a restart): the token grows by
    /// one. `Ok(None)`: another replica holds it.
    pub async fn take(&self, shard: u32, me: &str, now_ms: u64, expires_ms: u64) -> Result<Option<u64>, TableError> {
        let result = self
            .lease_update(shard)
            .update_expression("SET #owner = :me, expires_ms = :expires, #token = if_not_exists(#token, :zero) + :one, seq = :zero")
            .condition_expression("attribute_not_exists(pk) OR expires_ms < :now OR #owner = :me")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":expires", n(expires_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.as_ref().and_then(|a| get_n(a, "token"))),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(None),
            Err(e) => Err(self.aws("UpdateItem", e)),
        }
    }

    /// Extends `me`'s lease and publishes how far its writes went.
    pub async fn renew(&self, shard: u32, me: &str, token: u64, expires_ms: u64, seq: u64) -> Result<(), TableError> {
        let result = self
            .lease_held(shard, me, token)
            .update_expression("SET expires_ms = :expires, seq = :seq")
            .expression_attribute_values(":expires", n(expires_ms))
            .expression_attribute_values(":seq", n(seq))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Err(TableError::Fenced { shard, token })
            }
            Err(e) => Err(self.aws("UpdateItem", e)),
        }
    }

    /// Gives a lease back (it expires now); a lease that moved on already is left alone.
    pub async fn release(&self, shard: u32, me: &str, token: u64) -> Result<(), TableError> {
        let result = self
            .lease_held(shard, me, token)
            .update_expression("SET expires_ms = :zero")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(self.aws("UpdateItem", e)),
        }
    }

    /// Writes a shard's state, fenced: each transaction checks that `me` still holds the lease
    /// with `token`. A refusal of that check is [`TableError::Fenced`].
    pub async fn write_shard(&self, shard: u32, me: &str, token: u64, writes: &[Write]) -> Result<(), TableError> {
        let check = ConditionCheck::builder()
            .table_name(&self.name)
            .key("pk", s("lease"))
            .key("sk", s(lease_sk(shard)))
            .condition_expression(HELD)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":token", n(token))
            .build()
            .map_err(|e| self.construction("ConditionCheck", e))?;
        // one action per item in a transaction: the last write of an item wins
        let mut last: Vec<&Write> = Vec::new();
        for w in writes {
            last.retain(|x| x.sk() != w.sk());
            last.push(w);
        }
        for chunk in transactions(&last) {
            let mut items = vec![TransactWriteItem::builder().condition_check(check.clone()).build()];
            for w in chunk {
                let item = match w {
                    Write::Put { sk, body, app, ttl } => {
                        let mut put = Put::builder()
                            .table_name(&self.name)
                            .item("pk", s(shard_pk(shard)))
                            .item("sk", s(sk.clone()))
                            .item("app", s(app.clone()))
                            .item("body", s(body.clone()));
                        if let Some(ttl) = ttl {
                            put = put.item("ttl", n(*ttl));
                        }
                        TransactWriteItem::builder().put(put.build().map_err(|e| self.construction("Put", e))?).build()
                    }
                    Write::Delete { sk } => TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.name)
                                .key("pk", s(shard_pk(shard)))
                                .key("sk", s(sk.clone()))
                                .build()
                                .map_err(|e| self.construction("Delete", e))?,
                        )
                        .build(),
                };
                items.push(item);
            }
            self.count("TransactWriteItems", chunk.len() as u64);
            let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
            if let Err(e) = result {
                let lease_refused = e.as_service_error().and_then(|se| match se {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(c.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed"))
                    }
                    _ => None,
                });
                return Err(match lease_refused {
                    Some(true) => TableError::Fenced { shard, token },
                    _ => self.aws("TransactWriteItems", e),
                });
            }
        }
        Ok(())
    }

    fn construction(&self, what: &str, e: aws_sdk_dynamodb::error::BuildError) -> TableError {
        TableError::Aws {
            table: self.name.clone(),
            error: crate::io::aws::AwsError::new(
                "dynamodb",
                "TransactWriteItems",
                crate::io::aws::AwsErrorKind::Rejected,
                "BuildError",
                format!("{what}: {e}"),
            ),
        }
    }

    /// Every state item of a shard.
    pub async fn shard_items(&self, shard: u32) -> Result<Vec<StateItem>, TableError> {
        self.state_items(shard, &Range::All, None).await
    }

    /// The state items of a shard in `range` (the newest `newest` of them, when given).
    pub async fn state_items(&self, shard: u32, range: &Range, newest: Option<usize>) -> Result<Vec<StateItem>, TableError> {
        let pk = shard_pk(shard);
        self.query(&pk, range, newest)
            .await?
            .into_iter()
            .map(|item| {
                let sk = get_s(&item, "sk").unwrap_or_default();
                match (get_s(&item, "app"), get_s(&item, "body")) {
                    (Some(app), Some(body)) => Ok(StateItem { sk, app, body }),
                    _ => Err(TableError::Corrupt { table: self.name.clone(), pk: pk.clone(), sk, why: "no app or body".into() }),
                }
            })
            .collect()
    }

    /// Stores a document (unconditional: the same id always holds the same bytes).
    pub async fn put_document(&self, id: &str, bytes: &[u8]) -> Result<(), TableError> {
        let text = String::from_utf8_lossy(bytes);
        let parts: Vec<&str> = split_utf8(&text, DOCUMENT_PART_BYTES);
        for (i, part) in parts.iter().enumerate() {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.name)
                .item("pk", s(doc_pk(id)))
                .item("sk", s(format!("part#{i:03}")))
                .item("body", s(*part));
            if i == 0 {
                put = put.item("parts", n(parts.len() as u64));
            }
            self.count("PutItem", 1);
            put.send().await.map_err(|e| self.aws("PutItem", e))?;
        }
        Ok(())
    }

    /// A document's bytes (`None`: not in the table).
    pub async fn document(&self, id: &str) -> Result<Option<Vec<u8>>, TableError> {
        let mut items = self.query_all(&doc_pk(id)).await?;
        if items.is_empty() {
            return Ok(None);
        }
        items.sort_by_key(|i| get_s(i, "sk"));
        let parts = items.first().and_then(|i| get_n(i, "parts")).unwrap_or(1) as usize;
        if items.len() < parts {
            return Err(TableError::Corrupt {
                table: self.name.clone(),
                pk: doc_pk(id),
                sk: "part#000".into(),
                why: format!("{} of {parts} parts", items.len()),
            });
        }
        Ok(Some(items.iter().take(parts).filter_map(|i| get_s(i, "body")).collect::<String>().into_bytes()))
    }

    /// Leaves a command for the owner of `shard` and tells it (the lease's inbox counter).
    pub async fn post_command(&self, shard: u32, sk: &str, body: &str, ttl: u64) -> Result<(), TableError> {
        self.count("PutItem", 1);
        self.count("UpdateItem", 1);
        self.client
            .put_item()
            .table_name(&self.name)
            .item("pk", s(inbox_pk(shard)))
            .item("sk", s(sk))
            .item("body", s(body))
            .item("ttl", n(ttl))
            .send()
            .await
            .map_err(|e| self.aws("PutItem", e))?;
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s("lease"))
            .key("sk", s(lease_sk(shard)))
            .update_expression("ADD inbox :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| self.aws("UpdateItem", e))?;
        Ok(())
    }

    pub async fn inbox(&self, shard: u32) -> Result<Vec<InboxItem>, TableError> {
        Ok(self
            .query_all(&inbox_pk(shard))
            .await?
            .into_iter()
            .filter_map(|item| Some(InboxItem { sk: get_s(&item, "sk")?, body: get_s(&item, "body")? }))
            .collect())
    }

    /// A value every replica reads (`kind`: e.g. `repos`, a repository added through the API;
    /// `ttl`: when DynamoDB may forget it, epoch seconds).
    pub async fn put_shared(&self, kind: &str, key: &str, body: &str, ttl: Option<u64>) -> Result<(), TableError> {
        self.count("PutItem", 1);
        let mut put = self.client.put_item().table_name(&self.name).item("pk", s(shared_pk(kind))).item("sk", s(key)).item("body", s(body));
        if let Some(ttl) = ttl {
            put = put.item("ttl", n(ttl));
        }
        put.send().await.map_err(|e| self.aws("PutItem", e))?;
        Ok(())
    }

    /// Forgets a shared value.
    pub async fn delete_shared(&self, kind: &str, key: &str) -> Result<(), TableError> {
        self.count("DeleteItem", 1);
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(shared_pk(kind)))
            .key("sk", s(key))
            .send()
            .await
            .map_err(|e| self.aws("DeleteItem", e))?;
        Ok(())
    }

    /// Every shared value of `kind`: (key, body).
    pub async fn shared(&self, kind: &str) -> Result<Vec<(String, String)>, TableError> {
        Ok(self
            .query_all(&shared_pk(kind))
            .await?
            .into_iter()
            .filter_map(|item| Some((get_s(&item, "sk")?, get_s(&item, "body")?)))
            .collect())
    }

    pub async fn remove_command(&self, shard: u32, sk: &str) -> Result<(), TableError> {
        self.count("DeleteItem", 1);
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(inbox_pk(shard)))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| self.aws("DeleteItem", e))?;
        Ok(())
    }
}

/// The writes in transactions DynamoDB takes: at most 99 besides the lease check, and at most
/// `TRANSACTION_BYTES` of bodies (a transaction carries at most 4 MB).
fn transactions<'a>(writes: &'a [&'a Write]) -> Vec<&'a [&'a Write]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, w) in writes.iter().enumerate() {
        let size = match w {
            Write::Put { sk, body, app, .. } => sk.len() + body.len() + app.len() + 64,
            Write::Delete { sk } => sk.len() + 64,
        };
        if i > start && (i - start == WRITES_PER_TRANSACTION || bytes + size > TRANSACTION_BYTES) {
            out.push(&writes[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < writes.len() {
        out.push(&writes[start..]);
    }
    out
}

/// Splits text into parts of at most `max` bytes, on character boundaries.
fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_stay_under_dynamodbs_action_and_size_limits() {
        let put = |n: usize| Write::Put { sk: format!("hist#{n}"), body: "x".repeat(INLINE_BODY_BYTES), app: "{}".into(), ttl: None };
        let large: Vec<Write> = (0..120).map(put).collect();
        let refs: Vec<&Write> = large.iter().collect();
        let chunks = transactions(&refs);
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= WRITES_PER_TRANSACTION));
        assert!(
            chunks.iter().all(|c| c.len() * INLINE_BODY_BYTES <= TRANSACTION_BYTES),
            "{:?}",
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 120, "every write once, in order");
        let small: Vec<Write> = (0..250).map(|n| Write::Delete { sk: format!("app#{n}#record") }).collect();
        let refs: Vec<&Write> = small.iter().collect();
        assert_eq!(transactions(&refs).iter().map(|c| c.len()).collect::<Vec<_>>(), vec![99, 99, 52]);
        assert!(transactions(&[]).is_empty());
    }

    #[test]
    fn documents_split_on_character_boundaries_under_the_item_limit() {
        let text = "é".repeat(DOCUMENT_PART_BYTES); // two bytes each
        let parts = split_utf8(&text, DOCUMENT_PART_BYTES);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= DOCUMENT_PART_BYTES));
        assert_eq!(parts.concat(), text);
        assert_eq!(split_utf8("", DOCUMENT_PART_BYTES), vec![""]);
    }
}
