//! A rough push-throughput measurement of the real binary (ignored by default; the project's
//! bench program is the real benchmark). Run with
//! `cargo test --release -p tasksync-server --test throughput -- --ignored --nocapture`;
//! `TASKSYNC_SERVER_SYNCHRONOUS=normal` compares the durability levels.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tasksync_proto::wire::{content_digest, BatchItem, BatchRequest, Field, Operation, WireTask};
use tasksync_proto::Timestamp;
use uuid::Uuid;

#[tokio::test]
#[ignore = "measurement, not a check; run on demand"]
async fn push_throughput() {
    const OPS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut server = tasksync_e2e::Server::builder(dir.path());
    if let Ok(level) = std::env::var("TASKSYNC_SERVER_SYNCHRONOUS") {
        server = server.env("TASKSYNC_SERVER_SYNCHRONOUS", &level);
    }
    let server = server.start();
    let addr = server.addr.clone();

    for batch_size in [50usize, 500] {
        let device = Uuid::now_v7();
        let now = Timestamp::now();
        let bodies: Vec<(Vec<u8>, String)> = (0..OPS / batch_size)
            .map(|_| {
                let items = (0..batch_size)
                    .map(|_| {
                        let id = Uuid::now_v7();
                        BatchItem {
                            id: Uuid::now_v7(),
                            task_id: id,
                            operation: Operation::Create,
                            changed_fields: Some(Field::ALL.to_vec()),
                            data: WireTask {
                                id,
                                title: "a task of ordinary length".into(),
                                description: Some("with a short description".into()),
                                completed: false,
                                created_at: now,
                                updated_at: now,
                                is_deleted: false,
                                device_id: device,
                                due: None,
                                priority: None,
                                project: None,
                                tags: Default::default(),
                                attributes: Default::default(),
                            },
                            created_at: now,
                            retry_count: 0,
                            base: Default::default(),
                        }
                    })
                    .collect();
                let body = serde_json::to_vec(&BatchRequest {
                    device_id: device,
                    client_timestamp: now,
                    items,
                })
                .unwrap();
                let digest = content_digest(&body);
                (body, digest)
            })
            .collect();

        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let start = Instant::now();
        for (body, digest) in bodies {
            sender.ready().await.unwrap();
            let request = Request::post("/api/batch")
                .header("host", &addr)
                .header("content-digest", digest)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body().collect().await.unwrap();
        }
        let elapsed = start.elapsed().max(Duration::from_millis(1));
        println!(
            "batch size {batch_size}: {OPS} ops in {elapsed:.2?} = {:.0} ops/s",
            OPS as f64 / elapsed.as_secs_f64()
        );
    }
    drop(server);
}
