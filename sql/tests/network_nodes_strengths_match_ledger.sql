-- Node strengths add up to the scope's transfer volume up to the whole history's as-of day:
-- the sum of in_strength and the sum of out_strength both equal the transfers between
-- member accounts (member scope) or between businesses (business scope) dated up to then.
with transfers as (
    select source_id, target_id, amount
    from staging.transactions
    where kind = 'transfer'
      and local_day <= (
          select max(as_of_day) from marts.network_summary where period_kind = 'all'
      )
      and source_id <> target_id
      and source_id not in (select account_id from intermediate.issuer_accounts)
      and target_id not in (select account_id from intermediate.issuer_accounts)
),

businesses as (
    select account_id from staging.accounts where account_type = 'business'
),

ledger as (
    select 'member' as scope, coalesce(sum(amount), 0) as volume from transfers
    union all
    select 'business' as scope, coalesce(sum(amount), 0) as volume
    from transfers
    where source_id in (select account_id from businesses)
      and target_id in (select account_id from businesses)
),

nodes as (
    select scope, sum(in_strength) as received, sum(out_strength) as spent
    from marts.network_nodes
    group by scope
)

select ledger.scope, ledger.volume, nodes.received, nodes.spent
from ledger
left join nodes on nodes.scope = ledger.scope
where ledger.volume <> coalesce(nodes.received, 0)
   or ledger.volume <> coalesce(nodes.spent, 0)
