//! The idle-connection measurement: how much server memory one connected client costs.

use std::time::Instant;

use futures_util::future::join_all;

use crate::error::BenchError;
use crate::opts::Opts;
use crate::report::IdleReport;
use crate::run::Target;

/// Opens `--idle-connections` SDK clients, reads the server's memory before and after.
pub async fn run(opts: &Opts, connections: u32) -> Result<IdleReport, BenchError> {
    if opts.url.is_some() {
        return Err(BenchError::Usage(
            "--idle-connections measures the server the bench starts; drop --url".into(),
        ));
    }
    let target = Target::start(opts).await?;
    let rss = || async {
        match &target.child {
            Some(child) => child.lock().await.rss_bytes(),
            None => None,
        }
    };
    let before = rss()
        .await
        .ok_or_else(|| BenchError::Server("cannot read the server's memory (/proc)".into()))?;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(connections as usize);
    let indices: Vec<u32> = (0..connections).collect();
    for batch in indices.chunks(100) {
        let attempts = batch.iter().map(|&index| {
            let token = target.token(&format!("idle-{index}"));
            let url = target.url.clone();
            async move {
                let token = token?;
                chat_sdk::Client::builder(url, token)
                    .in_memory()
                    .connect()
                    .await
                    .map_err(|e| BenchError::Client {
                        index,
                        message: e.to_string(),
                    })
            }
        });
        for client in join_all(attempts).await {
            clients.push(client?);
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let after = rss()
        .await
        .ok_or_else(|| BenchError::Server("cannot read the server's memory (/proc)".into()))?;
    for (client, _) in &clients {
        client.close().await;
    }
    target.stop().await;
    Ok(IdleReport {
        connections,
        server_rss_before: before,
        server_rss_after: after,
        server_bytes_per_connection: after.saturating_sub(before) / u64::from(connections),
        connect_s,
    })
}
