-- The daily series has exactly one row per calendar day: duplicated days and days missing
-- between the first and last are returned.
with daily as (
    select day from marts.daily_circulation
),

expected as (
    select cast(day as date) as day
    from range(
        (select min(day) from daily),
        (select max(day) from daily) + interval 1 day,
        interval 1 day
    ) as t(day)
)

select expected.day, 'missing' as problem
from expected
left join daily on daily.day = expected.day
where daily.day is null
union all
select day, 'duplicated' as problem
from daily
group by day
having count(*) > 1
