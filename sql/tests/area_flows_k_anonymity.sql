-- No published area-flow cell describes fewer than k distinct payers or payees, k is never
-- below 3, and a suppressed cell shows no figure.
select period_kind, period_start, source_area, target_area
from marts.area_flows
where k_anonymity < 3
   or (not suppressed and (source_accounts < k_anonymity or target_accounts < k_anonymity))
   or (suppressed and (volume is not null or transfer_count is not null
                       or source_accounts is not null or target_accounts is not null))
   or (not suppressed and volume is null)
