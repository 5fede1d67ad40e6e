//! The private fixtures really start, stop and restart real servers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use test_support::{PostgresServer, RedisServer};

fn redis_ping(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0_u8; 7];
    stream.read_exact(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[test]
fn redis_starts_stops_and_restarts_on_the_same_port() {
    let mut redis = RedisServer::start().unwrap();
    let port = redis.port();
    assert_eq!(redis_ping(port).unwrap(), "+PONG\r\n");
    redis.stop().unwrap();
    assert!(!redis.is_running());
    redis.start_again().unwrap();
    assert_eq!(redis.port(), port);
    assert_eq!(redis_ping(port).unwrap(), "+PONG\r\n");
}

#[test]
fn postgres_answers_a_query_and_restarts_on_the_same_port() {
    let mut pg = PostgresServer::start().unwrap();
    let psql = |url: &str| {
        Command::new("psql")
            .args([url, "-tAc", "SELECT 40 + 2"])
            .output()
            .unwrap()
    };
    let out = psql(&pg.url());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let port = pg.port();
    pg.stop().unwrap();
    assert!(!pg.is_running());
    pg.start_again().unwrap();
    assert_eq!(pg.port(), port);
    assert_eq!(
        String::from_utf8_lossy(&psql(&pg.url()).stdout).trim(),
        "42"
    );
}

/// Holds `port` until `log` shows that a server failed to bind it, then frees it.
fn hold_port_until_refused(port: u16, log: std::path::PathBuf) -> std::thread::JoinHandle<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Address already in use")
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(90),
                "the server never tried the taken port"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(listener);
    })
}

#[test]
fn a_restart_waits_while_another_socket_holds_the_port() {
    let mut redis = RedisServer::start().unwrap();
    let port = redis.port();
    redis.stop().unwrap();
    let holder = hold_port_until_refused(port, redis.dir().join("redis.log"));
    redis.start_again().unwrap();
    holder.join().unwrap();
    assert_eq!(redis.port(), port);
    assert_eq!(redis_ping(port).unwrap(), "+PONG\r\n");

    let mut pg = PostgresServer::start().unwrap();
    let port = pg.port();
    pg.stop().unwrap();
    let holder = hold_port_until_refused(port, pg.dir().join("postgres.log"));
    pg.start_again().unwrap();
    holder.join().unwrap();
    assert_eq!(pg.port(), port);
    let out = Command::new("psql")
        .args([pg.url().as_str(), "-tAc", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}
