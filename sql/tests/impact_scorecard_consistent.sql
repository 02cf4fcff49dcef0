-- Every scorecard row has a known status that agrees with its thresholds, and its change is
-- value - previous_value. Rows returned are wrong.
with scorecard as (
    select * from marts.impact_scorecard
)

select *
from scorecard
where status not in ('creating value', 'watch', 'destroying value', 'no data')
    or (value is null and basis = 'value' and status <> 'no data')
    or (change is not null and abs(change - (value - previous_value)) > 1e-9)
    or (
        basis = 'value' and value is not null and better = 'higher' and (
            (value < destroying_threshold) <> (status = 'destroying value')
            or (value >= watch_threshold) <> (status = 'creating value')
        )
    )
    or (
        basis = 'value' and value is not null and better = 'lower' and (
            (value > destroying_threshold) <> (status = 'destroying value')
            or (value <= watch_threshold) <> (status = 'creating value')
        )
    )
