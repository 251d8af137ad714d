//! The relay as benchmarks use it: a round trip through it takes twice the one-way
//! delay more, the bytes arrive whole and in order, and a bulk stream is not slowed to a
//! chunk per delay.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An echo server on a free port: every byte read is written back.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 64 * 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

struct Relay(Child, u16);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn relay(to: u16, delay_ms: u64) -> Relay {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Owned by the guard at once: its Drop kills and waits for it on every path.
    let relay = Relay(
        Command::new(env!("CARGO_BIN_EXE_latency-relay"))
            .args(["--listen", &port.to_string(), "--to", &to.to_string()])
            .args(["--delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        port,
    );
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return relay;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the relay did not listen on {port}");
}

#[test]
fn a_round_trip_takes_twice_the_delay_and_a_stream_keeps_its_order_and_speed() {
    let relay = relay(echo_server(), 40);
    let mut conn = TcpStream::connect(("127.0.0.1", relay.1)).unwrap();
    conn.set_nodelay(true).unwrap();
    let mut one = [0u8; 1];
    for _ in 0..3 {
        let started = Instant::now();
        conn.write_all(b"x").unwrap();
        conn.read_exact(&mut one).unwrap();
        let rtt = started.elapsed();
        assert!(
            rtt >= Duration::from_millis(80) && rtt < Duration::from_millis(160),
            "one round trip took {rtt:?}"
        );
    }
    // 16 MiB out and back: whole, in order, in far less than a round trip per chunk.
    let sent: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut writer = conn.try_clone().unwrap();
    let out = sent.clone();
    let started = Instant::now();
    let sending = std::thread::spawn(move || writer.write_all(&out).unwrap());
    let mut got = vec![0u8; sent.len()];
    conn.read_exact(&mut got).unwrap();
    sending.join().unwrap();
    let took = started.elapsed();
    assert!(got == sent, "bytes arrive whole and in order");
    assert!(took < Duration::from_secs(3), "16 MiB took {took:?}");
}
