-- No published group describes fewer than k first holders, and no breakdown shows
-- exactly one hidden group beside visible ones (the total would reveal it).
with groups as (
    select * from marts.multiplier_by_entry_point
)

select dimension, group_value, 'group under k published' as problem
from groups
where not suppressed and first_holders < k_anonymity
union all
select dimension, null as group_value, 'exactly one hidden group' as problem
from groups
group by dimension
having count(*) filter (where suppressed) = 1 and count(*) filter (where not suppressed) > 0
