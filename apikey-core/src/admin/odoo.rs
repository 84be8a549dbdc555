//! Bringing the keys of an Odoo database over: OCA `auth_api_key` (and `auth_api_key_group`
//! when installed), read through the module's own tables. Each Odoo key becomes one of ours
//! with the same name, user (the Odoo login), groups (the group codes) and active flag; its
//! plain value is digested as a free-form key, so clients keep working unchanged. The value is
//! never printed or stored.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};

use super::{CreateKey, KeyManager};
use crate::config::redact_url;
use crate::key::{KeyDigest, Secret};
use crate::model::{Groups, Imported, KeyOrigin};
use crate::store::StoreError;

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OdooReport {
    /// Keys that were new.
    pub created: usize,
    /// Keys brought in line (value, user, groups or active flag).
    pub updated: usize,
    /// Keys already exactly so.
    pub unchanged: usize,
    /// Keys changed here since they were imported (revoked, rotated, their groups, limits,
    /// networks or user's state): left as they are; each has a line in `warnings`.
    pub conflicts: usize,
    /// Odoo keys not imported (empty or unusable value, a value another key has, a name
    /// clash); each has a line in `warnings`.
    pub skipped: usize,
    /// Archived Odoo users that became disabled users here.
    pub users_disabled: usize,
    /// Why keys were skipped: key ids and names, never values.
    pub warnings: Vec<String>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// An import that could not start: the Odoo database cannot be read as one.
#[derive(Debug, thiserror::Error)]
#[error("cannot import from the Odoo database {url}: {why}")]
pub struct OdooError {
    url: String,
    why: String,
}

/// One `auth_api_key` row with what it joins to. Its value is kept only as what the import
/// needs of it: the digest, the display stub, and why it cannot be used, if it cannot.
struct OdooKey {
    id: i64,
    name: String,
    secret: Result<Digested, String>,
    login: String,
    user_active: bool,
    active: bool,
    groups: Vec<String>,
}

/// An Odoo key's value once read: never kept as it is.
#[derive(Clone)]
struct Digested {
    digest: KeyDigest,
    stub: String,
}

fn failed(url: &str) -> impl Fn(String) -> OdooError + '_ {
    move |why| OdooError {
        url: redact_url(url),
        why,
    }
}

async fn exists(conn: &mut PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(conn)
        .await
}

async fn has_column(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_name = $1 AND column_name = $2 AND table_schema = ANY (current_schemas(false)))",
    )
    .bind(table)
    .bind(column)
    .fetch_one(conn)
    .await
}

/// Reads every Odoo key, lowest id first, with its user and group codes. Rows are streamed,
/// and each value is digested as it arrives and dropped: the run never holds the plain values.
async fn read_keys(
    conn: &mut PgConnection,
    digest: impl Fn(&str) -> Result<Digested, String>,
) -> Result<Vec<OdooKey>, String> {
    let e = |e: sqlx::Error| e.to_string();
    if !exists(conn, "auth_api_key").await.map_err(e)? {
        return Err(
            "it has no auth_api_key table (is the OCA auth_api_key module installed?)".into(),
        );
    }
    // `active` on keys came with the module's 14.0 branch; before it every key was active.
    let active = if has_column(conn, "auth_api_key", "active")
        .await
        .map_err(e)?
    {
        "k.active"
    } else {
        "TRUE"
    };
    let sql = format!(
        "SELECT k.id::bigint AS id, k.name::text AS name, k.key::text AS value, \
         u.login::text AS login, COALESCE(u.active, TRUE) AS user_active, \
         COALESCE({active}, TRUE) AS active \
         FROM auth_api_key k JOIN res_users u ON u.id = k.user_id ORDER BY k.id"
    );
    let mut groups: HashMap<i64, Vec<String>> = HashMap::new();
    let grouped = exists(conn, "auth_api_key_group").await.map_err(e)?
        && exists(conn, "auth_api_key_group_rel").await.map_err(e)?;
    if grouped {
        let rows = sqlx::query(
            "SELECT r.key_id::bigint AS key_id, g.code::text AS code \
             FROM auth_api_key_group_rel r JOIN auth_api_key_group g ON g.id = r.group_id \
             WHERE g.code IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(e)?;
        for row in rows {
            groups
                .entry(row.try_get("key_id").map_err(e)?)
                .or_default()
                .push(row.try_get("code").map_err(e)?);
        }
    }
    let mut keys = Vec::new();
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.map_err(e)? {
        let id: i64 = row.try_get("id").map_err(e)?;
        let value: Option<Secret> = row
            .try_get::<Option<String>, _>("value")
            .map_err(e)?
            .map(Secret::new);
        let secret = match value.filter(|v| !v.expose().trim().is_empty()) {
            None => Err("no value (Odoo never matches it)".to_owned()),
            Some(v) => digest(v.expose()),
        };
        keys.push(OdooKey {
            id,
            name: row.try_get("name").map_err(e)?,
            secret,
            login: row.try_get("login").map_err(e)?,
            user_active: row.try_get("user_active").map_err(e)?,
            active: row.try_get("active").map_err(e)?,
            groups: groups.remove(&id).unwrap_or_default(),
        });
    }
    Ok(keys)
}

impl KeyManager {
    /// Imports the keys of the Odoo database at `odoo_url` into this manager's store;
    /// `dry_run` reads both sides and writes nothing. Idempotent: a second run reports every
    /// key unchanged. Odoo matches active keys only, lowest id first, so when several keys
    /// share one value the lowest active id (else the lowest id) is imported and the others
    /// are reported.
    pub async fn import_odoo(
        &self,
        odoo_url: &str,
        dry_run: bool,
    ) -> Result<OdooReport, OdooError> {
        self.import_odoo_with(odoo_url, dry_run, false).await
    }

    /// Like [`import_odoo`](Self::import_odoo). The import never touches a key it did not
    /// create (a clash is reported and skipped), disables only users whose keys here all came
    /// from it, and grants the admin group (`admin_group`) from an Odoo group code only with
    /// `allow_admin_group`.
    pub async fn import_odoo_with(
        &self,
        odoo_url: &str,
        dry_run: bool,
        allow_admin_group: bool,
    ) -> Result<OdooReport, OdooError> {
        let fail = failed(odoo_url);
        let options = PgConnectOptions::from_str(odoo_url)
            .map_err(|e| fail(format!("bad URL: {e}")))?
            .disable_statement_logging();
        let mut conn = options
            .connect()
            .await
            .map_err(|e| fail(crate::store::describe_connect_failure(&options, &e)))?;
        let keys = read_keys(&mut conn, |value| {
            let key = Secret::new(value);
            self.usable(&key)
                .map(|()| Digested {
                    digest: self.hasher.digest(key.expose()),
                    stub: self.format.stub(key.expose()),
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(&fail)?;
        let mut report = OdooReport {
            dry_run,
            ..OdooReport::default()
        };
        // Of the keys sharing a value, the one Odoo matches: the lowest id among the active
        // ones (Odoo's search skips archived records), else the lowest id.
        let mut winner: HashMap<KeyDigest, (bool, i64, &str)> = HashMap::new();
        for key in &keys {
            let Ok(secret) = &key.secret else { continue };
            let candidate = (!key.active, key.id, key.name.as_str());
            winner
                .entry(secret.digest)
                .and_modify(|w| *w = (*w).min(candidate))
                .or_insert(candidate);
        }
        let winner: HashMap<KeyDigest, (i64, String)> = winner
            .into_iter()
            .map(|(digest, (_, id, name))| (digest, (id, name.to_owned())))
            .collect();
        // In a dry run: keys whose value this run replaces, so a later key may take it over.
        let mut moving: HashSet<String> = HashSet::new();
        let mut archived: Vec<String> = Vec::new();
        // Keys this run created or found its own: the only ones whose users it may disable.
        let mut ours: HashSet<String> = HashSet::new();
        for key in keys {
            let label = format!("Odoo key #{} {:?}", key.id, key.name);
            let secret = match key.secret {
                Ok(secret) => secret,
                Err(why) => {
                    report.skip(format!("{label}: {why}"));
                    continue;
                }
            };
            if let Some((first, first_name)) =
                winner.get(&secret.digest).filter(|(id, _)| *id != key.id)
            {
                report.skip(format!(
                    "{label}: same value as Odoo key #{first} {first_name:?}, which Odoo matches \
                     (the first active key of that value)"
                ));
                continue;
            }
            if !key.user_active && !archived.contains(&key.login) {
                archived.push(key.login.clone());
            }
            // Normalised as the store will keep them, so that `'apikey-admin '` (or a tab, or
            // an NBSP around it) is still seen as the admin group.
            let mut groups = match Groups::new(&key.groups) {
                Ok(groups) => groups.into_vec(),
                Err(why) => {
                    report.skip(format!("{label}: {why}"));
                    continue;
                }
            };
            let admin_group = self.admin_group.trim();
            if !allow_admin_group && groups.iter().any(|g| g == admin_group) {
                groups.retain(|g| g != admin_group);
                report.warnings.push(format!(
                    "{label}: its Odoo group {:?} is this service's admin group; not granted \
                     (--allow-admin-group grants it)",
                    self.admin_group
                ));
            }
            let name = key.name.clone();
            let spec = CreateKey {
                name: key.name,
                user: key.login,
                groups,
                ..CreateKey::default()
            };
            let outcome = if dry_run {
                self.preview(&spec, &secret.digest, key.active, &mut moving)
                    .await
            } else {
                self.import_digest(spec, secret.digest, secret.stub, key.active)
                    .await
            };
            match outcome {
                Ok(Imported::Created) => report.created += 1,
                Ok(Imported::Updated) => report.updated += 1,
                Ok(Imported::Unchanged) => report.unchanged += 1,
                Ok(Imported::Conflict) => {
                    report.conflicts += 1;
                    report
                        .warnings
                        .push(format!("{label}: {}", crate::store::CONFLICT));
                    continue;
                }
                Err(e @ StoreError::Unavailable(_)) => {
                    // Each key is imported in a transaction of its own, and a run is
                    // idempotent: running it again finishes the job.
                    let done = report.created + report.updated + report.unchanged;
                    return Err(fail(format!(
                        "{e}; {done} key(s) were imported or found in line before it failed, \
                         the others not: run the import again to finish (it changes nothing \
                         that is already in line)"
                    )));
                }
                Err(e) => {
                    report.skip(format!("{label}: {e}"));
                    continue;
                }
            }
            ours.insert(name);
        }
        // Only users whose keys here all came from the import and that no config section acts
        // for: a user made or used here keeps its state whatever Odoo says.
        let local = self
            .list(&crate::model::KeyFilter::all())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let configured: HashSet<&str> = self
            .section_users
            .iter()
            .filter_map(|(tech_name, user)| match user {
                Some(user) => Some(user.as_str()),
                None => local
                    .iter()
                    .find(|r| r.tech_name == *tech_name)
                    .map(|r| r.user.as_str()),
            })
            .collect();
        archived.retain(|login| {
            if configured.contains(login.as_str()) {
                report.warnings.push(format!(
                    "Odoo user {login:?} is archived, but a config section acts for {login:?}: \
                     left enabled"
                ));
                return false;
            }
            let theirs = || local.iter().filter(|r| r.user == *login);
            let only_ours = theirs().all(|r| ours.contains(&r.name));
            if !only_ours {
                report.warnings.push(format!(
                    "Odoo user {login:?} is archived, but keys made or changed here act for \
                     {login:?} too: left enabled"
                ));
            }
            only_ours
        });
        for login in archived {
            let active = self
                .user_active(&login)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if active {
                if !dry_run {
                    self.set_user_active(&login, false)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
                report.users_disabled += 1;
            }
        }
        Ok(report)
    }

    /// What [`import_key`](Self::import_key) would do, without doing it.
    /// `moving` holds the keys whose value the run replaces before this one.
    async fn preview(
        &self,
        spec: &CreateKey,
        digest: &KeyDigest,
        active: bool,
        moving: &mut HashSet<String>,
    ) -> Result<Imported, StoreError> {
        let found = self.store.find_by_digest(digest).await?;
        // The key holds this very secret as its current one (a key that also has a secret
        // in a rotation grace is brought in line by the import, not counted so here).
        let holds_it = found
            .as_ref()
            .is_some_and(|m| m.record.name == spec.name && m.valid_until.is_none());
        let holder = found.map(|m| m.record.name);
        let taken = holder.is_some_and(|h| h != spec.name && !moving.contains(&h));
        if taken {
            return Err(StoreError::Invalid(
                "that secret is already used by another key".into(),
            ));
        }
        let Some(current) = self.store.get(&spec.name).await? else {
            return Ok(Imported::Created);
        };
        match self.store.origin(&spec.name).await? {
            Some(KeyOrigin::Imported) => {}
            Some(KeyOrigin::ChangedSinceImport) => return Ok(Imported::Conflict),
            _ => return Err(crate::store::not_imported(&spec.name)),
        }
        let same_secret = holds_it;
        if !same_secret {
            moving.insert(spec.name.clone());
        }
        let groups = super::groups(&spec.groups)?;
        let same = same_secret
            && current.user == spec.user
            && current.groups == groups.as_slice()
            && current.active == active;
        Ok(if same {
            Imported::Unchanged
        } else {
            Imported::Updated
        })
    }
}

impl OdooReport {
    fn skip(&mut self, why: String) {
        self.skipped += 1;
        self.warnings.push(why);
    }
}
