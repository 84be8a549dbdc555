//! What the SQL stores need of a database, as one trait: [`Dialect`], implemented for SQLite
//! and PostgreSQL. sqlx's own bounds (every bound type encodable, every read type decodable,
//! connections usable as executors) are proved once, in each dialect's implementation, so the
//! queries (`tx`, `lookup`, `admin`) are written once against [`Sql`] with no bound beyond
//! `D: Dialect`.

use std::fmt::Debug;
use std::future::Future;

use sqlx::{Database, Executor, IntoArguments, Pool, Transaction};

use super::super::{Change, StoreResult};

/// A transaction on a dialect's database.
pub type Tx<D> = Transaction<'static, D>;

mod sealed {
    pub trait Sealed {}
}

/// A database the SQL stores run on: SQLite or PostgreSQL (sealed). What differs between them
/// (connecting, migrations, telling other processes of a change) lives in their own modules;
/// everything else is [`SqlStore`](super::SqlStore)'s, written once.
pub trait Dialect: Database<Arguments: IntoArguments<Self>> + sealed::Sealed {
    /// What the store keeps beside its pool: the change feed's background work and what
    /// notifications need.
    #[doc(hidden)]
    type Feed: Send + Sync + Debug + 'static;

    /// The function that finds a text in another (`f(haystack, needle) > 0`), case-sensitive.
    #[doc(hidden)]
    const FIND: &'static str;

    /// Adds `value` to `args`.
    #[doc(hidden)]
    fn add<P: Param>(args: &mut Self::Arguments, value: P) -> Result<(), sqlx::Error>;

    /// Reads column `i` of `row`.
    #[doc(hidden)]
    fn get<C: Column>(row: &Self::Row, i: usize) -> Result<C, sqlx::Error>;

    /// The rows a statement changed.
    #[doc(hidden)]
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// The pool as an executor.
    #[doc(hidden)]
    fn pool(pool: &Pool<Self>) -> impl Executor<'_, Database = Self>;

    /// The transaction as an executor.
    #[doc(hidden)]
    fn tx(tx: &mut Tx<Self>) -> impl Executor<'_, Database = Self>;

    /// Tells other processes of `change`, inside `tx` (they learn of it at the commit).
    #[doc(hidden)]
    fn notify<'a>(
        feed: &'a Self::Feed,
        tx: &'a mut Tx<Self>,
        change: &'a Change,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'a;
}

/// sqlx's bounds for a value bound on SQLite.
#[cfg(feature = "sqlite")]
pub trait SqliteParam: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> {}
#[cfg(feature = "sqlite")]
impl<T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>> SqliteParam for T {}
/// Without SQLite, no bound.
#[cfg(not(feature = "sqlite"))]
pub trait SqliteParam {}
#[cfg(not(feature = "sqlite"))]
impl<T> SqliteParam for T {}

/// sqlx's bounds for a value bound on PostgreSQL.
#[cfg(feature = "postgres")]
pub trait PgParam: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> {}
#[cfg(feature = "postgres")]
impl<T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>> PgParam for T {}
/// Without PostgreSQL, no bound.
#[cfg(not(feature = "postgres"))]
pub trait PgParam {}
#[cfg(not(feature = "postgres"))]
impl<T> PgParam for T {}

/// sqlx's bounds for a column read on SQLite.
#[cfg(feature = "sqlite")]
pub trait SqliteColumn: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> {}
#[cfg(feature = "sqlite")]
impl<T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>> SqliteColumn for T {}
/// Without SQLite, no bound.
#[cfg(not(feature = "sqlite"))]
pub trait SqliteColumn {}
#[cfg(not(feature = "sqlite"))]
impl<T> SqliteColumn for T {}

/// sqlx's bounds for a column read on PostgreSQL.
#[cfg(feature = "postgres")]
pub trait PgColumn: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> {}
#[cfg(feature = "postgres")]
impl<T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>> PgColumn for T {}
/// Without PostgreSQL, no bound.
#[cfg(not(feature = "postgres"))]
pub trait PgColumn {}
#[cfg(not(feature = "postgres"))]
impl<T> PgColumn for T {}

/// A value the stores bind: one every dialect can encode (sealed: the types below).
pub trait Param: SqliteParam + PgParam + Send + sealed::Sealed {}

/// A column type the stores read: one every dialect can decode (sealed: the types below).
pub trait Column: SqliteColumn + PgColumn + Send + Sized + sealed::Sealed {}

impl sealed::Sealed for i64 {}
impl sealed::Sealed for Option<i64> {}
impl sealed::Sealed for bool {}
impl sealed::Sealed for &str {}
impl sealed::Sealed for String {}
impl sealed::Sealed for Option<String> {}
impl sealed::Sealed for Vec<u8> {}
impl sealed::Sealed for &[u8] {}
impl Param for i64 {}
impl Param for Option<i64> {}
impl Param for bool {}
impl Param for &str {}
impl Param for String {}
impl Param for Option<String> {}
impl Param for &[u8] {}
impl Column for i64 {}
impl Column for Option<i64> {}
impl Column for bool {}
impl Column for String {}
impl Column for Option<String> {}
impl Column for Vec<u8> {}
#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::Sqlite {}
#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::Postgres {}

/// What a row reads as: a column, a tuple of columns, or one of the stores' row types.
pub trait FromSql: Sized {
    /// Reads `row`.
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error>;
}

impl<C: Column> FromSql for C {
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        D::get(row, 0)
    }
}

impl<A: Column, B: Column> FromSql for (A, B) {
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        Ok((D::get(row, 0)?, D::get(row, 1)?))
    }
}

impl<A: Column, B: Column, C: Column> FromSql for (A, B, C) {
    fn read<D: Dialect>(row: &D::Row) -> Result<Self, sqlx::Error> {
        Ok((D::get(row, 0)?, D::get(row, 1)?, D::get(row, 2)?))
    }
}

/// One statement and its arguments (sqlx binds `$n` on both dialects).
pub struct Sql<D: Dialect> {
    sql: sqlx::SqlStr,
    args: Result<D::Arguments, sqlx::Error>,
}

impl<D: Dialect> Sql<D> {
    /// A statement written in this crate.
    pub fn new(sql: &'static str) -> Self {
        Self::safe(sql)
    }

    /// A statement put together from this crate's constants.
    pub fn composed(sql: String) -> Self {
        Self::safe(sqlx::AssertSqlSafe(sql))
    }

    fn safe(sql: impl sqlx::SqlSafeStr) -> Self {
        Sql {
            sql: sql.into_sql_str(),
            args: Ok(D::Arguments::default()),
        }
    }

    /// Binds the next `$n`.
    pub fn bind<P: Param>(mut self, value: P) -> Self {
        if let Ok(args) = &mut self.args {
            if let Err(e) = D::add(args, value) {
                self.args = Err(e);
            }
        }
        self
    }

    fn query(self) -> Result<sqlx::query::Query<'static, D, D::Arguments>, sqlx::Error> {
        Ok(sqlx::query_with(self.sql, self.args?))
    }

    /// Runs it; returns the number of rows it changed.
    pub async fn execute<'c>(
        self,
        on: impl Executor<'c, Database = D>,
    ) -> Result<u64, sqlx::Error> {
        let done = self.query()?.execute(on).await?;
        Ok(D::rows_affected(&done))
    }

    /// The first row, if any.
    pub async fn optional<'c, R: FromSql>(
        self,
        on: impl Executor<'c, Database = D>,
    ) -> Result<Option<R>, sqlx::Error> {
        let row = self.query()?.fetch_optional(on).await?;
        row.map(|r| R::read::<D>(&r)).transpose()
    }

    /// The first row; an error when there is none.
    pub async fn one<'c, R: FromSql>(
        self,
        on: impl Executor<'c, Database = D>,
    ) -> Result<R, sqlx::Error> {
        let row = self.query()?.fetch_one(on).await?;
        R::read::<D>(&row)
    }

    /// Every row.
    pub async fn all<'c, R: FromSql>(
        self,
        on: impl Executor<'c, Database = D>,
    ) -> Result<Vec<R>, sqlx::Error> {
        let rows = self.query()?.fetch_all(on).await?;
        rows.iter().map(|r| R::read::<D>(r)).collect()
    }
}
