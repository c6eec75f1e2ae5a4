//! `TestApp::spawn()`: the real server on a free port against its own fresh database (a copy
//! of a migrated template database on the test PostgreSQL server), plus clients and raw SQL.

use std::net::SocketAddr;
use std::time::Duration;

use gridhub::auth::jwt::Issuer;
use gridhub::config::{Options, Settings};
use gridhub::crypto::SecretKey;
use gridhub::grpc::pb::audit_service_client::AuditServiceClient;
use gridhub::grpc::pb::region_service_client::RegionServiceClient;
use gridhub::startup::App;
use gridhub::store::{self, DbUrl};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The PostgreSQL server tests create their databases on.
pub fn server_url() -> DbUrl {
    DbUrl::new(
        std::env::var("GRIDHUB_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
}

/// Name of the template database for the migrations this build embeds: their names and SQL.
/// (Named by the embedded set, not the directory: a migration added while a test run goes on
/// must not name a template built without it.)
fn template_name() -> String {
    use diesel::migration::MigrationSource;
    let mut h = Sha256::new();
    let migrations =
        MigrationSource::<diesel::pg::Pg>::migrations(&gridhub::store::MIGRATIONS).unwrap();
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"));
    for m in migrations {
        let name = m.name().to_string();
        h.update(name.as_bytes());
        h.update(std::fs::read(dir.join(&name).join("up.sql")).unwrap_or_default());
    }
    format!("gridhub_tpl_{}", &hex::encode(h.finalize())[..16])
}

/// Creates the migrated template once per migration set, under an advisory lock so parallel
/// test processes do not race.
async fn ensure_template(server: &DbUrl) -> String {
    let name = template_name();
    let (client, conn) = tokio_postgres::connect(server.expose(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {server} ({e}); run scripts/test or set GRIDHUB_TEST_DATABASE_URL"));
    tokio::spawn(conn);
    client
        .execute("SELECT pg_advisory_lock(7270099)", &[])
        .await
        .unwrap();
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
            ))
            .await
            .unwrap();
        let url = store::create_database(server, &building, None)
            .await
            .unwrap();
        store::migrate(&url).await.unwrap();
        // Disconnect everything from the copy source before renaming it into place.
        client.batch_execute(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{building}'")).await.unwrap();
        client
            .batch_execute(&format!(
                "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
            ))
            .await
            .unwrap();
    }
    client
        .execute("SELECT pg_advisory_unlock(7270099)", &[])
        .await
        .unwrap();
    name
}

/// A fresh database (copy of the migrated template), dropped with this value.
pub struct FreshDb {
    pub url: DbUrl,
    pub name: String,
}

impl FreshDb {
    pub async fn create() -> FreshDb {
        let server = server_url();
        let template = ensure_template(&server).await;
        let name = format!("gridhub_test_{}", uuid::Uuid::new_v4().simple());
        let url = store::create_database(&server, &name, Some(&template))
            .await
            .unwrap();
        FreshDb { url, name }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        // The test's runtime may be busy dropping us: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(store::drop_database(&server, &name));
            }
        })
        .join();
    }
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: DbUrl,
    pub db_name: String,
    pub key: SecretKey,
    pub app: Option<App>,
    pub data_dir: tempfile::TempDir,
    /// The settings the server runs with (for a replica on the same database).
    pub settings: Settings,
    _fresh: Option<FreshDb>,
}

/// Authorization header interceptor.
#[derive(Clone)]
pub struct Bearer(pub Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

pub type RegionClient = RegionServiceClient<InterceptedService<Channel, Bearer>>;
pub type AuditClient = AuditServiceClient<InterceptedService<Channel, Bearer>>;
pub type ReportClient = gridhub::grpc::pb::report_service_client::ReportServiceClient<
    InterceptedService<Channel, Bearer>,
>;
pub type CaseClient =
    gridhub::grpc::pb::case_service_client::CaseServiceClient<InterceptedService<Channel, Bearer>>;
pub type CatalogClient = gridhub::grpc::pb::catalog_service_client::CatalogServiceClient<
    InterceptedService<Channel, Bearer>,
>;
pub type RequestClient =
    gridhub::grpc::pb::service_request_service_client::ServiceRequestServiceClient<
        InterceptedService<Channel, Bearer>,
    >;
pub type HotlineClient = gridhub::grpc::pb::hotline_service_client::HotlineServiceClient<
    InterceptedService<Channel, Bearer>,
>;

impl TestApp {
    /// Starts the server against a fresh copy of the template database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], adjusting settings first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let fresh = FreshDb::create().await;
        Self::start(fresh.url.clone(), Some(fresh), None, adjust).await
    }

    /// The server on a database the caller made and migrated (e.g. on an HA cluster), named
    /// `name` there; it is not dropped afterwards.
    pub async fn spawn_on(db: DbUrl, name: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut app = Self::start(db, None, None, adjust).await;
        app.db_name = name.to_owned();
        app
    }

    /// Like [`TestApp::spawn`], the server running as a role of its own
    /// (`gridhub_server_test`, granted by `gridhub_grant_server`) and migrating as the owner,
    /// as the embedded default does: raw SQL (`sql()`) still runs as the owner.
    pub async fn spawn_as_server_role() -> TestApp {
        let fresh = FreshDb::create().await;
        let owner = fresh.url.clone();
        let role = "gridhub_server_test";
        let (client, conn) = tokio_postgres::connect(owner.expose(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ))
            .await
            .unwrap();
        let server = DbUrl::new(owner.expose().replacen("postgres@", &format!("{role}@"), 1));
        assert_ne!(
            server.expose(),
            owner.expose(),
            "the test URL names the postgres user"
        );
        store::grant_server(&owner, &server).await.unwrap();
        Self::start(fresh.url.clone(), Some(fresh), Some(server), |_| {}).await
    }

    /// The server on `db` (as the role of `server`, the owner migrating, when given); `fresh`
    /// is dropped with the app.
    async fn start(
        db: DbUrl,
        fresh: Option<FreshDb>,
        server: Option<DbUrl>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let db_name = fresh.as_ref().map(|f| f.name.clone()).unwrap_or_default();
        let server = server.unwrap_or_else(|| db.clone());
        let owner = (server.expose() != db.expose()).then(|| db.expose().to_owned());
        let key = SecretKey::generate();
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::resolve(Options {
            data_dir: Some(data_dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            database_url: Some(server.expose().to_owned()),
            owner_database_url: owner,
            jwt_secret: Some(key.to_base64()),
            pii_key: Some(SecretKey::generate().to_base64()),
            shutdown_timeout: Some("3s".into()),
            db_pool_size: Some(8),
            ..Options::default()
        })
        .unwrap();
        adjust(&mut settings);
        let mut app = App::bind(&settings, &server).await.unwrap();
        app.ready().await;
        TestApp {
            addr: app.addr,
            db,
            db_name,
            key,
            app: Some(app),
            data_dir,
            settings,
            _fresh: fresh,
        }
    }

    /// A second server on the same database with the same keys (another replica).
    pub async fn replica(&self) -> App {
        let mut app = App::bind(&self.settings, &self.db).await.unwrap();
        app.ready().await;
        app
    }

    /// The shared state of the server, for in-process tools (ticker, export).
    pub fn state(&self) -> &gridhub::grpc::State {
        &self.app.as_ref().unwrap().state
    }

    /// One SLA tick at the workflow clock's time.
    pub async fn tick(&self) -> gridhub::sla::TickReport {
        let state = self.state();
        gridhub::sla::Ticker {
            pool: state.app.pool.clone(),
            settings: state.app.workflow.clone(),
            pii: state.app.pii.clone(),
        }
        .tick(state.app.workflow.clock.now())
        .await
        .unwrap()
    }

    /// A token for a principal acting for handling unit `unit`.
    pub fn token_unit(&self, sub: &str, roles: &[&str], region: &str, unit: &str) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        Issuer::hs256(&self.key, "gridhub")
            .issue_for_unit(sub, &roles, region, unit, Duration::from_secs(600))
            .unwrap()
    }

    /// A client of another server (a replica) with this app's keys.
    pub async fn cases_at(&self, addr: SocketAddr, token: Option<&str>) -> CaseClient {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        gridhub::grpc::pb::case_service_client::CaseServiceClient::with_interceptor(
            ch,
            Self::bearer(token),
        )
    }

    /// A token signed with this server's key.
    pub fn token(&self, sub: &str, roles: &[&str], region: &str) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        Issuer::hs256(&self.key, "gridhub")
            .issue(sub, &roles, region, Duration::from_secs(600))
            .unwrap()
    }

    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn bearer(token: Option<&str>) -> Bearer {
        Bearer(token.map(|t| format!("Bearer {t}").parse().unwrap()))
    }

    pub async fn regions(&self, token: Option<&str>) -> RegionClient {
        RegionServiceClient::with_interceptor(self.channel().await, Self::bearer(token))
    }

    /// A RegionService client of the server at `addr` (a replica on the same database).
    pub async fn regions_at(&self, addr: SocketAddr, token: Option<&str>) -> RegionClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        RegionServiceClient::with_interceptor(channel, Self::bearer(token))
    }

    pub async fn audit(&self, token: Option<&str>) -> AuditClient {
        AuditServiceClient::with_interceptor(self.channel().await, Self::bearer(token))
    }

    pub async fn reports(&self, token: Option<&str>) -> ReportClient {
        gridhub::grpc::pb::report_service_client::ReportServiceClient::with_interceptor(
            self.channel().await,
            Self::bearer(token),
        )
        .max_decoding_message_size(16 << 20)
    }

    pub async fn cases(&self, token: Option<&str>) -> CaseClient {
        gridhub::grpc::pb::case_service_client::CaseServiceClient::with_interceptor(
            self.channel().await,
            Self::bearer(token),
        )
    }

    pub async fn catalog(&self, token: Option<&str>) -> CatalogClient {
        gridhub::grpc::pb::catalog_service_client::CatalogServiceClient::with_interceptor(
            self.channel().await,
            Self::bearer(token),
        )
    }

    pub async fn requests(&self, token: Option<&str>) -> RequestClient {
        gridhub::grpc::pb::service_request_service_client::ServiceRequestServiceClient::with_interceptor(
            self.channel().await,
            Self::bearer(token),
        )
    }

    pub async fn hotline(&self, token: Option<&str>) -> HotlineClient {
        gridhub::grpc::pb::hotline_service_client::HotlineServiceClient::with_interceptor(
            self.channel().await,
            Self::bearer(token),
        )
    }

    pub async fn mediation(
        &self,
        token: Option<&str>,
    ) -> gridhub::grpc::pb::mediation_service_client::MediationServiceClient<
        InterceptedService<Channel, Bearer>,
    > {
        gridhub::grpc::pb::mediation_service_client::MediationServiceClient::with_interceptor(
            self.channel().await,
            Self::bearer(token),
        )
    }

    /// An admin of 綦江区's town 打通镇's county, for set-up calls.
    pub fn admin(&self) -> String {
        self.token("admin-1", &["admin", "auditor"], "500110")
    }

    /// Loads the demo town (regions of 綦江区, 34 grids, workers, departments).
    pub async fn seed_demo(&self) {
        gridhub::demo::load(&self.app.as_ref().unwrap().state.app)
            .await
            .unwrap();
    }

    /// Raw SQL against this test's database.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(self.db.expose(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// A single number from SQL.
    pub async fn count(&self, q: &str) -> i64 {
        self.seal().await;
        self.sql().await.query_one(q, &[]).await.unwrap().get(0)
    }

    /// Seals every committed audit event into the chain. Events are sealed just after their
    /// commit; a test reading or editing `audit_events` directly seals first, as every reader
    /// of the chain does.
    pub async fn seal(&self) {
        self.sql()
            .await
            .batch_execute("SELECT audit_seal(1000000, 2147483647)")
            .await
            .unwrap();
    }

    /// Stops the server (health turns NOT_SERVING first).
    pub async fn shutdown(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }
}

/// The field paths of an INVALID_ARGUMENT status's BadRequest.
pub fn violations(s: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}
