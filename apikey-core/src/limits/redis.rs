//! Shared limits in Redis: token buckets for rate limits and counters per window for quotas,
//! each changed by one Lua script (atomic on the server, timed by the server's clock so that
//! instances' clocks need not agree). Keys are named `<prefix>:rate:<tech_name>:…` and
//! `<prefix>:quota:<tech_name>:…`: nothing secret goes to Redis.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::RwLock;

use super::backend::{until, Backend, Bucket, Grant, Health};
use super::LimitsError;

/// Refills the bucket for the time passed, then grants up to `want` whole tokens.
/// Returns `{granted, ms until the next token when none is left}`.
const RATE_TAKE: &str = r"
local cap, period, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(s[1]) or cap, tonumber(s[2]) or now
if now > ts then tokens = math.min(cap, tokens + (now - ts) * cap / period) end
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], period + 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * period / cap) end
return {granted, wait}
";

/// Gives back unspent tokens (never beyond the bucket's size).
const RATE_RETURN: &str = r"
local cap, period, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
if not s[1] then return 0 end
local tokens, ts = tonumber(s[1]), tonumber(s[2]) or now
if now > ts then tokens = tokens + (now - ts) * cap / period end
tokens = math.min(cap, tokens + n)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], period + 1000)
return 1
";

/// Grants up to `want` of the uses left in a quota window.
const QUOTA_TAKE: &str = r"
local limit, want, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local granted = math.max(0, math.min(want, limit - used))
if granted > 0 then redis.call('INCRBY', KEYS[1], granted) end
redis.call('EXPIRE', KEYS[1], ttl)
return {granted, used + granted}
";

/// Gives back unspent uses (never below zero).
const QUOTA_RETURN: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = math.min(used, tonumber(ARGV[1]))
if n > 0 then redis.call('DECRBY', KEYS[1], n) end
return n
";

/// The Redis key of a quota window.
pub(super) fn quota_key(prefix: &str, tech: &str, period_secs: i64, window: i64) -> String {
    format!("{prefix}:quota:{tech}:{period_secs}:{window}")
}

fn rate_key(prefix: &str, tech: &str, count: u32, period_ms: u64) -> String {
    format!("{prefix}:rate:{tech}:{count}:{period_ms}")
}

fn period_ms(period: Duration) -> u64 {
    u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Where the shared limits live: the URL (`redis://`, or `rediss://` for TLS) and, for TLS,
/// the CA that signs the server's certificate (the system's roots when `None`).
#[derive(Clone)]
pub(super) struct Target {
    url: String,
    ca: Option<Vec<u8>>,
}

impl Target {
    /// The target the settings name: `limits_url`, and `limits_ca` read now.
    pub(super) fn new(url: &str, ca: Option<&std::path::Path>) -> Result<Self, LimitsError> {
        let ca = match ca {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                LimitsError::Config(format!(
                    "`limits_ca` cannot be read ({}): {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        let target = Target {
            url: url.to_owned(),
            ca,
        };
        // A URL that cannot work is a configuration error, not an outage.
        target.client().map_err(|_| {
            LimitsError::Config(
                "`limits_url` is not a usable Redis URL (redis://[:password@]host:port/db or \
                 rediss://…)"
                    .to_owned(),
            )
        })?;
        Ok(target)
    }

    fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.ca {
            Some(ca) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            None => redis::Client::open(self.url.as_str()),
        }
    }

    /// Connects, failing fast; the error names the server (never the password) and what
    /// failed (a refused certificate says so).
    pub(super) async fn connect(&self) -> Result<ConnectionManager, LimitsError> {
        let client = self.client()?;
        let server = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(super::backend::CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        match tokio::time::timeout(
            Duration::from_secs(1),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(result) => {
                result.map_err(|e| LimitsError::Backend(format!("Redis at {server}: {e}")))
            }
            Err(_) => Err(LimitsError::Backend(format!(
                "Redis at {server}: no connection within 1s"
            ))),
        }
    }
}

/// Rate limits and quotas in one Redis.
pub(super) struct RedisLimits {
    target: Target,
    prefix: String,
    connection: RwLock<Option<ConnectionManager>>,
    health: Health,
    rate_take: Script,
    rate_return: Script,
    quota_take: Script,
    quota_return: Script,
}

impl RedisLimits {
    /// Connects to `url`; when Redis does not answer, starts down (limits per instance) and
    /// the prober connects later.
    pub(super) async fn start(target: Target, prefix: &str) -> Result<Arc<Self>, LimitsError> {
        let redis = Arc::new(RedisLimits {
            target,
            prefix: prefix.to_owned(),
            connection: RwLock::new(None),
            health: Health::default(),
            rate_take: Script::new(RATE_TAKE),
            rate_return: Script::new(RATE_RETURN),
            quota_take: Script::new(QUOTA_TAKE),
            quota_return: Script::new(QUOTA_RETURN),
        });
        match redis.target.connect().await {
            Ok(c) => *redis.connection.write().await = Some(c),
            Err(e) => {
                crate::obs::warning!(
                    "apikey: shared limits (redis) unreachable at start: {e}; limiting per \
                     instance until it answers"
                );
                redis.health.start_down();
                let backend: Arc<dyn Backend> = redis.clone();
                super::backend::probe(backend);
            }
        }
        Ok(redis)
    }

    async fn connection(&self) -> Result<ConnectionManager, LimitsError> {
        self.connection
            .read()
            .await
            .clone()
            .ok_or(LimitsError::NotConnected)
    }
}

#[async_trait]
impl Backend for RedisLimits {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn take(&self, bucket: Bucket<'_>, want: u64) -> Result<Grant, LimitsError> {
        let mut con = self.connection().await?;
        match bucket {
            Bucket::Rate { tech, limit } => {
                let period = period_ms(limit.period);
                let (granted, wait_ms): (u64, u64) = self
                    .rate_take
                    .key(rate_key(&self.prefix, tech, limit.count, period))
                    .arg(limit.count)
                    .arg(period)
                    .arg(want)
                    .invoke_async(&mut con)
                    .await?;
                Ok(Grant {
                    granted,
                    wait: Duration::from_millis(wait_ms.max(1)),
                    used: None,
                })
            }
            Bucket::Quota {
                tech,
                quota,
                window,
                ends_at,
            } => {
                let key = quota_key(&self.prefix, tech, quota.period_secs(), window);
                let ttl = quota.period_secs().saturating_add(60);
                let (granted, used): (u64, u64) = self
                    .quota_take
                    .key(key)
                    .arg(quota.count)
                    .arg(want)
                    .arg(ttl)
                    .invoke_async(&mut con)
                    .await?;
                Ok(Grant {
                    granted,
                    wait: until(ends_at),
                    used: Some(used),
                })
            }
        }
    }

    async fn give_back(&self, bucket: Bucket<'_>, n: u64) -> Result<(), LimitsError> {
        let mut con = self.connection().await?;
        let result: redis::RedisResult<i64> = match bucket {
            Bucket::Rate { tech, limit } => {
                let period = period_ms(limit.period);
                self.rate_return
                    .key(rate_key(&self.prefix, tech, limit.count, period))
                    .arg(limit.count)
                    .arg(period)
                    .arg(n)
                    .invoke_async(&mut con)
                    .await
            }
            Bucket::Quota {
                tech,
                quota,
                window,
                ..
            } => {
                self.quota_return
                    .key(quota_key(&self.prefix, tech, quota.period_secs(), window))
                    .arg(n)
                    .invoke_async(&mut con)
                    .await
            }
        };
        Ok(result.map(drop)?)
    }

    async fn ping(&self) -> Result<(), LimitsError> {
        let mut con = match self.connection().await {
            Ok(c) => c,
            Err(_) => {
                let c = self.target.connect().await?;
                *self.connection.write().await = Some(c.clone());
                c
            }
        };
        redis::cmd("PING").query_async::<String>(&mut con).await?;
        Ok(())
    }

    fn health(&self) -> &Health {
        &self.health
    }
}

/// The uses of a quota window as Redis counts them.
pub(super) async fn quota_used(target: &Target, key: &str) -> Result<u64, LimitsError> {
    let mut con = target.connect().await?;
    let used: Option<u64> = redis::cmd("GET").arg(key).query_async(&mut con).await?;
    Ok(used.unwrap_or(0))
}
