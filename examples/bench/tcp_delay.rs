//! A plain TCP relay on 127.0.0.1 that adds a round-trip time to a byte stream: the Valkey side of the
//! read table's RTT (testkit's fault proxy speaks HTTP and cannot sit in front of TLS Valkey).
//!
//! Bytes from the client reach the server `rtt` after they were read (the whole round trip on the way
//! in, none on the way back), in order, without serialising: a second write sent while the first is
//! in flight is delayed by `rtt` from its own arrival, as on a real link. TLS passes through untouched.
//! It also counts the client's writes it forwarded (a pipelined batch is one write: a round trip) and
//! the bytes it carried each way (TLS records: what ElastiCache Serverless bills ECPUs by, plus TLS's
//! own few bytes a record).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Bytes carried since the last reset: client to server, server to client.
#[derive(Default)]
struct Bytes {
    sent: AtomicU64,
    received: AtomicU64,
}

/// The relay; dropping it stops it and every connection.
pub struct TcpDelay {
    addr: SocketAddr,
    writes: Arc<AtomicU64>,
    bytes: Arc<Bytes>,
    /// The added time, in microseconds (tuned while running: see `latency::tune_relay`).
    rtt_us: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl TcpDelay {
    /// Listens on a free 127.0.0.1 port and relays each connection to `target` with `rtt` added.
    pub async fn start(target: SocketAddr, rtt: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let writes = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(Bytes::default());
        let rtt_us = Arc::new(AtomicU64::new(rtt.as_micros() as u64));
        let mut tasks = JoinSet::new();
        let (counted, carried) = (writes.clone(), bytes.clone());
        let rtt = rtt_us.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (counted, carried, rtt) = (counted.clone(), carried.clone(), rtt.clone());
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, rtt, counted, carried).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            writes,
            bytes,
            rtt_us,
            _tasks: tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Client writes forwarded since the last reset.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Bytes carried both ways since the last reset (client to server plus server to client).
    pub fn bytes(&self) -> u64 {
        self.bytes.sent.load(Ordering::Relaxed) + self.bytes.received.load(Ordering::Relaxed)
    }

    /// Changes the added time, for connections open and new.
    pub fn set_rtt(&self, rtt: Duration) {
        self.rtt_us.store(rtt.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.writes.store(0, Ordering::Relaxed);
        self.bytes.sent.store(0, Ordering::Relaxed);
        self.bytes.received.store(0, Ordering::Relaxed);
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    rtt_us: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    bytes: Arc<Bytes>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let sent = bytes.clone();
    let inbound = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = client_read.read(&mut buf).await {
            let rtt = Duration::from_micros(rtt_us.load(Ordering::Relaxed));
            if n == 0 || tx.send((Instant::now() + rtt, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let delayed = async move {
        while let Some((due, chunk)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            writes.fetch_add(1, Ordering::Relaxed);
            sent.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if server_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = server_read.read(&mut buf).await {
            bytes.received.fetch_add(n as u64, Ordering::Relaxed);
            if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(inbound, delayed, outbound);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn each_write_arrives_in_order_one_rtt_later_and_is_counted_with_its_bytes() {
        let relay = TcpDelay::start(echo().await, Duration::from_millis(30))
            .await
            .expect("relay");
        let mut client = TcpStream::connect(("127.0.0.1", relay.port()))
            .await
            .expect("connect");
        let started = std::time::Instant::now();
        client.write_all(b"first").await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(b"second").await.expect("write");
        let mut answer = [0u8; 11];
        client.read_exact(&mut answer).await.expect("echo");
        let elapsed = started.elapsed();
        assert_eq!(&answer, b"firstsecond");
        // The second write, sent 20 ms after the first, arrives 30 ms after it was sent.
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        assert_eq!(relay.writes(), 2);
        // "firstsecond" there and back.
        assert_eq!(relay.bytes(), 22);
        relay.reset();
        assert_eq!((relay.writes(), relay.bytes()), (0, 0));
    }
}
