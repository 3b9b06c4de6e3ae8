//! Pages within the list budgets ([`ListLimits`]): a page stops at its item limit and at
//! its byte budget (at least one item always). Filters run in SQL on indexed columns (see
//! the schema's indexes), so every value fetched is a match; `next` is the last id on the
//! page whenever more follow.

use postgres::types::ToSql;
use stagecraft_store::{ListLimits, Page, PageRequest, Stored};

use crate::sql::{dec, TxResult};

/// How many rows a page may hold at most.
pub fn cap(req: &PageRequest) -> usize {
    req.limit.max(1)
}

/// The `LIMIT` to fetch with: one more than fits, to know whether more follow.
pub fn fetch_limit(req: &PageRequest) -> i64 {
    i64::try_from(cap(req)).unwrap_or(i64::MAX - 1) + 1
}

/// A page from rows fetched in list order (`(id, stored bytes, item)`, at most
/// [`fetch_limit`] of them).
pub fn fill<T>(rows: Vec<(String, usize, T)>, req: &PageRequest) -> Page<T> {
    let limits: &ListLimits = &req.limits;
    let cap = cap(req);
    let total = rows.len();
    let (mut items, mut bytes, mut last) = (Vec::new(), 0usize, None);
    for (id, len, item) in rows {
        let room = items.is_empty()
            || (items.len() < cap && bytes + len <= limits.page_bytes && bytes < limits.page_bytes);
        if !room {
            break;
        }
        items.push(item);
        bytes += len;
        last = Some(id);
    }
    let next = if items.len() < total { last } else { None };
    Page { items, next }
}

/// Runs `sql` (selecting `id, value`) and decodes each row's value.
pub fn fetch<T: Stored, C: postgres::GenericClient>(
    c: &mut C,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> TxResult<Vec<(String, usize, T)>> {
    let rows = c.query(sql, params)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get(0);
        let bytes: &[u8] = row.get(1);
        let value = dec(what, bytes)?;
        out.push((id, bytes.len(), value));
    }
    Ok(out)
}

/// A `WHERE` clause built from optional conditions, with its parameters in order.
#[derive(Default)]
pub struct Where {
    sql: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync>>,
}

impl Where {
    /// Adds `column op $n` with `value`.
    pub fn and<V: ToSql + Sync + 'static>(&mut self, column: &str, op: &str, value: V) {
        self.params.push(Box::new(value));
        self.sql
            .push(format!("{column} {op} ${}", self.params.len()));
    }

    /// Adds a condition with its own `$n` placeholders written as `{}` (each gets the next
    /// number, with the given values).
    pub fn raw(&mut self, template: &str, values: Vec<Box<dyn ToSql + Sync>>) {
        let mut sql = String::new();
        let mut parts = template.split("{}");
        if let Some(first) = parts.next() {
            sql.push_str(first);
        }
        for (part, v) in parts.zip(values) {
            self.params.push(v);
            sql.push_str(&format!("${}", self.params.len()));
            sql.push_str(part);
        }
        self.sql.push(sql);
    }

    pub fn clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        }
    }

    /// The next parameter's number.
    pub fn next(&self) -> usize {
        self.params.len() + 1
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    pub fn push<V: ToSql + Sync + 'static>(&mut self, value: V) -> usize {
        self.params.push(Box::new(value));
        self.params.len()
    }
}
