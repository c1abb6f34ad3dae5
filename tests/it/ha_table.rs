//! High availability's DynamoDB table against moto: the shipped table definition, leases and
//! their fencing tokens, fenced state writes, documents above the item limit and the inbox.

use crate::moto::Moto;
use gitmoxi::ha::table::{Table, TableError, Write};

/// Creates the table of `packaging/dynamodb-table.json` (named `name`) in moto.
pub async fn create_table(config: &aws_config::SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/dynamodb-table.json")).unwrap())
            .unwrap();
    let client = aws_sdk_dynamodb::Client::new(config);
    let mut create = client.create_table().table_name(name).billing_mode(BillingMode::from(shipped["BillingMode"].as_str().unwrap()));
    for a in shipped["AttributeDefinitions"].as_array().unwrap() {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap())
                .attribute_type(ScalarAttributeType::from(a["AttributeType"].as_str().unwrap()))
                .build()
                .unwrap(),
        );
    }
    for k in shipped["KeySchema"].as_array().unwrap() {
        create = create.key_schema(
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap())
                .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                .build()
                .unwrap(),
        );
    }
    create.send().await.expect("the shipped table definition is accepted");
}

fn put(sk: &str, body: &str) -> Write {
    Write::Put { sk: sk.into(), body: body.into(), app: r#"{"repo":"r","branch":"main","prefix":"a"}"#.into(), ttl: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_owner_is_fenced_by_the_token_and_its_writes_never_land() {
    let moto = Moto::start().await;
    let config = moto.sdk_config().await;
    create_table(&config, "gitmoxi-ha").await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&config), "gitmoxi-ha".into());

    // r1 takes shard 3 (token 1); r2 cannot while it is held
    assert_eq!(table.take(3, "r1", 1_000, 2_000).await.unwrap(), Some(1));
    assert_eq!(table.take(3, "r2", 1_500, 2_500).await.unwrap(), None, "a held lease is not taken");
    table.write_shard(3, "r1", 1, &[put("app#61#entry", r#"{"v":1}"#)]).await.unwrap();
    table.renew(3, "r1", 1, 2_600, 1).await.unwrap();

    // r1 pauses past its lease; r2 takes over with token 2
    assert_eq!(table.take(3, "r2", 3_000, 4_000).await.unwrap(), Some(2));
    let refused = table.write_shard(3, "r1", 1, &[put("app#61#entry", r#"{"v":"stale"}"#)]).await;
    assert!(matches!(refused, Err(TableError::Fenced { shard: 3, token: 1 })), "{refused:?}");
    assert!(matches!(table.renew(3, "r1", 1, 9_000, 2).await, Err(TableError::Fenced { .. })));
    table.release(3, "r1", 1).await.unwrap(); // a lease that moved on is left alone
    table.write_shard(3, "r2", 2, &[put("app#61#entry", r#"{"v":2}"#), put("app#61#record", "{}")]).await.unwrap();
    let items = table.shard_items(3).await.unwrap();
    let entry = items.iter().find(|i| i.sk == "app#61#entry").unwrap();
    assert_eq!(entry.body, r#"{"v":2}"#, "the fenced write left nothing");
    let lease = table.leases().await.unwrap().into_iter().find(|l| l.lease.shard == 3).unwrap();
    assert_eq!((lease.lease.owner.as_str(), lease.lease.token), ("r2", 2));

    // a transaction of more than 100 writes goes in fenced chunks
    let many: Vec<Write> = (0..150).map(|i| put(&format!("hist#61#{i:05}"), "{}")).collect();
    table.write_shard(3, "r2", 2, &many).await.unwrap();
    assert_eq!(table.shard_items(3).await.unwrap().len(), 152);
    table.write_shard(3, "r2", 2, &[Write::Delete { sk: "app#61#record".into() }]).await.unwrap();
    assert_eq!(table.shard_items(3).await.unwrap().len(), 151);

    // a released lease is free at once; the same replica taking its own lease again gets a new token
    table.release(3, "r2", 2).await.unwrap();
    assert_eq!(table.take(3, "r1", 3_100, 4_100).await.unwrap(), Some(3));
    assert_eq!(table.take(3, "r1", 3_200, 4_200).await.unwrap(), Some(4), "a restarted replica of the same name");

    // documents above DynamoDB's item limit are split and read back whole
    let big = format!("{{\"image\": \"{}\"}}", "x".repeat(700 * 1024));
    table.put_document("d1", big.as_bytes()).await.unwrap();
    assert_eq!(table.document("d1").await.unwrap().as_deref(), Some(big.as_bytes()));
    assert_eq!(table.document("missing").await.unwrap(), None);

    // a command left for the owner: the lease's inbox counter says so
    table.post_command(3, "0001#r2#1", r#"{"request":{"command":"pause"}}"#, 99).await.unwrap();
    let lease = table.leases().await.unwrap().into_iter().find(|l| l.lease.shard == 3).unwrap();
    assert_eq!(lease.inbox, 1);
    assert_eq!(lease.lease.token, 4, "posting a command does not touch the lease");
    let inbox = table.inbox(3).await.unwrap();
    assert_eq!(inbox.len(), 1);
    table.remove_command(3, &inbox[0].sk).await.unwrap();
    assert!(table.inbox(3).await.unwrap().is_empty());

    // replicas announce themselves
    table.heartbeat("r1", 10_000, Some("http://10.0.0.1:8080")).await.unwrap();
    let replicas = table.replicas().await.unwrap();
    assert_eq!(replicas.len(), 1);
    assert_eq!(replicas[0].url.as_deref(), Some("http://10.0.0.1:8080"));
    table.leave("r1").await.unwrap();
    assert!(table.replicas().await.unwrap().is_empty());
}
