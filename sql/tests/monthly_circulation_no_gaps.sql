-- The monthly series has exactly one row per calendar month from the first to the last:
-- missing and duplicated months are returned.
with monthly as (
    select month from marts.monthly_circulation
),

expected as (
    select cast(month as date) as month
    from range(
        (select min(month) from monthly),
        (select max(month) from monthly) + interval 1 month,
        interval 1 month
    ) as t(month)
)

select expected.month, 'missing' as problem
from expected
left join monthly on monthly.month = expected.month
where monthly.month is null
union all
select month, 'duplicated' as problem
from monthly
group by month
having count(*) > 1
