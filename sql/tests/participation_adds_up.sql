-- Where nothing is hidden, each dimension's groups add up to the month's total, and the
-- month's total of active accounts never exceeds the circulation mart's (which also counts
-- issuer accounts touched by a transfer).
with participation as (
    select * from marts.participation
),

totals as (
    select * from participation where dimension = 'all'
),

groups as (
    select
        month,
        dimension,
        bool_or(suppressed) as any_hidden,
        sum(active_accounts) as active_accounts,
        sum(frequent_traders) as frequent_traders,
        sum(new_accounts) as new_accounts,
        sum(churned_accounts) as churned_accounts
    from participation
    where dimension <> 'all'
    group by all
)

select groups.month, groups.dimension, 'groups do not add up to the total' as problem
from groups
inner join totals on totals.month = groups.month
where not groups.any_hidden and not totals.suppressed
    and (groups.active_accounts, groups.frequent_traders, groups.new_accounts,
         groups.churned_accounts)
    is distinct from
        (totals.active_accounts, totals.frequent_traders, totals.new_accounts,
         totals.churned_accounts)
union all
select totals.month, 'all', 'more active than the circulation mart'
from totals
inner join marts.circulation_metrics as metrics
    on metrics.period_kind = 'month' and metrics.period_start = totals.month
where totals.active_accounts > metrics.active_accounts
