-- Balance of every member account (issuer accounts excluded) after the last loaded
-- transaction, with what it received and spent in total and its attributes. Accounts
-- listed in the accounts file that never transacted appear with zero balance.
with movements as (
    select * from intermediate.account_movements
),

accounts as (
    select * from staging.accounts
),

issuers as (
    select account_id from intermediate.issuer_accounts
),

per_account as (
    select
        account_id,
        sum(delta) as balance,
        sum(delta) filter (where delta > 0) as received,
        -sum(delta) filter (where delta < 0) as spent,
        count(*) as entry_count,
        min(occurred_at) as first_active_at,
        max(occurred_at) as last_active_at
    from movements
    group by account_id
),

all_accounts as (
    select account_id from per_account
    union
    select account_id from accounts where account_id not in (select account_id from issuers)
)

select
    all_accounts.account_id,
    coalesce(accounts.account_type, 'unknown') as account_type,
    accounts.sector,
    accounts.area,
    cast(coalesce(per_account.balance, 0) as decimal(18, 2)) as balance,
    cast(coalesce(per_account.received, 0) as decimal(18, 2)) as received,
    cast(coalesce(per_account.spent, 0) as decimal(18, 2)) as spent,
    cast(coalesce(per_account.entry_count, 0) as bigint) as entry_count,
    per_account.first_active_at,
    per_account.last_active_at
from all_accounts
left join per_account on per_account.account_id = all_accounts.account_id
left join accounts on accounts.account_id = all_accounts.account_id
order by all_accounts.account_id
