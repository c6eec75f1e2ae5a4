//! The 权责清单 (catalog of powers and duties): an import of the items of towns in the
//! caller's region, each change a new version, audited item by item.

use futures::FutureExt;
use prost::Message;

use super::Context;
use super::error::ApiError;
use super::mutation::{self, Resend};
use crate::domain::catalog::ItemInput;
use crate::domain::principal::Principal;
use crate::store::catalog::{self as db, Summary};

/// Most items in one import.
pub const MAX_ITEMS: usize = 10_000;

/// ImportCatalog: the items (validated) of towns in the caller's region.
pub async fn import<R>(
    ctx: &Context,
    who: &Principal,
    resend: Resend,
    items: Vec<ItemInput>,
    present: fn(Summary) -> R,
) -> Result<R, ApiError>
where
    R: Message + Default + Send + 'static,
{
    if items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!("at most {MAX_ITEMS} per import"),
        ));
    }
    for i in &items {
        super::ensure_in_scope(who, "town", &i.town_code)?;
    }
    let now = ctx.workflow.clock.now();
    let by = who.sub.clone();
    mutation::run(ctx, who, resend, move |conn, audit| {
        async move {
            let (s, new) = db::import(conn, items, &by, now).await?;
            audit.extend(db::audit_events(&new));
            Ok(present(s))
        }
        .boxed()
    })
    .await
}
