-- No published participation count describes between 1 and k - 1 accounts, k is never
-- below 3, a row is flagged suppressed exactly when a figure is hidden, and no dimension
-- of a month with several groups hides exactly one count of a measure (the total would
-- reveal it).
with participation as (
    select * from marts.participation
),

hidden as (
    select
        month,
        dimension,
        count(*) filter (where active_accounts is null) as active_hidden,
        count(*) filter (where frequent_traders is null) as frequent_hidden,
        count(*) filter (where new_accounts is null) as new_hidden,
        count(*) filter (where churned_accounts is null) as churned_hidden,
        count(*) as groups
    from participation
    where dimension <> 'all'
    group by all
)

select month, dimension, group_value, 'count below k or flag wrong' as problem
from participation
where k_anonymity < 3
    or active_accounts between 1 and k_anonymity - 1
    or frequent_traders between 1 and k_anonymity - 1
    or new_accounts between 1 and k_anonymity - 1
    or churned_accounts between 1 and k_anonymity - 1
    or suppressed <> (active_accounts is null or frequent_traders is null
        or new_accounts is null or churned_accounts is null)
union all
select month, dimension, null, 'a lone hidden count'
from hidden
where groups > 1 and 1 in (active_hidden, frequent_hidden, new_hidden, churned_hidden)
