//! A read-through cache in front of a Postgres query, and what the cache says about itself.
//!
//! ```text
//! cargo run -p resync-cache-core --example read_through_postgres -- postgres://user@127.0.0.1/db
//! ```
//!
//! The URL comes from the first argument, else from `RESYNC_TEST_DATABASE_URL` (which
//! `cargo xtask services up` prints). The example makes a temporary table of products on
//! its own connection (it disappears with the connection: nothing is left in the database),
//! then four tasks look products up by id, hot ids far more often than cold ones (Zipf 0.99
//! over 5 000 ids), through a cache that holds 500 of them. Each miss runs one `SELECT`;
//! concurrent misses of one id share it. At the end it prints the cache's figures (hits,
//! misses, the queries it saved), the advisor's miss-ratio curve (the hit rate predicted at
//! ½×, 2× and 4× the bound) and its recommendations with their evidence, and exits non-zero
//! when a figure does not add up.

#[path = "../tests/support/zipf.rs"]
mod zipf;

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use resync_cache_core::{Cache, CacheMetrics};
use tokio_postgres::{Client, NoTls};

/// Products in the table.
const PRODUCTS: usize = 5_000;
/// Products the cache may hold.
const CACHED: u64 = 500;
/// Concurrent tasks looking products up.
const TASKS: u64 = 4;
/// Lookups per task.
const LOOKUPS: usize = 10_000;

/// A product as the query returns it: its name and its price in cents.
type Product = (String, i64);

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("RESYNC_TEST_DATABASE_URL").ok())
        .filter(|url| !url.trim().is_empty())
        .ok_or("give a Postgres URL as the argument or in RESYNC_TEST_DATABASE_URL")?;

    let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("postgres connection ended: {error}");
        }
    });
    client
        .batch_execute(&format!(
            "CREATE TEMPORARY TABLE products (id bigint PRIMARY KEY, name text NOT NULL, \
             price_cents bigint NOT NULL);
             INSERT INTO products
                 SELECT id, 'product #' || id, 100 + (id * 7919) % 10000
                 FROM generate_series(0, {}) AS id;",
            PRODUCTS - 1
        ))
        .await?;
    let client = Arc::new(client);
    println!("postgres: a temporary table of {PRODUCTS} products");

    let products: Cache<i64, Product> = Cache::builder()
        .name("products")
        .max_entries(CACHED)
        .max_memory_bytes(4 * 1024 * 1024)
        .ttl(Duration::from_secs(300))
        .build()?;
    let queries = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (products, client, queries) = (products.clone(), client.clone(), queries.clone());
        tasks.spawn(async move {
            let ids = zipf::Zipf::new(PRODUCTS, 0.99);
            let mut rng = StdRng::seed_from_u64(task);
            for _ in 0..LOOKUPS {
                let id = i64::try_from(ids.sample(&mut rng))?;
                let product = products
                    .try_get_with(id, load(&client, &queries, id))
                    .await
                    .map_err(|error| format!("loading product {id}: {error}"))?;
                if product.0 != format!("product #{id}") {
                    return Err(format!("product {id} came back as {product:?}").into());
                }
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished??;
    }
    let took = started.elapsed();

    let metrics = products.settled_metrics().await;
    let queries = queries.load(Ordering::Relaxed);
    print_figures(&metrics, queries, took);
    print_curve(&metrics);
    print_recommendations(&products);
    check(&metrics, queries)
}

/// The query behind the cache: one product by id.
async fn load(client: &Client, queries: &AtomicU64, id: i64) -> Result<Product, BoxError> {
    queries.fetch_add(1, Ordering::Relaxed);
    let row = client
        .query_one(
            "SELECT name, price_cents FROM products WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.1} %", rate * 100.0))
}

fn print_figures(metrics: &CacheMetrics, queries: u64, took: Duration) {
    let lookups = TASKS * LOOKUPS as u64;
    println!(
        "\n{lookups} lookups by {TASKS} tasks in {:.2} s (Zipf 0.99 over {PRODUCTS} ids, {CACHED} cached)",
        took.as_secs_f64()
    );
    println!(
        "  hits {}   misses {}   hit rate {}",
        metrics.hits,
        metrics.misses,
        percent(metrics.hit_rate)
    );
    println!(
        "  queries run {queries} (one per load: {} loads, {} failed; {} misses waited for another task's query)",
        metrics.loads_ok,
        metrics.loads_failed,
        metrics.misses.saturating_sub(queries)
    );
    println!(
        "  {} of {lookups} lookups answered without Postgres",
        lookups.saturating_sub(queries)
    );
    println!(
        "  load time p50 {:.3} ms, p95 {:.3} ms   entries {} of {}   evicted for size {}",
        metrics.load_time.p50 as f64 / 1e6,
        metrics.load_time.p95 as f64 / 1e6,
        metrics.entries,
        metrics.max_entries,
        metrics.evictions.size
    );
    println!("  efficiency score {:.0} / 100", metrics.efficiency_score);
}

fn print_curve(metrics: &CacheMetrics) {
    let Some(curve) = &metrics.curve else {
        println!("\nmiss-ratio curve: not yet (too few sampled gets)");
        return;
    };
    println!(
        "\nmiss-ratio curve (sampled {:.1} % of the keys, {} sampled gets replayed):",
        curve.sample_rate * 100.0,
        curve.sampled_gets
    );
    for point in &curve.points {
        println!(
            "  {:>4}× the bound: predicted hit rate {}",
            point.capacity_factor,
            percent(point.predicted_hit_rate)
        );
    }
}

fn print_recommendations(products: &Cache<i64, Product>) {
    let advice = products.recommendations();
    println!("\nrecommendations ({}):", advice.len());
    for item in advice {
        println!("  [{}] {} — {}", item.severity, item.code, item.message);
        for (name, value) in &item.evidence {
            println!("      {name} = {value}");
        }
        if let Some(change) = &item.change {
            println!(
                "      change {}: {} → {}",
                change.key, change.current, change.suggested
            );
        }
    }
}

/// The figures must add up: every lookup a hit or a miss, a query per load, some hits.
fn check(metrics: &CacheMetrics, queries: u64) -> Result<(), BoxError> {
    let lookups = TASKS * LOOKUPS as u64;
    if metrics.requests() != lookups {
        return Err(format!("{} gets counted for {lookups} lookups", metrics.requests()).into());
    }
    if metrics.loads_ok + metrics.loads_failed != queries {
        return Err(format!("{queries} queries but {} loads", metrics.loads_ok).into());
    }
    if metrics.hits == 0 || metrics.curve.is_none() {
        return Err("no hits, or no miss-ratio curve".into());
    }
    println!(
        "\nok: the cache answered {} of {lookups} lookups",
        metrics.hits
    );
    Ok(())
}
