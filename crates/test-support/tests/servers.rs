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
