//! The performance API merged into an existing axum application, served on loopback, and
//! asked about itself.
//!
//! ```text
//! cargo run -p resync-perf-api --example merge_into_app
//! ```
//!
//! The application has its own routes (`GET /hello`, `GET /orders/{id}`) and a cache of
//! orders in front of a (simulated) slow lookup. The cache and a resource tracker are
//! registered with a [`PerformanceService`], whose router is merged into the application's;
//! one fallback answers unknown paths for both. The example serves the merged router on a
//! free loopback port, then requests its own routes and the performance API's
//! (`/api/performance/cache/metrics`, `/api/performance/health`, `/metrics`) over HTTP,
//! prints what came back, shuts the server down and exits — non-zero when an answer is not
//! what it should be.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use resync_cache_core::Cache;
use resync_perf_api::{not_found, router, PerformanceService, ServiceConfig};
use resync_pool_optimizer::PoolManager;
use resync_resource_manager::ResourceTracker;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn Error + Send + Sync>;

/// The application's own state: a cache of order documents.
#[derive(Clone)]
struct AppState {
    orders: Cache<u64, String>,
}

/// `GET /orders/{id}`: read through the cache; a miss takes 20 ms (the "database").
async fn order(State(state): State<AppState>, Path(id): Path<u64>) -> Json<Value> {
    let document = state
        .orders
        .get_with(id, async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            json!({ "id": id, "status": "shipped", "items": id % 5 + 1 }).to_string()
        })
        .await;
    Json(serde_json::from_str(&document).unwrap_or(Value::Null))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The application as it was before: its own routes and state.
    let orders: Cache<u64, String> = Cache::builder().name("orders").max_entries(1_000).build()?;
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the application\n" }))
        .route("/orders/{id}", get(order))
        .with_state(AppState {
            orders: orders.clone(),
        });

    // The performance service over the application's components.
    let service = PerformanceService::new(ServiceConfig::default());
    service.register_cache(orders)?;
    service.set_tracker(ResourceTracker::new());
    service.set_pool_manager(Arc::new(PoolManager::default()));
    let sampler = service.spawn_sampler();

    // One router: the application's routes and the performance API's, one fallback.
    let merged = app.merge(router(service)).fallback(not_found);

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, merged)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("serving the merged application on http://{addr}");

    let outcome = ask_itself(addr).await;
    let _ = stop.send(());
    server.await??;
    sampler.abort();
    outcome?;
    println!("\nok: the application's routes and the performance API answered on one port");
    Ok(())
}

/// Requests the application's routes and the API's, printing and checking each answer.
async fn ask_itself(addr: SocketAddr) -> Result<(), BoxError> {
    let (status, body) = http_get(addr, "/hello").await?;
    expect(status, 200, "/hello")?;
    println!("\nGET /hello → {status} {}", body.trim());

    for attempt in ["a miss: loaded", "a hit: from the cache"] {
        let (status, body) = http_get(addr, "/orders/7").await?;
        expect(status, 200, "/orders/7")?;
        println!("GET /orders/7 → {status} {} ({attempt})", body.trim());
    }

    let (status, body) = http_get(addr, "/api/performance/cache/metrics").await?;
    expect(status, 200, "/api/performance/cache/metrics")?;
    let metrics: Value = serde_json::from_str(&body)?;
    let cache = &metrics["caches"][0];
    println!(
        "\nGET /api/performance/cache/metrics → {status}: cache `{}`: hits {}, misses {}, hit rate {}",
        cache["name"].as_str().unwrap_or("?"),
        cache["hits"],
        cache["misses"],
        cache["hit_rate"]
    );
    if cache["hits"].as_u64() != Some(1) || cache["misses"].as_u64() != Some(1) {
        return Err(format!("expected one hit and one miss of `orders`, got {cache}").into());
    }

    let (status, body) = http_get(addr, "/api/performance/health").await?;
    expect(status, 200, "/api/performance/health")?;
    let health: Value = serde_json::from_str(&body)?;
    println!(
        "GET /api/performance/health → {status}: {}",
        health["status"].as_str().unwrap_or("?")
    );
    if let Some(components) = health["components"].as_object() {
        for (name, component) in components {
            let reasons: Vec<&str> = component["reasons"]
                .as_array()
                .map(|reasons| {
                    reasons
                        .iter()
                        .filter_map(|reason| reason["code"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let verdict = component["status"].as_str().unwrap_or("?");
            println!("  {name}: {verdict} {reasons:?}");
        }
    }

    let (status, body) = http_get(addr, "/metrics").await?;
    expect(status, 200, "/metrics")?;
    let hits: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("resync_cache_") && line.contains("orders"))
        .take(4)
        .collect();
    println!(
        "GET /metrics → {status}, {} lines, e.g.:",
        body.lines().count()
    );
    for line in &hits {
        println!("  {line}");
    }
    if hits.is_empty() {
        return Err("/metrics has no resync_cache_* series for `orders`".into());
    }

    let (status, _) = http_get(addr, "/no/such/route").await?;
    expect(status, 404, "/no/such/route")?;
    println!("GET /no/such/route → {status} (the one fallback)");
    Ok(())
}

fn expect(status: u16, wanted: u16, path: &str) -> Result<(), BoxError> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}, not {wanted}").into())
    }
}

/// A minimal HTTP/1.1 `GET` on a new connection: the status and the body as text.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("a response without a blank line after its head")?;
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> Result<String, BoxError> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("a truncated chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or("a short chunk")?);
        body = rest.get(size + 2..).ok_or("a chunk without its line end")?;
    }
}
