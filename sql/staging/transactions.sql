-- Loaded ledger entries in canonical form, each with its calendar day in the scheme's
-- timezone (local_day). Amounts are in units of the local currency.
-- @append-by-batch from raw.transactions
with loaded as (
    select * from raw.transactions
    where batch_id in (select unnest($new_batches))
)

select
    txn_id,
    occurred_at,
    cast(timezone($timezone, occurred_at) as date) as local_day,
    source_id,
    target_id,
    amount,
    kind,
    channel,
    batch_id,
    source_file
from loaded
