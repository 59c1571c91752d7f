//! Starting and stopping the whole server: listen first (health answers NOT_SERVING), then
//! load and warm up the model, open the store (waiting for it if the database is down),
//! check it holds no other model's templates, load the index, start following the change
//! feed, and only then report SERVING. Shutdown lets requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OnceCell};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::access::Authenticator;
use crate::config::{Args, OnModelMismatch};
use crate::health::{connect_store, watch};
use crate::index::IndexSettings;
use crate::metrics::RequestMetricsLayer;
use crate::protection::{check_sealing, spawn_vacuum_after_delete};
use crate::request_id;
use crate::retention::RetentionConfig;
use crate::service::admin_grpc::AdminService;
use crate::service::grpc::TRANSPORT_MESSAGE_SLACK;
use crate::service::matcher::MatcherLimits;
use crate::service::{HandMatchService, Matcher, Serving, ServingCell};
use crate::store::TemplateStore;
use crate::tls::server_tls;
use handmatch_core::embed::decode::DecodeLimits;
use handmatch_core::embed::queue::EmbedQueue;
use handmatch_core::embed::EmbeddingPool;
use handmatch_proto::v1::admin_server::AdminServer;
use handmatch_proto::v1::hand_match_server::HandMatchServer;
use handmatch_proto::v1::FILE_DESCRIPTOR_SET;

/// How long an unanswered keepalive ping keeps a connection open.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

struct TransportLimits {
    max_concurrent_streams: u32,
    request_timeout: Duration,
    keepalive: Duration,
}

pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served (`--metrics-listen`).
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<JoinHandle<()>>,
    ready: ServingCell,
    startup: JoinHandle<anyhow::Result<()>>,
    /// Once started: the health probe and the change feed's follower.
    background: Arc<OnceCell<Vec<JoinHandle<()>>>>,
    stop: Option<oneshot::Sender<()>>,
    serve: JoinHandle<anyhow::Result<()>>,
    grace: Duration,
}

impl RunningServer {
    /// Waits until the model is loaded and the gallery is up, or start-up failed.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        loop {
            if self.ready.initialized() {
                return Ok(());
            }
            if self.startup.is_finished() {
                return match (&mut self.startup).await {
                    Ok(Ok(())) if self.ready.initialized() => Ok(()),
                    Ok(Ok(())) => anyhow::bail!("start-up ended without a model"),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(e.into()),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops accepting, lets requests in flight finish, and returns when the server is down.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.startup.abort();
        if let Some(metrics) = &self.metrics {
            metrics.abort();
        }
        for task in self.background.get().into_iter().flatten() {
            task.abort();
        }
        match tokio::time::timeout(self.grace, &mut self.serve).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(
                    "requests still in flight after {:?}; stopping anyway",
                    self.grace
                );
                self.serve.abort();
                Ok(())
            }
        }
    }

    /// Runs until `signal` fires (then shuts down gracefully) or start-up fails.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(signal);
        tokio::select! {
            _ = &mut signal => {
                tracing::info!("shutting down before start-up finished");
                return self.shutdown().await;
            }
            started = &mut self.startup => match started {
                Ok(Ok(())) => tracing::info!(addr = %self.addr, "ready: SERVING"),
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(e.into()),
            },
        }
        tokio::select! {
            _ = &mut signal => {
                tracing::info!("shutting down: finishing requests in flight");
                self.shutdown().await
            }
            served = &mut self.serve => served?,
        }
    }
}

/// Binds `args.listen` and starts serving; the model loads in the background.
pub async fn start(args: Args) -> anyhow::Result<RunningServer> {
    args.check_exposure()?;
    let tls = server_tls(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<HandMatchServer<HandMatchService>>()
        .await;
    let reflection = (!args.no_reflection)
        .then(|| {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
        })
        .transpose()?;
    let ready: ServingCell = Arc::new(OnceCell::new());
    let metrics = match args.metrics_listen {
        Some(at) => {
            Some(crate::metrics::serve(at, crate::metrics::install()?, ready.clone()).await?)
        }
        None => None,
    };
    let admin = AdminServer::new(AdminService::new(ready.clone()));
    let transport_limit = args
        .max_message_bytes
        .saturating_mul(TRANSPORT_MESSAGE_SLACK);
    let service = HandMatchService::new(ready.clone(), args.max_message_bytes)
        .audit_searches(args.protection.audit_searches);
    let api = HandMatchServer::new(service)
        .max_decoding_message_size(transport_limit)
        .max_encoding_message_size(args.max_message_bytes);
    let limits = TransportLimits {
        max_concurrent_streams: args.max_concurrent_streams,
        request_timeout: Duration::from_secs(args.request_timeout_seconds.max(1)),
        keepalive: Duration::from_secs(args.keepalive_seconds.max(1)),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).context("TLS configuration")?;
    }
    let serve = tokio::spawn(async move {
        let server = builder
            .max_concurrent_streams(Some(limits.max_concurrent_streams))
            .timeout(limits.request_timeout)
            .http2_keepalive_interval(Some(limits.keepalive))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .layer(request_id::set_layer())
            .layer(request_id::propagate_layer())
            .layer(request_id::span_layer())
            .layer(RequestMetricsLayer)
            .layer(tower::util::MapResponseLayer::new(
                oversized_message_is_resource_exhausted,
            ))
            .add_service(health_service)
            .add_optional_service(reflection)
            .add_service(api)
            .add_service(admin)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        server.await.context("gRPC server")
    });
    tracing::info!(%addr, "listening (NOT_SERVING until the model is loaded)");
    let background = Arc::new(OnceCell::new());
    let startup = {
        let (ready, background) = (ready.clone(), background.clone());
        tokio::spawn(async move {
            let serving = load(&args, &health).await?;
            let matcher = serving.matcher.clone();
            let mut tasks = vec![
                watch(matcher.clone(), health.clone(), args.max_staleness()),
                crate::sync::spawn(matcher.templates().clone(), args.sync()),
            ];
            if let Some(max_age) = args.protection.retention() {
                let config = RetentionConfig {
                    max_age,
                    check_every: Duration::from_secs(args.protection.retention_check_seconds),
                };
                tasks.push(crate::retention::spawn(matcher.templates().clone(), config));
            }
            if args.protection.vacuum_after_delete {
                tasks.push(spawn_vacuum_after_delete(matcher.store().clone()));
            }
            let _ = background.set(tasks);
            let _ = ready.set(serving);
            health
                .set_serving::<HandMatchServer<HandMatchService>>()
                .await;
            Ok(())
        })
    };
    Ok(RunningServer {
        addr,
        metrics_addr: metrics.as_ref().map(|(at, _)| *at),
        metrics: metrics.map(|(_, task)| task),
        ready,
        startup,
        background,
        stop: Some(stop),
        serve,
        grace,
    })
}

async fn load(
    args: &Args,
    health: &tonic_health::server::HealthReporter,
) -> anyhow::Result<Serving> {
    let opts = args.runtime.options();
    let model = args.model.clone().context("--model is required to serve")?;
    let workers = args.embed_workers;
    // One run of each session before serving: kernels, allocations and (on CUDA) the
    // device are ready.
    let pool = tokio::task::spawn_blocking(move || {
        let mut pool = EmbeddingPool::open(&model, &opts, workers)?;
        pool.warm_up()?;
        anyhow::Ok(pool)
    })
    .await??;
    let meta = pool.metadata().clone();
    tracing::info!(
        model_id = %meta.model_id,
        backbone = %meta.backbone,
        provider = %pool.provider(),
        sessions = %pool.layout(),
        "model loaded and warmed up"
    );
    let queue = EmbedQueue::start(pool, args.max_batch_size, args.max_queue);

    let keys = args.protection.template_keys()?;
    let store = connect_store(&args.database_url, args.db_max_connections, health)
        .await?
        .with_template_keys(keys);
    check_sealing(&store).await?;
    guard_model(&store, &meta.model_id, args.on_model_mismatch).await?;
    let limits = MatcherLimits {
        decode: DecodeLimits {
            max_pixels: args.max_image_pixels,
            min_side: args.min_image_side,
            max_side: args.max_image_side,
            max_aspect_ratio: args.max_aspect_ratio,
        },
        admission: args.admission(),
        max_images_per_request: args.max_images_per_request,
        verify_threshold: args.verify_threshold,
        require_consent: args.protection.require_consent,
        retention: args.protection.retention(),
        index: IndexSettings {
            precision: args.index_precision,
            search_threads: usize::from(args.search_threads),
        },
    };
    let auth = Arc::new(Authenticator::new(
        args.auth,
        store.clone(),
        Duration::from_secs(args.auth_outage_grace_seconds),
    ));
    let matcher = Matcher::open(queue, store, limits).await?;
    Ok(Serving { matcher, auth })
}

/// Templates of different models are not comparable, so a database holding another
/// model's templates needs an explicit decision.
async fn guard_model(
    store: &TemplateStore,
    model_id: &str,
    policy: OnModelMismatch,
) -> anyhow::Result<()> {
    let others: Vec<(String, u64)> = store
        .models()
        .await?
        .into_iter()
        .filter(|(m, _)| m != model_id)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let list = others
        .iter()
        .map(|(m, n)| format!("{n} of model {m}"))
        .collect::<Vec<_>>()
        .join(", ");
    match policy {
        OnModelMismatch::Refuse => anyhow::bail!(
            "the database holds templates of another model ({list}); this server runs model {model_id}. \
             Start with --on-model-mismatch ignore (keep them, never compare) or delete (remove them)"
        ),
        OnModelMismatch::Ignore => tracing::warn!("ignoring templates of other models: {list}"),
        OnModelMismatch::Delete => {
            for (m, _) in &others {
                let n = store.delete_model(m).await?;
                tracing::warn!("deleted {n} templates of model {m}");
            }
        }
    }
    Ok(())
}

/// tonic refuses a message over `max_decoding_message_size` with OUT_OF_RANGE; gRPC's
/// convention (and this API's contract) for a message over the size limit is
/// RESOURCE_EXHAUSTED. The refusal is a headers-only response, so the code is rewritten there.
fn oversized_message_is_resource_exhausted<B>(
    mut response: http::Response<B>,
) -> http::Response<B> {
    let headers = response.headers();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if out_of_range && too_large {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}
