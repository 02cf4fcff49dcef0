-- Multipliers are ordered (1 <= lm2 <= lm3 <= full_multiplier) and the end-state shares
-- of each group add up to one.
select dimension, group_value, lm2, lm3, full_multiplier
from marts.multiplier_by_entry_point
where not suppressed and (
    lm2 < 1 or lm3 < lm2 or full_multiplier < lm3 - 1e-9
    or abs(redeemed_share + fees_share + still_held_share - 1) > 1e-9
)
