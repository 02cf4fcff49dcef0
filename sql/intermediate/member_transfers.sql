-- Transfers between two member accounts: the edges of the payment network. Issuer
-- accounts and payments to oneself are left out.
-- @append-by-batch from staging.transactions
with transactions as (
    select * from staging.transactions
    where batch_id in (select unnest($new_batches))
),

issuers as (
    select account_id from intermediate.issuer_accounts
)

select txn_id, occurred_at, local_day, source_id, target_id, amount, batch_id
from transactions
where kind = 'transfer'
    and source_id <> target_id
    and source_id not in (select account_id from issuers)
    and target_id not in (select account_id from issuers)
