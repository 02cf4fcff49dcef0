-- Account attributes from the accounts file, with their area's deprivation decile
-- (1 = most deprived tenth of areas). Ids are pseudonyms.
with accounts as (
    select * from raw.accounts
),

areas as (
    select * from raw.areas
)

select
    accounts.account_id,
    accounts.account_type,
    accounts.sector,
    accounts.area,
    areas.deprivation_decile,
    accounts.joined_at,
    accounts.batch_id
from accounts
left join areas on areas.area = accounts.area
