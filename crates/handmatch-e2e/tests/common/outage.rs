//! A TCP forwarder to the local PostgreSQL that can be taken down and brought back: a
//! database outage on demand, for the server's connection only.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP forwarder to PostgreSQL that can be stopped (every connection cut) and restarted
/// on the same port: a database that goes away and comes back, without touching the real one.
pub struct Outage {
    pub addr: SocketAddr,
    running: Option<JoinSet<()>>,
}

impl Outage {
    /// A free port with nothing listening on it yet.
    pub async fn new() -> Self {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        Self {
            addr,
            running: None,
        }
    }

    /// `database_url`'s database, reached through this forwarder.
    pub fn url_of(&self, database_url: &str) -> String {
        let name = database_url.rsplit('/').next().unwrap();
        format!("postgres://postgres@{}/{name}", self.addr)
    }

    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        self.running = Some(tasks);
    }

    pub fn down(&mut self) {
        // Dropping the set aborts the accept loop, whose own set then aborts every
        // forwarded connection.
        self.running = None;
    }
}
