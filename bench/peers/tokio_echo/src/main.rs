//! tokio_echo - the tokio peer of coreio's echo server: one task per
//! connection, reading into a 16 KiB buffer and writing every byte back
//! with write_all, as a tokio server is usually written.
//!
//!   tokio_echo [--flavor current|multi] [PORT [HOST]]   default current, 7000, 127.0.0.1
//!
//! `current`: the current_thread runtime, everything on the calling
//! thread.  `multi`: the multi_thread runtime with worker_threads(1), its
//! work-stealing scheduler with a single worker (the main thread only
//! waits for the signal).  Prints "listening on ..." once it accepts;
//! SIGTERM stops it (exit 0).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const BUF_SIZE: usize = 16 << 10;

async fn serve(mut s: TcpStream) {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                tokio::spawn(serve(s));
            }
            Err(e) => eprintln!("tokio_echo: accept: {}", e),
        }
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(4096)
}

fn usage() -> ! {
    eprintln!("usage: tokio_echo [--flavor current|multi] [PORT [HOST]]");
    std::process::exit(2);
}

fn main() {
    let mut flavor = String::from("current");
    let mut pos = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--flavor" {
            flavor = args.next().unwrap_or_else(|| usage());
        } else if a.starts_with('-') {
            usage();
        } else {
            pos.push(a);
        }
    }
    let port: u16 = pos.get(0).map_or(Some(7000), |p| p.parse().ok()).unwrap_or_else(|| usage());
    let host = pos.get(1).map_or("127.0.0.1", |h| h.as_str());
    let addr: SocketAddr = format!("{}:{}", host, port).parse().unwrap_or_else(|_| usage());
    let rt = match flavor.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread().enable_io().build(),
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build(),
        _ => usage(),
    }
    .expect("tokio_echo: runtime");
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate()).expect("tokio_echo: signal");
        let listener = listen(addr).unwrap_or_else(|e| {
            eprintln!("tokio_echo: listen on {}: {}", addr, e);
            std::process::exit(1);
        });
        tokio::spawn(accept_loop(listener));
        println!(
            "tokio_echo: listening on {}, backend epoll, flavor {}, pid {}",
            addr,
            flavor,
            std::process::id()
        );
        term.recv().await;
    });
    std::process::exit(0);
}
