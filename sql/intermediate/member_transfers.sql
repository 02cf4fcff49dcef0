-- Transfers between two member accounts: the edges of the payment network. Issuer
-- accounts and payments to oneself are left out.
with transactions as (
    select * from staging.transactions
),

issuers as (
    select account_id from intermediate.issuer_accounts
)

select txn_id, occurred_at, local_day, source_id, target_id, amount
from transactions
where kind = 'transfer'
    and source_id <> target_id
    and source_id not in (select account_id from issuers)
    and target_id not in (select account_id from issuers)
