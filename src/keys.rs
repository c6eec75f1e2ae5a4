//! `gridhub keys rotate`: re-encrypts every stored personal value that is not yet under the
//! current PII key (and format), and recomputes its blind index with the current key.
//!
//! To rotate: give the new master key as `--pii-key` with a new `--pii-key-id`, list the old
//! one in `--pii-previous-keys id:base64`, restart the servers (they read both and write with
//! the new one), run `gridhub keys rotate`, then drop the old key from the configuration. The
//! command works in batches of 1,000 rows, each its own transaction, and can be run again
//! (or while servers write): it only touches values still under another key.

use anyhow::Context;
use tokio_postgres::NoTls;

use crate::crypto::PiiCipher;
use crate::domain::pii::Person;
use crate::store::DbUrl;

/// How a column's plaintext relates to its blind index.
#[derive(Debug, Clone, Copy)]
enum Index {
    None,
    /// The index is of the plaintext itself.
    Plain(&'static str),
    /// The value is a `Person` as JSON; the index is of its phone.
    PersonPhone(&'static str),
    /// Opaque bytes (a stored first answer), no index.
    Bytes,
}

/// Every encrypted column.
const COLUMNS: [(&str, &str, Index); 8] = [
    ("workers", "phone_enc", Index::Plain("phone_index")),
    (
        "reports",
        "reporter_phone_enc",
        Index::Plain("reporter_phone_index"),
    ),
    (
        "service_requests",
        "applicant_enc",
        Index::PersonPhone("applicant_phone_index"),
    ),
    ("mediation_parties", "name_enc", Index::None),
    (
        "mediation_parties",
        "id_number_enc",
        Index::Plain("id_index"),
    ),
    (
        "mediation_parties",
        "phone_enc",
        Index::Plain("phone_index"),
    ),
    ("mediation_parties", "address_enc", Index::None),
    ("idempotency_keys", "response", Index::Bytes),
];

const BATCH: i64 = 1000;

/// Re-encrypts what is not under the current key; returns (table.column, values) counts.
pub async fn rotate(url: &DbUrl, pii: &PiiCipher) -> anyhow::Result<Vec<(String, u64)>> {
    let (mut client, conn) = tokio_postgres::connect(url.expose(), NoTls).await?;
    tokio::spawn(conn);
    let tag = i32::from(0x80 | pii.current_key_id());
    let mut out = Vec::new();
    for (table, col, index) in COLUMNS {
        let mut n = 0u64;
        loop {
            let tx = client.transaction().await?;
            let rows = tx
                .query(
                    &format!(
                        "SELECT ctid::text, {col} FROM {table} WHERE {col} IS NOT NULL AND get_byte({col}, 0) <> $1 LIMIT {BATCH} FOR UPDATE"
                    ),
                    &[&tag],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let ctid: String = row.get(0);
                let blob: Vec<u8> = row.get(1);
                let bytes = pii.decrypt_bytes(&blob).with_context(|| {
                    format!("{table}.{col} holds a value under a key not configured (list it in --pii-previous-keys)")
                })?;
                let enc = pii.encrypt_bytes(&bytes);
                let plain = || {
                    String::from_utf8(bytes.clone())
                        .with_context(|| format!("{table}.{col} does not hold text"))
                };
                match index {
                    Index::None | Index::Bytes => {
                        tx.execute(
                            &format!("UPDATE {table} SET {col} = $1 WHERE ctid = $2::text::tid"),
                            &[&enc, &ctid],
                        )
                        .await?;
                    }
                    Index::Plain(ix) | Index::PersonPhone(ix) => {
                        let key = match index {
                            Index::PersonPhone(_) => serde_json::from_str::<Person>(&plain()?)
                                .map(|p| p.phone)
                                .with_context(|| format!("{table}.{col} is not a person"))?,
                            _ => plain()?,
                        };
                        tx.execute(
                            &format!(
                                "UPDATE {table} SET {col} = $1, {ix} = $2 WHERE ctid = $3::text::tid"
                            ),
                            &[&enc, &pii.blind_index(&key), &ctid],
                        )
                        .await?;
                    }
                }
            }
            n += rows.len() as u64;
            tx.commit().await?;
        }
        out.push((format!("{table}.{col}"), n));
    }
    Ok(out)
}

/// `gridhub keys rotate`.
pub async fn run(settings: &crate::config::Settings) -> anyhow::Result<()> {
    let pii = PiiCipher::with_keys(
        settings.pii_key_id,
        &settings.pii_key,
        &settings.pii_previous_keys,
    );
    let db = crate::database::Database::start(settings).await?;
    db.migrate().await?;
    let result = rotate(&db.url, &pii).await;
    db.close();
    let counts = result?;
    for (col, n) in &counts {
        println!(
            "{col}: {n} values re-encrypted under key {}",
            pii.current_key_id()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::COLUMNS;

    /// Every encrypted column of the schema (`*_enc`) is rotated: a column added without an
    /// entry here would stay on the old key and become unreadable when it is dropped.
    #[test]
    fn every_encrypted_column_of_the_schema_is_rotated() {
        let schema = include_str!("store/schema.rs");
        let mut table = "";
        let mut found = Vec::new();
        for line in schema.lines() {
            let t = line.trim();
            if let Some((name, _)) = t.split_once(" (")
                && t.ends_with('{')
                && !name.contains(' ')
            {
                table = name;
            }
            if let Some((col, _)) = t.split_once(" -> ")
                && col.ends_with("_enc")
            {
                found.push((table, col));
            }
        }
        assert!(found.len() >= 7, "{found:?}");
        for (table, col) in found {
            assert!(
                COLUMNS.iter().any(|(t, c, _)| *t == table && *c == col),
                "{table}.{col} is encrypted but `keys rotate` does not rotate it"
            );
        }
    }
}
