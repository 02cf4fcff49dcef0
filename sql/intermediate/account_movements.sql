-- One row per ledger entry and member account it touches: delta > 0 money arriving,
-- delta < 0 money leaving. Issuer accounts are left out, so the sum of all deltas up to
-- any moment is the money in circulation at that moment.
-- @append-by-batch from staging.transactions
with transactions as (
    select * from staging.transactions
    where batch_id in (select unnest($new_batches))
),

issuers as (
    select account_id from intermediate.issuer_accounts
)

select txn_id, occurred_at, local_day, kind, target_id as account_id, amount as delta, batch_id
from transactions
where target_id not in (select account_id from issuers)
union all
select txn_id, occurred_at, local_day, kind, source_id as account_id, -amount as delta, batch_id
from transactions
where source_id not in (select account_id from issuers)
