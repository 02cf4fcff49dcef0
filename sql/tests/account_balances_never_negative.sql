-- No member account ever spends money it does not hold: replaying the ledger in time
-- order (ties broken by txn_id, money arriving first), every running balance stays at or
-- above zero. The replay up to the end of the latest complete month ran in full when
-- that month closed (intermediate.balance_checkpoint, made again on a late entry and on
-- circulate run --full): its lowest balances must not be below zero, and the movements
-- after it are replayed here from its balances.
with cut as (
    select coalesce(max(cut_day), date '0001-01-01') as cut_day
    from intermediate.balance_checkpoint_cut
),

replay as (
    select
        movements.account_id,
        movements.txn_id,
        movements.occurred_at,
        coalesce(checkpoint.balance, 0) + sum(movements.delta) over (
            partition by movements.account_id
            order by movements.occurred_at, movements.txn_id, movements.delta desc
            rows unbounded preceding
        ) as running_balance
    from intermediate.account_movements as movements
    left join intermediate.balance_checkpoint as checkpoint
        on checkpoint.account_id = movements.account_id
    where movements.local_day > (select cut_day from cut)
)

select account_id, txn_id, occurred_at, running_balance
from replay
where running_balance < 0
union all
select account_id, lowest_txn_id, lowest_at, lowest_balance
from intermediate.balance_checkpoint
where lowest_balance < 0
