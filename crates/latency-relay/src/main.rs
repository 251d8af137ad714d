//! `latency-relay --listen PORT --to PORT --delay-ms D`: a TCP relay on 127.0.0.1 that
//! holds every byte D milliseconds in each direction (so a round trip takes 2 × D more),
//! in order, without slowing the stream: each chunk read is stamped and written out once
//! its time has come, while the next chunks are read. For benchmarks at the distances
//! real migrations run at (a cloud region to R2: 10–80 ms); never in r2migrate itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

struct Args {
    listen: u16,
    to: u16,
    delay: Duration,
}

fn args() -> Args {
    let mut a = Args {
        listen: 0,
        to: 0,
        delay: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        let number = || -> u64 {
            value.parse().unwrap_or_else(|_| {
                eprintln!("{flag} takes a number, not {value:?}");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--listen" => a.listen = number() as u16,
            "--to" => a.to = number() as u16,
            "--delay-ms" => a.delay = Duration::from_millis(number()),
            other => {
                eprintln!("unknown flag {other}: use --listen PORT --to PORT --delay-ms D");
                std::process::exit(2);
            }
        }
    }
    if a.to == 0 {
        eprintln!("--to PORT is required (the server on 127.0.0.1 to relay to)");
        std::process::exit(2);
    }
    a
}

/// Reads `from` and hands each chunk on with the instant it may be written.
async fn read_side(mut from: OwnedReadHalf, delay: Duration, tx: mpsc::Sender<(Instant, Vec<u8>)>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return, // the sender drops: the writer shuts its side down
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Writes each chunk to `to` once its time has come, in order; then closes the side.
async fn write_side(mut to: OwnedWriteHalf, mut rx: mpsc::Receiver<(Instant, Vec<u8>)>) {
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

async fn relay(client: TcpStream, to: u16, delay: Duration) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    // Enough queued chunks for a fast link held for the delay: 64 KiB each.
    let (up_tx, up_rx) = mpsc::channel(4096);
    let (down_tx, down_rx) = mpsc::channel(4096);
    tokio::join!(
        read_side(client_r, delay, up_tx),
        write_side(server_w, up_rx),
        read_side(server_r, delay, down_tx),
        write_side(client_w, down_rx),
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let listener = TcpListener::bind(("127.0.0.1", a.listen))
        .await
        .unwrap_or_else(|e| {
            eprintln!("cannot listen on 127.0.0.1:{}: {e}", a.listen);
            std::process::exit(1)
        });
    let port = listener.local_addr().map(|l| l.port()).unwrap_or(a.listen);
    println!(
        "latency-relay 127.0.0.1:{port} -> 127.0.0.1:{} with {:?} each way",
        a.to, a.delay
    );
    loop {
        if let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, a.to, a.delay));
        }
    }
}
