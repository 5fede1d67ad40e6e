//! TCP: close shuts down (the peer reads EOF), drops are counted and still close, listeners
//! are never leaks.

use std::time::{Duration, Instant};

use resync_resource_manager::{
    Error, KindConfig, LeakThreshold, ManagedTcpListener, ManagedTcpStream, ResourceTracker,
    TCP_LISTENER_KIND, TCP_SOCKET_KIND,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_secs(20);

async fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

/// Reads until end-of-file, failing if the peer never closes within the deadline.
async fn read_until_eof(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received))
        .await
        .expect("the peer reads end-of-file")
        .expect("read");
    received
}

#[tokio::test]
async fn close_shuts_the_connection_down_and_the_peer_reads_eof() {
    let tracker = ResourceTracker::new();
    let listener = loopback_listener().await;
    let addr = listener.local_addr().expect("addr");

    let (connecting, line) = (ManagedTcpStream::connect(&tracker, addr), line!());
    let mut client = connecting.await.expect("connect");
    let (mut server, _) = listener.accept().await.expect("accept");
    assert!(client
        .guard()
        .acquired_at()
        .to_string()
        .starts_with(&format!("{}:{line}:", file!())));
    assert!(client.guard().label().ends_with(&addr.to_string()));

    client.write_all(b"ping").await.expect("write");
    client.close().await.expect("close");
    assert_eq!(read_until_eof(&mut server).await, b"ping");

    let stats = tracker.stats_for(TCP_SOCKET_KIND).expect("kind is known");
    assert_eq!((stats.created, stats.released, stats.active), (1, 1, 0));
    assert_eq!(stats.released_without_close, 0);
}

#[tokio::test]
async fn a_connection_dropped_without_close_is_counted_and_the_peer_reads_eof() {
    let tracker = ResourceTracker::new();
    let listener = loopback_listener().await;
    let addr = listener.local_addr().expect("addr");

    let mut client = ManagedTcpStream::connect(&tracker, addr)
        .await
        .expect("connect");
    let (mut server, _) = listener.accept().await.expect("accept");
    client.write_all(b"bye").await.expect("write");
    drop(client);

    let stats = tracker.stats_for(TCP_SOCKET_KIND).expect("kind is known");
    assert_eq!(stats.released_without_close, 1);
    assert_eq!(stats.active, 0);
    assert_eq!(read_until_eof(&mut server).await, b"bye");
}

#[tokio::test]
async fn a_listener_is_never_a_leak_but_its_accepted_connections_are() {
    let tracker = ResourceTracker::with_default_leak_threshold(Duration::from_millis(50));
    let listener = ManagedTcpListener::bind(&tracker, "127.0.0.1:0")
        .await
        .expect("bind");
    assert_eq!(
        tracker
            .kind_config(TCP_LISTENER_KIND)
            .map(|c| c.leak_threshold),
        Some(LeakThreshold::Never)
    );
    let addr = listener.local_addr().expect("addr");
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (accepted, line) = (listener.accept(&tracker), line!());
    let (accepted, peer) = accepted.await.expect("accept");
    assert_eq!(peer, client.local_addr().expect("client addr"));

    let start = Instant::now();
    let leaks = loop {
        let leaks = tracker.leaks();
        if !leaks.is_empty() {
            break leaks;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the connection never became a leak"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(leaks.len(), 1, "only the connection: {leaks:?}");
    assert_eq!(leaks[0].kind, TCP_SOCKET_KIND);
    assert!(leaks[0]
        .acquired_at
        .starts_with(&format!("{}:{line}:", file!())));
    assert!(
        !listener.guard().is_leaked(),
        "the listener is older, but never a leak"
    );

    accepted.close().await.expect("close accepted");
    assert_eq!(read_until_eof(&mut client).await, b"");
    listener.close().await.expect("close listener");
    let sockets = tracker.stats_for(TCP_SOCKET_KIND).expect("kind is known");
    assert_eq!((sockets.leaked_total, sockets.leaked_released), (1, 1));
}

#[tokio::test]
async fn a_user_configuration_of_the_listener_kind_wins() {
    let tracker = ResourceTracker::new();
    let custom = KindConfig {
        leak_threshold: LeakThreshold::After(Duration::from_secs(5)),
        limit: Some(4),
        capture_backtrace: false,
    };
    tracker.configure_kind(TCP_LISTENER_KIND, custom);
    let listener = ManagedTcpListener::bind(&tracker, "127.0.0.1:0")
        .await
        .expect("bind");
    assert_eq!(tracker.kind_config(TCP_LISTENER_KIND), Some(custom));
    listener.close().await.expect("close");
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_and_tracks_nothing() {
    let tracker = ResourceTracker::new();
    // A port that was just free: bind, note it, release it.
    let addr = loopback_listener().await.local_addr().expect("addr");
    match ManagedTcpStream::connect(&tracker, addr).await {
        Err(Error::Connect { addr: text, .. }) => assert_eq!(text, addr.to_string()),
        other => panic!("expected Connect error, got {other:?}"),
    }
    assert!(tracker
        .stats_for(TCP_SOCKET_KIND)
        .is_none_or(|s| s.created == 0));
}
