//! The test upstream through a real HTTP/1 client on loopback: rules, query overrides,
//! counters and the request log, waiting, closing, stopping, and TLS with the test CA.

mod common;

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{get, Client, BOUND};
use http_body_util::BodyExt;
use hyper::Method;
use test_support::{Reply, TestCa, TestUpstream};

async fn upstream() -> TestUpstream {
    TestUpstream::start().await.expect("upstream starts")
}

#[tokio::test]
async fn the_default_reply_names_the_request_and_the_log_keeps_its_headers() {
    let upstream = upstream().await;
    assert_eq!(upstream.url(), format!("http://{}", upstream.addr()));
    let mut client = Client::connect(upstream.addr()).await.expect("connects");
    let answer = client
        .send(
            Method::GET,
            "/items/1?x=2",
            &[
                ("x-forwarded-for", "10.0.0.1"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            ],
            Bytes::new(),
        )
        .await
        .expect("answered");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.serial(), 1);
    let json = answer.json();
    assert_eq!(json["serial"], 1);
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/items/1?x=2");

    let second = client.get("/items/1").await.expect("keep-alive");
    assert_eq!(second.serial(), 2, "a fresh answer has a new serial");
    assert_eq!(upstream.requests(), 2);
    assert_eq!(upstream.requests_for("/items/1"), 2);
    assert_eq!(upstream.requests_for("/items"), 0, "counted per exact path");

    let log = upstream.request_log();
    assert_eq!(log.len(), 2);
    let first = &log[0];
    assert_eq!(first.serial, 1);
    assert_eq!(first.method, Method::GET);
    assert_eq!(first.path_and_query, "/items/1?x=2");
    assert_eq!(
        first.header("host"),
        Some(upstream.addr().to_string().as_str())
    );
    assert_eq!(first.header("x-forwarded-for"), Some("10.0.0.1"));
    assert!(first.header("traceparent").is_some());
    assert!(first.header("connection").is_none());
    assert_eq!(first.body_len, 0);
    assert_eq!(upstream.last_request().expect("logged").serial, 2);
}

#[tokio::test]
async fn the_longest_prefix_rule_answers_and_the_default_covers_the_rest() {
    let upstream = upstream().await;
    upstream.set_reply("/api", Reply::new().status(201));
    upstream.set_reply(
        "/api/cached",
        Reply::new()
            .max_age(60)
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("vary", "accept-encoding")
            .header("content-type", "text/plain")
            .body_bytes(1024),
    );
    upstream.set_default_reply(Reply::new().status(404));

    let cached = get(upstream.addr(), "/api/cached/7").await;
    assert_eq!(cached.status, 200);
    assert_eq!(cached.body.len(), 1024);
    assert!(
        cached.text().starts_with(r#"{"serial":1,"#),
        "{}",
        cached.text()
    );
    assert_eq!(cached.json()["path"], "/api/cached/7", "padded, still JSON");
    assert_eq!(cached.header("cache-control"), Some("max-age=60"));
    assert_eq!(cached.header_all("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(cached.header("vary"), Some("accept-encoding"));
    assert_eq!(cached.header_all("content-type"), ["text/plain"]);
    assert_eq!(cached.header("content-length"), Some("1024"));

    assert_eq!(get(upstream.addr(), "/api/other").await.status, 201);
    assert_eq!(get(upstream.addr(), "/elsewhere").await.status, 404);
    upstream.clear_replies();
    assert_eq!(get(upstream.addr(), "/api/cached/7").await.status, 404);
    assert_eq!(upstream.requests(), 4);
}

#[tokio::test]
async fn the_query_string_overrides_the_rule_per_request() {
    let upstream = upstream().await;
    upstream.set_reply(
        "/q",
        Reply::new().header("x-rule", "kept").header("vary", "a"),
    );

    let started = Instant::now();
    let answer = get(
        upstream.addr(),
        "/q?latency_ms=60&status=203&bytes=100&max_age=30\
         &header=Vary:Accept-Encoding&header=Set-Cookie:s%3D1;%20Path%3D/&header=Set-Cookie:t=2",
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "the latency is waited"
    );
    assert_eq!(answer.status, 203);
    assert_eq!(answer.body.len(), 100);
    assert_eq!(answer.header("cache-control"), Some("max-age=30"));
    assert_eq!(
        answer.header_all("vary"),
        ["Accept-Encoding"],
        "replaces the rule's"
    );
    assert_eq!(answer.header_all("set-cookie"), ["s=1; Path=/", "t=2"]);
    assert_eq!(answer.header("x-rule"), Some("kept"));

    let plain = get(upstream.addr(), "/q?unrelated=1").await;
    assert_eq!(plain.status, 200, "unknown parameters are ignored");
    assert_eq!(plain.header_all("vary"), ["a"]);

    let malformed = get(upstream.addr(), "/q?status=abc").await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.text().contains("status=abc"),
        "{}",
        malformed.text()
    );
}

#[tokio::test]
async fn wait_for_requests_wakes_on_arrivals_and_says_how_many_came() {
    let upstream = upstream().await;
    let addr = upstream.addr();
    let (waited, ()) = tokio::join!(upstream.wait_for_requests(3, BOUND), async {
        for path in ["/a", "/b", "/c"] {
            get(addr, path).await;
        }
    });
    assert_eq!(waited.expect("three arrived"), 3);
    assert_eq!(
        upstream
            .wait_for_requests(2, BOUND)
            .await
            .expect("already there"),
        3
    );
    let error = upstream
        .wait_for_requests(4, Duration::from_millis(1))
        .await
        .expect_err("a fourth never comes");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert!(error.to_string().contains("3 of 4"), "{error}");
}

#[tokio::test]
async fn a_closing_reply_and_the_global_switch_close_the_connection() {
    let upstream = upstream().await;
    upstream.set_reply("/close", Reply::new().close_connection(true));

    let mut client = Client::connect(upstream.addr()).await.expect("connects");
    let kept = client.get("/open").await.expect("answered");
    assert_eq!(kept.header("connection"), None);
    assert!(client.is_open(), "keep-alive by default");
    let closing = client.get("/close").await.expect("answered");
    assert_eq!(closing.header("connection"), Some("close"));
    client.closed().await;

    let closing = get(upstream.addr(), "/open?close=1").await;
    assert_eq!(closing.header("connection"), Some("close"));

    upstream.close_after_each_response(true);
    let mut client = Client::connect(upstream.addr()).await.expect("connects");
    let answer = client.get("/open").await.expect("answered");
    assert_eq!(answer.header("connection"), Some("close"));
    client.closed().await;
    upstream.close_after_each_response(false);
    let mut client = Client::connect(upstream.addr()).await.expect("connects");
    client.get("/open").await.expect("answered");
    assert!(client.is_open());
}

#[tokio::test]
async fn request_bodies_are_read_counted_and_echoed() {
    let upstream = upstream().await;
    upstream.set_reply("/echo", Reply::new().echo_request_body());
    let body = Bytes::from(vec![b'z'; 100_000]);
    let mut client = Client::connect(upstream.addr()).await.expect("connects");

    let echoed = client
        .send(Method::POST, "/echo", &[], body.clone())
        .await
        .expect("answered");
    assert_eq!(echoed.body, body);

    let put = client
        .send(Method::PUT, "/items/1?status=202", &[], body.slice(..1234))
        .await
        .expect("answered");
    assert_eq!(put.status, 202, "a body does not stop the rules");
    assert_eq!(put.json()["method"], "PUT");

    let log = upstream.request_log();
    assert_eq!(
        log.iter()
            .map(|request| request.body_len)
            .collect::<Vec<_>>(),
        [100_000, 1234]
    );
    assert_eq!(log[1].method, Method::PUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_reply_never_answers_and_an_endless_one_never_ends() {
    let mut upstream = upstream().await;
    upstream.set_reply("/hang", Reply::new().hang());
    upstream.set_reply("/endless", Reply::new().endless());

    let mut endless = Client::connect(upstream.addr()).await.expect("connects");
    let response = endless.send_streaming("/endless").await.expect("a head");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-length"), None);
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("data")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"first chunk");

    let mut hanging = Client::connect(upstream.addr()).await.expect("connects");
    let hung = tokio::spawn(async move { hanging.get("/hang").await });
    upstream
        .wait_for_requests(2, BOUND)
        .await
        .expect("both arrived");

    // Only the stop ends them: the hanging request without an answer, the endless body
    // without its end.
    upstream.stop().await;
    let hung = tokio::time::timeout(BOUND, hung)
        .await
        .expect("bounded")
        .expect("joins");
    assert!(hung.is_err(), "never answered: {hung:?}");
    let rest = tokio::time::timeout(BOUND, body.frame())
        .await
        .expect("bounded");
    assert!(
        matches!(rest, Some(Err(_))),
        "the body broke off unfinished: {rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_upstream_refuses_and_restarts_on_the_same_port() {
    let mut upstream = upstream().await;
    let addr = upstream.addr();
    let mut idle = Client::connect(addr).await.expect("connects");
    idle.get("/before").await.expect("answered");

    upstream.stop().await;
    assert!(!upstream.is_running());
    idle.closed().await;
    let refused = Client::connect(addr).await.err().expect("refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

    upstream.restart().await.expect("restarts");
    assert_eq!(upstream.addr(), addr);
    let answer = get(addr, "/after").await;
    assert_eq!(answer.serial(), 2, "the counters go on across a restart");
    assert_eq!(upstream.requests(), 2);
}

#[tokio::test]
async fn only_loopback_addresses_are_served() {
    let error = TestUpstream::builder()
        .addr("0.0.0.0:0".parse().expect("an address"))
        .start()
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_against_the_test_ca() {
    let ca = TestCa::new().expect("a test CA");
    assert!(std::fs::read_to_string(ca.ca_file())
        .expect("the CA file")
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let upstream = TestUpstream::start_tls(&ca).await.expect("starts");
    let port = upstream.addr().port();
    assert_eq!(upstream.url(), format!("https://localhost:{port}"));

    for name in ["localhost", "127.0.0.1"] {
        let mut client = Client::connect_tls(upstream.addr(), ca.client_config(), name)
            .await
            .expect("the certificate is trusted");
        let answer = client.get("/secure").await.expect("answered");
        assert_eq!(answer.json()["path"], "/secure");
    }
    let host = upstream.last_request().expect("logged");
    assert_eq!(
        host.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );

    let other_ca = TestCa::new().expect("another CA");
    let untrusted = Client::connect_tls(upstream.addr(), other_ca.client_config(), "localhost")
        .await
        .err()
        .expect("a certificate of another CA is refused");
    assert!(untrusted.to_string().contains("certificate"), "{untrusted}");
    assert_eq!(upstream.requests(), 2);
}
