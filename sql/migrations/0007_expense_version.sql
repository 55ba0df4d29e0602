-- 0007: a version counter per expense, for an opaque ETag (issue 24, finding 10).
--
-- The ETag of GET/PUT /api/expenses/{id} was md5(to_jsonb(row)): anyone holding an expense
-- could recompute it offline for each candidate created_by (which no answer shows) and so
-- learn who recorded it. It is now made from this counter, which tells nothing about the
-- row's contents: every row starts at 1, and the trigger expenses_version
-- (sql/R40_expenses.sql) adds 1 on every update, whoever makes it (API, PostgREST, SQL
-- editor). Adding a column with a constant default rewrites no row (PostgreSQL 11+).
alter table public.expenses add column if not exists version bigint not null default 1;
