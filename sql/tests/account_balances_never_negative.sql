-- No member account ever spends money it does not hold: replaying the ledger in time
-- order (ties broken by txn_id), every running balance stays at or above zero.
with replay as (
    select
        account_id,
        txn_id,
        occurred_at,
        sum(delta) over (
            partition by account_id order by occurred_at, txn_id, delta desc
            rows unbounded preceding
        ) as running_balance
    from intermediate.account_movements
)

select account_id, txn_id, occurred_at, running_balance
from replay
where running_balance < 0
