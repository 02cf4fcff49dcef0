-- Each indicator's destroying level lies past its watch level in the bad direction.
select *
from marts.impact_thresholds
where kind = 'indicator' and (
    better not in ('higher', 'lower')
    or (better = 'higher' and destroying > watch)
    or (better = 'lower' and destroying < watch)
)
