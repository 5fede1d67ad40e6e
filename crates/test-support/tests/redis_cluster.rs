//! The Redis Cluster fixture forms a real three-master cluster that the redis crate's own
//! cluster client uses: keys with different hash tags land on all three masters, keys with
//! one hash tag share a slot and so one multi-key command, and a node restarts into the
//! cluster.

use std::collections::BTreeSet;

use redis::cluster::ClusterClient;
use redis::AsyncCommands;
use test_support::RedisCluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A plain (not cluster) connection to one node.
async fn node_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a node URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the node accepts a connection")
}

#[test]
fn the_cluster_client_reaches_all_three_masters_and_one_tag_shares_a_slot() {
    let cluster = RedisCluster::start().expect("the cluster forms");
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    assert_eq!(cluster.url(), urls[0]);
    let ports: BTreeSet<u16> = (0..3)
        .flat_map(|index| {
            [
                cluster.node(index).port(),
                cluster.node(index).cluster_port(),
            ]
        })
        .collect();
    assert_eq!(ports.len(), 6, "six distinct ports: {ports:?}");
    for (index, url) in urls.iter().enumerate() {
        assert_eq!(
            *url,
            format!("redis://127.0.0.1:{}/", cluster.node(index).port())
        );
    }

    runtime().block_on(async {
        let client = ClusterClient::new(urls.clone()).expect("a cluster client");
        let mut conn = client
            .get_async_connection()
            .await
            .expect("the cluster client connects");

        // One key per hash tag; the server's slots agree with the fixture's, and the three
        // tags land on the three masters.
        let keys = ["{a}:key", "{b}:key", "{c}:key"];
        let mut owners = BTreeSet::new();
        for key in keys {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("CLUSTER KEYSLOT");
            assert_eq!(slot, RedisCluster::key_slot(key.as_bytes()), "{key}");
            owners.insert(RedisCluster::node_for_slot(slot));
            let () = conn.set(key, format!("value of {key}")).await.expect("SET");
        }
        assert_eq!(owners, BTreeSet::from([0, 1, 2]), "a key on every master");
        for key in keys {
            let value: Option<String> = conn.get(key).await.expect("GET");
            assert_eq!(value.as_deref(), Some(format!("value of {key}").as_str()));
        }

        // Each master holds exactly its own key, and sends a client asking for another's to
        // its owner.
        for (index, url) in urls.iter().enumerate() {
            let mut node = node_connection(url).await;
            let size: u64 = redis::cmd("DBSIZE")
                .query_async(&mut node)
                .await
                .expect("DBSIZE");
            assert_eq!(size, 1, "node {index} holds one key");
            for key in keys {
                let owner = RedisCluster::node_for_slot(RedisCluster::key_slot(key.as_bytes()));
                let answer: redis::RedisResult<Option<String>> = node.get(key).await;
                if owner == index {
                    assert_eq!(
                        answer.expect("the owner answers").as_deref(),
                        Some(format!("value of {key}").as_str())
                    );
                } else {
                    let error = answer.expect_err("another node redirects");
                    assert_eq!(error.code(), Some("MOVED"), "{error}");
                    let owner_addr = format!("127.0.0.1:{}", cluster.node(owner).port());
                    assert_eq!(
                        error.redirect_node(),
                        Some((owner_addr.as_str(), RedisCluster::key_slot(key.as_bytes()))),
                        "{error}"
                    );
                }
            }
        }

        // Keys with one hash tag share a slot: multi-key commands on them work, whether the
        // client could split them (MSET, MGET) or not (SUNIONSTORE, RENAME).
        let () = conn
            .mset(&[("{b}:1", "one"), ("{b}:2", "two"), ("{b}:3", "three")])
            .await
            .expect("MSET on one tag");
        let values: Vec<Option<String>> = conn
            .mget(&["{b}:1", "{b}:2", "{b}:3", "{b}:none"])
            .await
            .expect("MGET on one tag");
        assert_eq!(
            values,
            [
                Some("one".into()),
                Some("two".into()),
                Some("three".into()),
                None
            ]
        );
        let _: u64 = conn.sadd("{c}:left", &["x", "y"]).await.expect("SADD");
        let _: u64 = conn.sadd("{c}:right", &["y", "z"]).await.expect("SADD");
        let stored: u64 = redis::cmd("SUNIONSTORE")
            .arg("{c}:union")
            .arg("{c}:left")
            .arg("{c}:right")
            .query_async(&mut conn)
            .await
            .expect("SUNIONSTORE on one tag");
        assert_eq!(stored, 3);
        let () = conn
            .rename("{c}:union", "{c}:renamed")
            .await
            .expect("RENAME within one tag");
        let members: BTreeSet<String> = conn.smembers("{c}:renamed").await.expect("SMEMBERS");
        assert_eq!(
            members,
            BTreeSet::from(["x".into(), "y".into(), "z".into()])
        );

        // Across tags (so across masters) the server refuses: it really is a cluster.
        let error = conn
            .rename::<_, _, ()>("{a}:key", "{b}:key")
            .await
            .expect_err("RENAME across slots");
        assert_eq!(error.code(), Some("CROSSSLOT"), "{error}");
    });
}

#[test]
fn a_stopped_node_starts_again_into_the_cluster_on_the_same_ports() {
    let mut cluster = RedisCluster::start().expect("the cluster forms");
    let (port, bus) = (cluster.node(1).port(), cluster.node(1).cluster_port());
    cluster.stop_node(1).expect("node 1 stops");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "node 1 is down"
    );
    cluster.start_node(1).expect("node 1 rejoins");
    assert_eq!(
        (cluster.node(1).port(), cluster.node(1).cluster_port()),
        (port, bus)
    );

    runtime().block_on(async {
        let client = ClusterClient::new(cluster.urls()).expect("a cluster client");
        let mut conn = client
            .get_async_connection()
            .await
            .expect("the cluster client connects");
        for key in ["{a}:after", "{b}:after", "{c}:after"] {
            let () = conn.set(key, "back").await.expect("SET after the restart");
            let value: Option<String> = conn.get(key).await.expect("GET after the restart");
            assert_eq!(value.as_deref(), Some("back"));
        }
    });
}
